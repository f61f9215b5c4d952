"""GPU training throughput of DenseNet-169 at 320x320 with mixed precision, against torchvision + AMP.

Runs from a bare checkout with only keras, numpy and a backend (KERAS_BACKEND=jax or tensorflow; torch
for the reference): in-memory random batches, no tf.data. Uses the platform's model zoo when its
imports are available, else keras.applications.DenseNet169 with the same head.

    KERAS_BACKEND=jax python benchmarks/bench_gpu_training.py --out benchmarks/results [--quick]
"""

from __future__ import annotations

import argparse
import json
import os
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
        from pipelines.contracts import parse_task
        from pipelines.training.zoo import build_model

        return build_model("densenet169", parse_task("binary"), (size, size), weights=None), "pipelines.zoo"
    except ImportError:
        inputs = keras.Input((size, size, 3))
        features = keras.applications.DenseNet169(include_top=False, weights=None, pooling="avg")(inputs)
        outputs = keras.layers.Dense(1, activation="sigmoid", dtype="float32")(features)
        return keras.Model(inputs, outputs), "keras.applications"


def keras_rate(batch: int, steps: int, size: int) -> dict:
    """Images/s of keras train_on_batch under mixed_float16."""
    import keras

    keras.config.set_dtype_policy("mixed_float16")
    model, source = keras_model(size)
    model.compile(optimizer=keras.optimizers.Adam(1e-4), loss="binary_crossentropy")
    pixels = np.random.default_rng(0).uniform(0, 255, (batch, size, size, 3)).astype("float32")
    labels = np.random.default_rng(1).integers(0, 2, (batch, 1)).astype("float32")
    for _ in range(3):  # compile and warm up
        model.train_on_batch(pixels, labels)
    started = time.perf_counter()
    for _ in range(steps):
        loss = model.train_on_batch(pixels, labels)
    float(np.asarray(loss))  # wait for the device
    return {
        "images_per_s": batch * steps / (time.perf_counter() - started),
        "model": source,
        "backend": keras.backend.backend(),
    }


def torch_rate(batch: int, steps: int, size: int) -> dict | None:
    """Images/s of torchvision densenet169 with AMP (autocast + GradScaler), or None without torch/GPU."""
    try:
        import torch
        import torchvision
    except ImportError:
        return None
    if not torch.cuda.is_available():
        return None
    device = torch.device("cuda")
    model = torchvision.models.densenet169(num_classes=1).to(device).to(memory_format=torch.channels_last)
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-4)
    scaler = torch.amp.GradScaler("cuda")
    loss_function = torch.nn.BCEWithLogitsLoss()
    pixels = torch.rand(batch, 3, size, size, device=device).to(memory_format=torch.channels_last)
    labels = torch.randint(0, 2, (batch, 1), device=device).float()

    def step():
        optimizer.zero_grad(set_to_none=True)
        with torch.autocast("cuda", dtype=torch.float16):
            loss = loss_function(model(pixels), labels)
        scaler.scale(loss).backward()
        scaler.step(optimizer)
        scaler.update()

    for _ in range(3):
        step()
    torch.cuda.synchronize()
    started = time.perf_counter()
    for _ in range(steps):
        step()
    torch.cuda.synchronize()
    return {"images_per_s": batch * steps / (time.perf_counter() - started), "torch": torch.__version__}


def main() -> None:
    """Measure both, print the JSON result and write it under --out."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", default="benchmarks/results")
    parser.add_argument("--quick", action="store_true", help="a short smoke run")
    parser.add_argument("--batch", type=int, default=32)
    parser.add_argument("--size", type=int, default=SIZE)
    args = parser.parse_args()
    steps = 5 if args.quick else 30
    size = 96 if args.quick and args.size == SIZE else args.size
    reference = torch_rate(
        args.batch, steps, size
    )  # first, so the Keras backend's memory use does not starve it
    mine = keras_rate(args.batch, steps, size)
    result = {
        "benchmark": "gpu_training_densenet169",
        "quick": args.quick,
        "image_size": [size, size],
        "batch": args.batch,
        "steps": steps,
        "keras_backend": os.environ.get("KERAS_BACKEND", "tensorflow"),
        "keras": mine,
        "torchvision_amp": reference,
        "ratio_vs_torch": round(mine["images_per_s"] / reference["images_per_s"], 3) if reference else None,
    }
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    (out / "bench_gpu_training.json").write_text(json.dumps(result, indent=2), encoding="utf-8")
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
