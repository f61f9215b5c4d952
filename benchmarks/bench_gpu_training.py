"""GPU training throughput of DenseNet-169 at 320x320 with mixed precision, against torchvision + AMP.

Fair both ways: torch with torch.compile and cudnn.benchmark; Keras with XLA, the batches already in
device memory and `steps_per_execution`; each side warmed up, then timed `--repeats` times (median and
range), at batch 8 (the paper's) and 32. Runs from a bare checkout with only keras, numpy and a
backend (KERAS_BACKEND=jax or tensorflow; torch + torchvision for the reference). Uses the platform's
model zoo when its imports are available, else keras.applications.DenseNet169 with the same head.

    KERAS_BACKEND=jax python benchmarks/bench_gpu_training.py --out benchmarks/results [--quick]
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import time
from pathlib import Path

import numpy as np

SIZE = 320


def keras_model(size: int):
    """DenseNet-169 (weights=None) with a float32 sigmoid head, from the zoo when importable."""
    import keras

    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
    try:
        from mura_core.contracts import parse_task
        from pipelines.training.zoo import build_model

        return build_model("densenet169", parse_task("binary"), (size, size), weights=None), "pipelines.zoo"
    except ImportError:
        inputs = keras.Input((size, size, 3))
        features = keras.applications.DenseNet169(include_top=False, weights=None, pooling="avg")(inputs)
        outputs = keras.layers.Dense(1, activation="sigmoid", dtype="float32")(features)
        return keras.Model(inputs, outputs), "keras.applications"


def _on_device(array: np.ndarray):
    """The array in accelerator memory for the active Keras backend (host copies excluded from timing)."""
    import keras

    backend = keras.backend.backend()
    if backend == "jax":
        import jax

        return jax.device_put(array)
    if backend == "torch":
        import torch

        return torch.as_tensor(array, device="cuda" if torch.cuda.is_available() else "cpu")
    import tensorflow as tf

    with tf.device("/GPU:0" if tf.config.list_physical_devices("GPU") else "/CPU:0"):
        return tf.constant(array)


def _spread(rates: list[float]) -> dict:
    return {
        "images_per_s_median": statistics.median(rates),
        "images_per_s_min": min(rates),
        "images_per_s_max": max(rates),
        "repeats": len(rates),
    }


def keras_rate(batch: int, steps: int, size: int, repeats: int, steps_per_execution: int) -> dict:
    """Images/s of model.fit under mixed_float16, batches already on the device, `steps_per_execution`
    steps per compiled call (XLA), one untimed warm-up epoch, then `repeats` timed epochs of `steps`."""
    import keras

    keras.config.set_dtype_policy("mixed_float16")
    model, source = keras_model(size)
    model.compile(
        optimizer=keras.optimizers.Adam(1e-4),
        loss="binary_crossentropy",
        steps_per_execution=steps_per_execution,
        jit_compile=True,
    )
    rng = np.random.default_rng(0)
    pixels = _on_device(rng.uniform(0, 255, (batch * steps, size, size, 3)).astype("float32"))
    labels = _on_device(rng.integers(0, 2, (batch * steps, 1)).astype("float32"))
    fit = {"batch_size": batch, "epochs": 1, "shuffle": False, "verbose": 0}
    model.fit(pixels, labels, **fit)  # compile and warm up
    rates = []
    for _ in range(repeats):
        started = time.perf_counter()
        history = model.fit(pixels, labels, **fit)
        float(history.history["loss"][-1])  # the epoch's last step has finished on the device
        rates.append(batch * steps / (time.perf_counter() - started))
    return {
        **_spread(rates),
        "model": source,
        "backend": keras.backend.backend(),
        "steps_per_execution": steps_per_execution,
    }


def torch_rate(batch: int, steps: int, size: int, repeats: int) -> dict | None:
    """Images/s of torchvision densenet169 with AMP (autocast + GradScaler), torch.compile and
    cudnn.benchmark, batches on the device; None without torch, torchvision or a GPU."""
    try:
        import torch
        import torchvision
    except ImportError:
        return None
    if not torch.cuda.is_available():
        return None
    torch.backends.cudnn.benchmark = True
    device = torch.device("cuda")
    model = torchvision.models.densenet169(num_classes=1).to(device).to(memory_format=torch.channels_last)
    compiled = torch.compile(model)
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-4)
    scaler = torch.amp.GradScaler("cuda")
    loss_function = torch.nn.BCEWithLogitsLoss()
    pixels = torch.rand(batch, 3, size, size, device=device).to(memory_format=torch.channels_last)
    labels = torch.randint(0, 2, (batch, 1), device=device).float()

    def step():
        optimizer.zero_grad(set_to_none=True)
        with torch.autocast("cuda", dtype=torch.float16):
            loss = loss_function(compiled(pixels), labels)
        scaler.scale(loss).backward()
        scaler.step(optimizer)
        scaler.update()

    for _ in range(5):  # compile, autotune cuDNN, warm up
        step()
    torch.cuda.synchronize()
    rates = []
    for _ in range(repeats):
        started = time.perf_counter()
        for _ in range(steps):
            step()
        torch.cuda.synchronize()
        rates.append(batch * steps / (time.perf_counter() - started))
    return {**_spread(rates), "torch": torch.__version__, "compiled": True}


def main() -> None:
    """Measure both at each batch size, print the JSON result and write it under --out."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", default="benchmarks/results")
    parser.add_argument("--quick", action="store_true", help="a short smoke run")
    parser.add_argument("--batches", default="8,32", help="batch sizes, comma separated")
    parser.add_argument("--size", type=int, default=SIZE)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--steps-per-execution", type=int, default=10)
    args = parser.parse_args()
    steps = 4 if args.quick else 20
    repeats = 2 if args.quick else args.repeats
    size = 96 if args.quick and args.size == SIZE else args.size
    rows = []
    for batch in (int(value) for value in args.batches.split(",")):
        # torch first, so the Keras backend's memory use does not starve it
        reference = torch_rate(batch, steps, size, repeats)
        mine = keras_rate(batch, steps, size, repeats, min(args.steps_per_execution, steps))
        ratio = None
        if reference:
            ratio = round(mine["images_per_s_median"] / reference["images_per_s_median"], 3)
        rows.append(
            {"batch": batch, "keras": mine, "torchvision_amp_compiled": reference, "ratio_vs_torch": ratio}
        )
    result = {
        "benchmark": "gpu_training_densenet169",
        "quick": args.quick,
        "image_size": [size, size],
        "steps_per_repeat": steps,
        "keras_backend": os.environ.get("KERAS_BACKEND", "tensorflow"),
        "by_batch": rows,
    }
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    (out / "bench_gpu_training.json").write_text(json.dumps(result, indent=2), encoding="utf-8")
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
