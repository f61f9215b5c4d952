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
    """Resize keeping the aspect ratio and pad with black to `image_size`; float32 0..255."""
    height, width = image_size
    resized = tf.image.resize_with_pad(tf.cast(image, tf.float32), height, width, method="bilinear")
    return tf.clip_by_value(resized, 0.0, 255.0)


def decode_and_resize(image_bytes: tf.Tensor, image_size: tuple[int, int]) -> tf.Tensor:
    """Encoded image bytes -> float32 [H, W, 3] in 0..255, as the model expects."""
    return resize_with_padding(decode_image(image_bytes), image_size)
