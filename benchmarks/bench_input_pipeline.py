"""Input-pipeline and CPU training throughput (issue 4).

Images/s at 320x320 with augmentation of the tf.data pipeline (pipelines.training.inputs) against
(a) the seed's way of loading: a Python generator reading, resizing and augmenting one file at a time
with PIL, as ImageDataGenerator.flow_from_dataframe does, and (b) the raw decode limit: decoding the
same PNGs on all cores, nothing else. Targets: >= 3x the seed loader, >= 70 % of the raw decode limit.
Also CPU training images/s of baseline_cnn and densenet121 on in-memory batches.

    python benchmarks/bench_input_pipeline.py --out benchmarks/results [--quick] [--data DIR]
"""

from __future__ import annotations

import argparse
import json
import os
import tempfile
import time
from pathlib import Path

import numpy as np
import tensorflow as tf
from PIL import Image

from pipelines.data.manifest import build_manifest
from pipelines.data.synth import generate_synthetic
from pipelines.training.inputs import make_dataset, part_class_weights
from pipelines.training.tasks import parse_task
from pipelines.training.zoo import build_model

SIZE = (320, 320)
BATCH = 32
AUGMENT = ("flip", "rotate", "zoom", "contrast")


def tf_data_rate(rows, root: Path, augment: bool = True) -> float:
    """Images/s of one training epoch of the real pipeline (decode, pad-resize, augment), no cache."""
    dataset = make_dataset(
        rows,
        root,
        parse_task("binary"),
        SIZE,
        BATCH,
        training=True,
        weights=part_class_weights(rows),
        augment_strength=1.0 if augment else 0.0,
        augment_ops=AUGMENT,
        cache="none",
    )
    next(iter(dataset))  # trace the graph once; steady-state speed is what a long epoch sees
    started, count = time.perf_counter(), 0
    for pixels, _, _ in dataset:
        count += int(pixels.shape[0])
    return count / (time.perf_counter() - started)


def seed_loader_rate(rows, root: Path, seed: int = 0) -> float:
    """Images/s of a one-at-a-time PIL generator with flips/rotations, batched with numpy (the seed's way)."""
    rng = np.random.default_rng(seed)

    def generator():
        batch = []
        for path in rows["image_path"]:
            image = Image.open(root / path).convert("RGB").resize(SIZE[::-1], Image.BILINEAR)
            if rng.random() < 0.5:
                image = image.transpose(Image.FLIP_LEFT_RIGHT)
            image = image.rotate(float(rng.uniform(-30, 30)), resample=Image.BILINEAR)
            batch.append(np.asarray(image, dtype=np.float32))
            if len(batch) == BATCH:
                yield np.stack(batch)
                batch = []
        if batch:
            yield np.stack(batch)

    started, count = time.perf_counter(), 0
    for pixels in generator():
        count += len(pixels)
    return count / (time.perf_counter() - started)


def raw_decode_rate(rows, root: Path) -> float:
    """Images/s of reading + decoding the same PNGs in parallel on all cores, nothing else."""
    paths = [str(root / path) for path in rows["image_path"]]
    dataset = (
        tf.data.Dataset.from_tensor_slices(paths)
        .map(
            lambda path: tf.shape(
                tf.io.decode_image(tf.io.read_file(path), channels=3, expand_animations=False)
            ),
            num_parallel_calls=tf.data.AUTOTUNE,
            deterministic=False,
        )
        .prefetch(tf.data.AUTOTUNE)
    )
    next(iter(dataset))
    started, count = time.perf_counter(), 0
    for _ in dataset:
        count += 1
    return count / (time.perf_counter() - started)


def training_rate(arch: str, size: tuple[int, int], batch: int, steps: int) -> float:
    """CPU training images/s of `arch` on in-memory random batches (after one warm-up step)."""
    model = build_model(arch, parse_task("binary"), size, weights=None)
    model.compile(optimizer="adam", loss="binary_crossentropy")
    pixels = np.random.default_rng(0).uniform(0, 255, (batch, *size, 3)).astype("float32")
    labels = np.random.default_rng(1).integers(0, 2, (batch, 1)).astype("float32")
    model.train_on_batch(pixels, labels)
    started = time.perf_counter()
    for _ in range(steps):
        model.train_on_batch(pixels, labels)
    return batch * steps / (time.perf_counter() - started)


def main() -> None:
    """Run the measurements, print the JSON result and write it under --out."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", default="benchmarks/results")
    parser.add_argument("--quick", action="store_true", help="a short smoke run")
    parser.add_argument("--data", help="folder holding MURA-v1.1/ (default: a fresh synthetic set)")
    args = parser.parse_args()
    patients = (60, 10) if args.quick else (400, 40)
    with tempfile.TemporaryDirectory() as scratch:
        root = Path(args.data) if args.data else Path(scratch)
        if not args.data:
            generate_synthetic(root, train_patients=patients[0], valid_patients=patients[1])
        rows = build_manifest(root).frame
        rows = rows[rows["split"] == "train"].reset_index(drop=True)
        # Warm the OS file cache so every loader reads from memory, not disk.
        raw_decode_rate(rows, root)
        raw = raw_decode_rate(rows, root)
        pipeline = tf_data_rate(rows, root)
        no_augment = tf_data_rate(rows, root, augment=False)
        seed = seed_loader_rate(rows, root)
    train_size, steps = ((128, 128), 2) if args.quick else (SIZE, 5)
    result = {
        "benchmark": "input_pipeline",
        "quick": args.quick,
        "cpu_count": os.cpu_count(),
        "images": int(len(rows)),
        "image_size": list(SIZE),
        "tf_data_images_per_s": round(pipeline, 1),
        "tf_data_no_augment_images_per_s": round(no_augment, 1),
        "seed_pil_generator_images_per_s": round(seed, 1),
        "raw_parallel_decode_images_per_s": round(raw, 1),
        "ratio_vs_seed_loader": round(pipeline / seed, 2),
        "ratio_vs_raw_decode": round(pipeline / raw, 3),
        "targets": {"ratio_vs_seed_loader": 3.0, "ratio_vs_raw_decode": 0.7},
        "train_image_size": list(train_size),
        "train_images_per_s": {
            arch: round(training_rate(arch, train_size, 8, steps), 2)
            for arch in ("baseline_cnn", "densenet121")
        },
    }
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    (out / "bench_input_pipeline.json").write_text(json.dumps(result, indent=2), encoding="utf-8")
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
