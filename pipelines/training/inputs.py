"""tf.data input pipeline from the manifest: parallel decode, resize with padding, augmentation, prefetch.

Decoding and resizing go through pipelines.training.preprocessing, the same function the exported
serving graph uses, so training and serving see identical pixels. Evaluation order is never shuffled.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import tensorflow as tf

from pipelines.errors import DataError
from pipelines.training.augment import augment_batch
from pipelines.training.preprocessing import decode_and_resize
from pipelines.training.tasks import Task, targets


def usable_rows(frame: pd.DataFrame) -> pd.DataFrame:
    """Manifest rows whose image exists and has a readable header (faulty rows are left out)."""
    keep = pd.Series(True, index=frame.index)
    for flag in ("file_exists", "intact"):
        if flag in frame:
            keep &= frame[flag].astype(bool)
    if "width" in frame:
        keep &= pd.to_numeric(frame["width"], errors="coerce").fillna(-1) > 0
    if "file_bytes" in frame:
        keep &= pd.to_numeric(frame["file_bytes"], errors="coerce").fillna(-1) > 0
    return frame[keep]


def part_class_weights(train_frame: pd.DataFrame) -> dict[tuple[str, int], float]:
    """MURA-paper loss weights per (body part, label): w1 = N/(A+N), w0 = A/(A+N), then mean 1 overall.

    A and N are the abnormal and normal image counts of the part in the training rows; the final
    rescaling keeps the average sample weight at 1 so the learning rate means the same with or without it.
    """
    weights: dict[tuple[str, int], float] = {}
    for part, rows in train_frame.groupby("body_part"):
        abnormal = int((rows["label"] == 1).sum())
        normal = int((rows["label"] == 0).sum())
        total = abnormal + normal
        weights[(str(part), 1)] = normal / total if total else 0.0
        weights[(str(part), 0)] = abnormal / total if total else 0.0
    per_image = np.array(
        [weights[(p, int(y))] for p, y in zip(train_frame["body_part"], train_frame["label"], strict=True)]
    )
    mean = float(per_image.mean()) if len(per_image) else 0.0
    if mean <= 0:
        return {key: 1.0 for key in weights}
    return {key: value / mean for key, value in weights.items()}


def sample_weights(frame: pd.DataFrame, weights: dict[tuple[str, int], float]) -> np.ndarray:
    """Per-image loss weights for `frame` from part_class_weights (1.0 for unseen combinations)."""
    return np.array(
        [weights.get((str(p), int(y)), 1.0) for p, y in zip(frame["body_part"], frame["label"], strict=True)],
        dtype=np.float32,
    )


def make_dataset(
    frame: pd.DataFrame,
    data_root: Path,
    task: Task,
    image_size: tuple[int, int],
    batch_size: int,
    *,
    training: bool = False,
    weights: dict | None = None,
    augment_strength: float = 0.0,
    augment_ops: tuple[str, ...] = (),
    seed: int = 42,
    cache: str = "memory",
    with_labels: bool = True,
) -> tf.data.Dataset:
    """A batched dataset of (pixels, target[, sample_weight]); shuffled and augmented only when training."""
    if frame.empty:
        raise DataError("no images to read: the selected manifest rows are empty")
    root = Path(data_root)
    paths = np.array([str(root / path) for path in frame["image_path"]])
    columns: tuple = (paths,)
    if with_labels:
        columns += (targets(task, frame),)
        if weights is not None:
            columns += (sample_weights(frame, weights),)
    dataset = tf.data.Dataset.from_tensor_slices(columns)
    size = tuple(int(value) for value in image_size)

    def load(path, *rest):
        pixels = decode_and_resize(tf.io.read_file(path), size)
        pixels.set_shape([size[0], size[1], 3])
        return (pixels, *rest)

    cached = cache == "memory"
    if training and not cached:
        # Without a cache shuffle the (cheap) paths, not decoded images, to keep memory small.
        dataset = dataset.shuffle(len(paths), seed=seed, reshuffle_each_iteration=True)
    dataset = dataset.map(load, num_parallel_calls=tf.data.AUTOTUNE, deterministic=not training)
    if cached:
        dataset = dataset.cache()
        if training:
            dataset = dataset.shuffle(len(paths), seed=seed, reshuffle_each_iteration=True)
    dataset = dataset.batch(batch_size)
    if training and augment_strength > 0 and augment_ops:
        # One seed pair per batch from a seeded stream, new each epoch, for stateless random ops.
        seeds = tf.data.Dataset.random(seed=seed, rerandomize_each_iteration=True).batch(2)
        dataset = tf.data.Dataset.zip((dataset, seeds))
        strength, ops = float(augment_strength), tuple(augment_ops)

        def augment(batch, seed_pair):
            return (augment_batch(batch[0], seed_pair, strength, ops), *batch[1:])

        dataset = dataset.map(augment, num_parallel_calls=tf.data.AUTOTUNE, deterministic=False)
    if not with_labels:
        dataset = dataset.map(lambda pixels: pixels)
    return dataset.prefetch(tf.data.AUTOTUNE)
