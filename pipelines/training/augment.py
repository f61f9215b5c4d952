"""Training-time augmentation of grey batches in the tf.data graph (flip, rotate, zoom, contrast).

Flip, rotation and zoom are folded into one affine map per image and applied as a single bilinear
resampling (black fill, as ImageProjectiveTransformV3 with CONSTANT fill); contrast is a per-image
affine op around the image mean. Resampling and contrast run as one XLA-compiled function on the one
grey channel (measured single-threaded at 320x320: 0.27 ms per image, against 0.79 ms for
ImageProjectiveTransformV3 on the same channel). Two entry points: augment_batch for cached,
already resized batches, and augment_image, which folds resize-with-padding into the same single
resampling when nothing is cached. Random numbers are stateless and come from seeded seed-pair
streams, so a run with the same seed sees the same augmentations.
"""

from __future__ import annotations

import functools
import math

import tensorflow as tf

from pipelines.training.preprocessing import fitted_size

MAX_ROTATION_DEGREES = 30.0  # the MURA paper's augmentation
MAX_ZOOM = 0.10
MAX_CONTRAST = 0.10
GEOMETRIC_OPS = ("flip", "rotate", "zoom")


def _uniform(shape, seed, low: float, high: float) -> tf.Tensor:
    return tf.random.stateless_uniform(shape, seed=seed, minval=low, maxval=high)


def affine_transforms(
    flip: tf.Tensor, angle: tf.Tensor, scale: tf.Tensor, height: tf.Tensor, width: tf.Tensor
) -> tf.Tensor:
    """[N, 6] maps (a0..a2, b0..b2): output pixel (x, y) samples input (a0 x + a1 y + a2, b0 x + b1 y + b2).

    The image is flipped first (where `flip`), then rotated by `angle` radians and zoomed by `scale`
    about its centre: the flipped image is sampled at R(angle) * ((x, y) - centre) / scale + centre,
    and a flipped sample at x reads the original at width - 1 - x.
    """
    cos, sin = tf.cos(angle) / scale, tf.sin(angle) / scale
    centre_x, centre_y = (width - 1.0) / 2.0, (height - 1.0) / 2.0
    row_x = [cos, -sin, centre_x - cos * centre_x + sin * centre_y]
    row_y = [sin, cos, centre_y - sin * centre_x - cos * centre_y]
    sign = tf.where(flip, -1.0, 1.0)
    offset = tf.where(flip, width - 1.0, 0.0)
    row_x = [sign * row_x[0], sign * row_x[1], offset + sign * row_x[2]]
    return tf.stack(row_x + row_y, axis=1)


def _resample(
    flat: tf.Tensor,
    starts: tf.Tensor,
    source_size: tuple[tf.Tensor, tf.Tensor],
    transforms: tf.Tensor,
    output_size: tuple[int, int],
) -> tf.Tensor:
    """Bilinear resampling, black outside the source; float32 [N, output_height, output_width].

    `flat` holds N uint8 grey images of `source_size` (height, width) from offsets `starts` [N];
    `transforms` [N, 6] maps each output pixel to source coordinates.
    """
    height, width = source_size
    columns = tf.cast(tf.range(output_size[1]), tf.float32)[None, None, :]
    rows = tf.cast(tf.range(output_size[0]), tf.float32)[None, :, None]
    maps = transforms[:, :, None, None]
    # Points further out than one pixel read only black, so clipping them to -1 / size changes nothing.
    source_x = tf.clip_by_value(
        maps[:, 0] * columns + maps[:, 1] * rows + maps[:, 2], -1.0, tf.cast(width, tf.float32)
    )
    source_y = tf.clip_by_value(
        maps[:, 3] * columns + maps[:, 4] * rows + maps[:, 5], -1.0, tf.cast(height, tf.float32)
    )
    left, top = tf.floor(source_x), tf.floor(source_y)
    across, down = source_x - left, source_y - top
    left, top = tf.cast(left, tf.int32), tf.cast(top, tf.int32)
    first = starts[:, None, None]

    def tap(column, row):
        # Neighbours outside the image are black (constant fill); masks instead of a padded copy
        # save a full pass over the images.
        inside = (column >= 0) & (column < width) & (row >= 0) & (row < height)
        index = first + tf.clip_by_value(row, 0, height - 1) * width + tf.clip_by_value(column, 0, width - 1)
        return tf.where(inside, tf.cast(tf.gather(flat, index), tf.float32), 0.0)

    top_left, top_right = tap(left, top), tap(left + 1, top)
    bottom_left, bottom_right = tap(left, top + 1), tap(left + 1, top + 1)
    upper = top_left + across * (top_right - top_left)
    lower = bottom_left + across * (bottom_right - bottom_left)
    return upper + down * (lower - upper)


def _contrast(pixels: tf.Tensor, factors: tf.Tensor | None) -> tf.Tensor:
    """Scale float32 [N, H, W] about each image's mean by `factors` [N] (None: unchanged); [N, H, W, 1]."""
    if factors is not None:
        mean = tf.reduce_mean(pixels, axis=[1, 2], keepdims=True)
        pixels = tf.clip_by_value((pixels - mean) * factors[:, None, None] + mean, 0.0, 255.0)
    return pixels[..., None]


