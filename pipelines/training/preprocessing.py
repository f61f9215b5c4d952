"""Image preprocessing shared by the tf.data input pipeline and the exported serving graph.

Training and serving call the same functions, so there is no skew: decode (PNG or JPEG) to one grey
channel, aspect-preserving resize with zero padding to the model's input size, rounding to uint8, and
only then three equal channels as float32 in 0..255; each backbone's own normalisation is a layer
inside the Keras model. X-rays are grey, so working on one channel does a third of the resize (and
augmentation) work, and the uint8 grey image is what the training pipeline caches (a twelfth of the
memory of float32 RGB).
"""

from __future__ import annotations

import tensorflow as tf

MODEL_CHANNELS = 3  # the backbones take RGB input; the three channels carry the same grey value


def decode_grey(image_bytes: tf.Tensor) -> tf.Tensor:
    """Decode one encoded PNG/JPEG (scalar string tensor) to uint8 grey [h, w, 1].

    Colour images become luma (libpng/libjpeg's RGB-to-grey); grey images stored as RGB keep their
    exact values, since equal channels give the same luma.
    """
    image = tf.io.decode_image(image_bytes, channels=1, expand_animations=False)
    image.set_shape([None, None, 1])
    return image


def fitted_size(
    height: tf.Tensor, width: tf.Tensor, image_size: tuple[int, int]
) -> tuple[tf.Tensor, tf.Tensor]:
    """int32 (new_height, new_width) of an image of `height` x `width` scaled to fit in `image_size`.

    Integer ops only (not tf.image.resize_with_pad, whose float rounding differs between eager and
    graph mode), so every caller gets the same size: the limiting side fills the target exactly and
    the other is scaled with floor division.
    """
    target_height, target_width = (int(value) for value in image_size)
    height, width = tf.cast(height, tf.int64), tf.cast(width, tf.int64)
    one = tf.constant(1, tf.int64)
    fits_height = height * target_width >= width * target_height
    new_height = tf.where(
        fits_height, tf.constant(target_height, tf.int64), tf.maximum(one, height * target_width // width)
    )
    new_width = tf.where(
        fits_height, tf.maximum(one, width * target_height // height), tf.constant(target_width, tf.int64)
    )
    return tf.cast(new_height, tf.int32), tf.cast(new_width, tf.int32)


def resize_with_padding(image: tf.Tensor, image_size: tuple[int, int]) -> tf.Tensor:
    """Resize uint8 [h, w, C] keeping the aspect ratio, pad with black to `image_size`; uint8 [H, W, C].

    Bilinear resize, rounded to the nearest integer; the pad offsets are integers (content centred,
    an odd spare pixel goes to the bottom/right).
    """
    target_height, target_width = (int(value) for value in image_size)
    shape = tf.shape(image)
    new_height, new_width = fitted_size(shape[0], shape[1], image_size)
    resized = tf.image.resize(image, tf.stack([new_height, new_width]), method="bilinear")
    # Bilinear weights are convex, so the values stay in 0..255; the clip only guards float dust.
    rounded = tf.cast(tf.round(tf.clip_by_value(resized, 0.0, 255.0)), tf.uint8)
    top, left = (target_height - new_height) // 2, (target_width - new_width) // 2
    padded = tf.pad(
        rounded,
        [[top, target_height - new_height - top], [left, target_width - new_width - left], [0, 0]],
    )
    padded.set_shape([target_height, target_width, image.shape[-1]])
    return padded


def decode_and_resize_grey(image_bytes: tf.Tensor, image_size: tuple[int, int]) -> tf.Tensor:
    """Encoded image bytes -> uint8 grey [H, W, 1]: what the training pipeline caches and augments."""
    return resize_with_padding(decode_grey(image_bytes), image_size)


def grey_to_model_pixels(grey: tf.Tensor) -> tf.Tensor:
    """uint8 grey [..., H, W, 1] (one image or a batch) -> float32 [..., H, W, 3] in 0..255."""
    pixels = tf.cast(grey, tf.float32)
    return tf.tile(pixels, [1] * (pixels.shape.rank - 1) + [MODEL_CHANNELS])


def decode_and_resize(image_bytes: tf.Tensor, image_size: tuple[int, int]) -> tf.Tensor:
    """Encoded image bytes -> float32 [H, W, 3] in 0..255, as the model expects."""
    pixels = grey_to_model_pixels(decode_and_resize_grey(image_bytes, image_size))
    pixels.set_shape([int(image_size[0]), int(image_size[1]), MODEL_CHANNELS])
    return pixels
