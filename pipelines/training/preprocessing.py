"""Image preprocessing shared by the tf.data input pipeline and the exported serving graph.

Training and serving call the same function, so there is no skew: decode (PNG or JPEG), grey to
three channels, aspect-preserving resize with zero padding to the model's input size. The output is
float32 in 0..255; each backbone's own normalisation is a layer inside the Keras model.
"""

from __future__ import annotations

import tensorflow as tf


def decode_image(image_bytes: tf.Tensor) -> tf.Tensor:
    """Decode one encoded PNG/JPEG (scalar string tensor) to uint8 [h, w, 3]."""
    image = tf.io.decode_image(image_bytes, channels=3, expand_animations=False)
    image.set_shape([None, None, 3])
    return image


def resize_with_padding(image: tf.Tensor, image_size: tuple[int, int]) -> tf.Tensor:
    """Resize keeping the aspect ratio and pad with black to `image_size`; float32 0..255.

    The sizes and offsets are computed with integer ops (not tf.image.resize_with_pad, whose float
    rounding differs between eager and graph mode), so every caller gets the same pixels.
    """
    target_height, target_width = image_size
    shape = tf.shape(image)
    height, width = tf.cast(shape[0], tf.int64), tf.cast(shape[1], tf.int64)
    # The limiting side fills the target exactly; the other is scaled with integer floor division.
    fits_height = height * target_width >= width * target_height
    new_height = tf.where(fits_height, tf.constant(target_height, tf.int64),
                          tf.maximum(tf.constant(1, tf.int64), height * target_width // width))
    new_width = tf.where(fits_height, tf.maximum(tf.constant(1, tf.int64), width * target_height // height),
                         tf.constant(target_width, tf.int64))
    new_height, new_width = tf.cast(new_height, tf.int32), tf.cast(new_width, tf.int32)
    resized = tf.image.resize(tf.cast(image, tf.float32), tf.stack([new_height, new_width]), method="bilinear")
    padded = tf.image.pad_to_bounding_box(resized, (target_height - new_height) // 2,
                                          (target_width - new_width) // 2, target_height, target_width)
    return tf.clip_by_value(padded, 0.0, 255.0)


def decode_and_resize(image_bytes: tf.Tensor, image_size: tuple[int, int]) -> tf.Tensor:
    """Encoded image bytes -> float32 [H, W, 3] in 0..255, as the model expects."""
    return resize_with_padding(decode_image(image_bytes), image_size)