@tf.function(jit_compile=True)
def _augment_batch_xla(grey, transforms, factors):
    # XLA fuses the coordinate maths, the four gathers and the blend into one loop; the conversion to
    # three channels stays outside (inputs.py): fused here, XLA would redo the gathers per channel.
    count, height, width = tf.shape(grey)[0], tf.shape(grey)[1], tf.shape(grey)[2]
    starts = tf.range(count) * height * width
    pixels = _resample(tf.reshape(grey, [-1]), starts, (height, width), transforms, grey.shape[1:3])
    return _contrast(pixels, factors)


def random_parameters(count, seed: tf.Tensor, strength: float, ops: tuple[str, ...]) -> tuple:
    """(flip [N] bool, angle [N] radians, scale [N], contrast factors [N] or None) from a seed pair."""
    seeds = tf.random.experimental.stateless_split(seed, 4)
    flip = _uniform([count], seeds[0], 0.0, 1.0) < 0.5
    if "flip" not in ops:
        flip = tf.zeros([count], tf.bool)
    max_angle = math.radians(min(MAX_ROTATION_DEGREES * strength, 180.0)) if "rotate" in ops else 0.0
    max_zoom = min(MAX_ZOOM * strength, 0.9) if "zoom" in ops else 0.0
    angle = _uniform([count], seeds[1], -max_angle, max_angle)
    scale = _uniform([count], seeds[2], 1.0 - max_zoom, 1.0 + max_zoom)
    spread = min(MAX_CONTRAST * strength, 0.9)
    factors = _uniform([count], seeds[3], 1.0 - spread, 1.0 + spread) if "contrast" in ops else None
    return flip, angle, scale, factors


def augment_batch(grey: tf.Tensor, seed: tf.Tensor, strength: float, ops: tuple[str, ...]) -> tf.Tensor:
    """Augment a uint8 grey batch [N, H, W, 1] with the per-batch int64 `seed` pair; float32 [N, H, W, 1]."""
    count = tf.shape(grey)[0]
    height = tf.cast(tf.shape(grey)[1], tf.float32)
    width = tf.cast(tf.shape(grey)[2], tf.float32)
    flip, angle, scale, factors = random_parameters(count, seed, strength, ops)
    if not any(op in ops for op in GEOMETRIC_OPS):
        return _contrast(tf.cast(grey[..., 0], tf.float32), factors)
    return _augment_batch_xla(grey, affine_transforms(flip, angle, scale, height, width), factors)


def _image_transform(height, width, seed, strength: float, ops: tuple[str, ...], image_size) -> tuple:
    """(output -> source map [6], contrast factors [1] or None) for one image of `height` x `width`.

    The canvas augmentation (as augment_batch) composed with resize-with-padding: canvas pixel ->
    content pixel (minus the integer pad offset) -> source, with tf.image.resize's half-pixel centres:
    source = (content + 0.5) * source_size / content_size - 0.5.
    """
    target_height, target_width = image_size
    new_height, new_width = fitted_size(height, width, image_size)
    flip, angle, scale, factors = random_parameters(1, seed, strength, ops)
    canvas = affine_transforms(flip, angle, scale, float(target_height), float(target_width))[0]
    step_x = tf.cast(width, tf.float32) / tf.cast(new_width, tf.float32)
    step_y = tf.cast(height, tf.float32) / tf.cast(new_height, tf.float32)
    left = tf.cast((target_width - new_width) // 2, tf.float32)
    top = tf.cast((target_height - new_height) // 2, tf.float32)
    transform = tf.stack(
        [
            canvas[0] * step_x,
            canvas[1] * step_x,
            (canvas[2] - left + 0.5) * step_x - 0.5,
            canvas[3] * step_y,
            canvas[4] * step_y,
            (canvas[5] - top + 0.5) * step_y - 0.5,
        ]
    )
    return transform, factors


@functools.cache
def _image_augmenter(strength: float, ops: tuple[str, ...], image_size: tuple[int, int]):
    """One XLA-compiled per-image augmenter per configuration (strength, ops, output size)."""
    # The per-image maths (random draws, sizes, maps) runs inside the compiled function too,
    # instead of as some thirty tiny TF ops per image.

    def run(flat, source_size, seed):
        transform, factors = _image_transform(source_size[0], source_size[1], seed, strength, ops, image_size)
        pixels = _resample(
            flat, tf.zeros([1], tf.int32), (source_size[0], source_size[1]), transform[None], image_size
        )
        return _contrast(pixels, factors)[0]

    return tf.function(run, jit_compile=True)


def augment_image(
    image: tf.Tensor, seed: tf.Tensor, strength: float, ops: tuple[str, ...], image_size: tuple[int, int]
) -> tf.Tensor:
    """Resize-with-padding and augment one decoded uint8 grey image [h, w, 1] in one resampling.

    float32 [H, W, 1]. The same maps as decode_and_resize_grey followed by augment_batch, composed
    into one bilinear pass from the original pixels: used when nothing is cached, it skips the
    intermediate resized image (and its rounding).
    """
    size = (int(image_size[0]), int(image_size[1]))
    # Pad the flat pixels to the next power of two so XLA compiles once per size class, not per size.
    flat = tf.reshape(image, [-1])
    length = tf.shape(flat)[0]
    bucket = tf.bitwise.left_shift(
        1, tf.cast(tf.math.ceil(tf.math.log(tf.cast(length, tf.float32)) / math.log(2.0)), tf.int32)
    )
    flat = tf.pad(flat, [[0, tf.maximum(bucket, length) - length]])
    augmenter = _image_augmenter(float(strength), tuple(ops), size)
    return augmenter(flat, tf.shape(image)[:2], tf.cast(seed, tf.int64))
