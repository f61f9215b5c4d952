"""tf.data input pipeline from the manifest: parallel decode, resize with padding, augmentation, prefetch.

Decoding and resizing go through pipelines.training.preprocessing, the same functions the exported
serving graph uses, so training and serving see identical pixels. The pipeline carries one uint8 grey
channel (cached that way) through augmentation and makes the model's three float32 channels last.
Evaluation order is never shuffled.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import tensorflow as tf

from mura_core.contracts import Task
from mura_core.errors import DataError
from pipelines.training.augment import augment_batch, augment_image
from pipelines.training.preprocessing import decode_and_resize_grey, decode_grey, grey_to_model_pixels
from pipelines.training.tasks import targets

# Grey to three float32 channels only at the very end, on whole batches; XLA writes the three copies
# in one pass, about 2.5x faster than tf.tile on CPU. Same values as decode_and_resize (cast and copy).
_model_pixels = tf.function(grey_to_model_pixels, jit_compile=True)


def _seed_pairs(seed: int) -> tf.data.Dataset:
    """An endless seeded stream of int64 seed pairs for stateless random ops, new each epoch."""
    return tf.data.Dataset.random(seed=seed, rerandomize_each_iteration=True).batch(2)


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
    columns = _columns(frame, data_root, task, weights, with_labels)
    images = len(columns[0])
    dataset = tf.data.Dataset.from_tensor_slices(columns)
    height, width = image_size
    size = (int(height), int(width))
    augment = training and augment_strength > 0 and bool(augment_ops)
    strength, ops = float(augment_strength), tuple(augment_ops)
    cached = cache == "memory"
    if training and not cached:
        # Without a cache shuffle the (cheap) paths, not decoded images, to keep memory small.
        dataset = dataset.shuffle(images, seed=seed, reshuffle_each_iteration=True)
    # Evaluation keeps the manifest order; training order is shuffled anyway, so it may be relaxed.
    parallel = {"num_parallel_calls": tf.data.AUTOTUNE, "deterministic": not training}
    if augment and not cached:
        dataset = _augmented_per_image(dataset, size, batch_size, strength, ops, seed, parallel)
    else:
        dataset = dataset.map(
            lambda path, *rest: (decode_and_resize_grey(tf.io.read_file(path), size), *rest), **parallel
        )
        if cached:
            # The decoded, resized grey uint8 images; augmentation comes after, so it differs each epoch.
            dataset = dataset.cache()
            if training:
                dataset = dataset.shuffle(images, seed=seed, reshuffle_each_iteration=True)
        dataset = _batch_pixels(dataset.batch(batch_size), augment, strength, ops, seed, parallel)
    if not with_labels:
        dataset = dataset.map(lambda pixels: pixels)
    return dataset.prefetch(tf.data.AUTOTUNE)


def _columns(
    frame: pd.DataFrame, data_root: Path, task: Task, weights: dict | None, with_labels: bool
) -> tuple:
    """The dataset's tensor slices: the image paths, then (when labelled) targets and sample weights."""
    root = Path(data_root)
    paths = np.array([str(root / path) for path in frame["image_path"]])
    columns: tuple = (paths,)
    if with_labels:
        columns += (targets(task, frame),)
        if weights is not None:
            columns += (sample_weights(frame, weights),)
    return columns


def _augmented_per_image(
    dataset: tf.data.Dataset,
    size: tuple[int, int],
    batch_size: int,
    strength: float,
    ops: tuple[str, ...],
    seed: int,
    parallel: dict,
) -> tf.data.Dataset:
    """Uncached rows read, resized and augmented image by image, then batched as model pixels."""
    # Nothing to cache: resize-with-padding and augmentation in one resampling of each decoded
    # image (one seed pair per image from a seeded stream, new each epoch).
    dataset = tf.data.Dataset.zip((dataset, _seed_pairs(seed)))

    def load_augmented(row, seed_pair):
        image = decode_grey(tf.io.read_file(row[0]))
        return (augment_image(image, seed_pair, strength, ops, size), *row[1:])

    dataset = dataset.map(load_augmented, **parallel).batch(batch_size)
    return dataset.map(lambda grey, *rest: (_model_pixels(grey), *rest), **parallel)


def _batch_pixels(
    dataset: tf.data.Dataset,
    augment: bool,
    strength: float,
    ops: tuple[str, ...],
    seed: int,
    parallel: dict,
) -> tf.data.Dataset:
    """Batches of grey images as model pixels, augmented batch by batch when `augment`."""
    if augment:
        # One seed pair per batch from a seeded stream, new each epoch, for stateless random ops.
        dataset = tf.data.Dataset.zip((dataset, _seed_pairs(seed)))
        return dataset.map(
            lambda batch, seed_pair: (
                _model_pixels(augment_batch(batch[0], seed_pair, strength, ops)),
                *batch[1:],
            ),
            **parallel,
        )
    return dataset.map(lambda grey, *rest: (_model_pixels(grey), *rest), **parallel)
