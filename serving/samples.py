"""Small real models and images for smoke tests, benchmarks and demos of the serving path.

They follow the trained models' contract (float32 [None, H, W, 3] in 0..255 in; sigmoid [None, 1] or
softmax [None, 14] out) so export, publish and serve can be exercised before a real model exists.
"""

from __future__ import annotations

import io
from pathlib import Path

import numpy as np

from mura_core.contracts import BODY_PARTS, SERVING_SIGNATURE


def tiny_keras_model(task: str = "binary", image_size: tuple[int, int] = (32, 32), seed: int = 0):
    """A small CNN (keras.layers only) with the trained models' input and output contract and the zoo's
    layout (normalization -> backbone -> prediction), so it exports with every signature."""
    import keras

    keras.utils.set_random_seed(seed)
    height, width = image_size
    image = keras.Input(shape=(height, width, 3))
    maps = keras.layers.Conv2D(4, 3, strides=2, activation="relu")(image)
    backbone = keras.Model(image, keras.layers.GlobalAveragePooling2D()(maps), name="backbone")
    inputs = keras.Input(shape=(height, width, 3), name="pixels")
    hidden = backbone(keras.layers.Rescaling(1.0 / 255.0, name="normalization")(inputs))
    if task.startswith("binary"):
        outputs = keras.layers.Dense(1, activation="sigmoid", name="prediction")(hidden)
    else:
        outputs = keras.layers.Dense(2 * len(BODY_PARTS), activation="softmax", name="prediction")(hidden)
    return keras.Model(inputs, outputs, name=f"tiny_{task.replace(':', '_')}")


def sample_png(width: int, height: int, seed: int = 0, grey: bool = True) -> bytes:
    """An X-ray-like random PNG of the given size (grey or RGB)."""
    from PIL import Image

    rng = np.random.default_rng(seed)
    shape = (height, width) if grey else (height, width, 3)
    pixels = rng.integers(0, 256, size=shape, dtype=np.uint8)
    buffer = io.BytesIO()
    Image.fromarray(pixels).save(buffer, format="PNG")
    return buffer.getvalue()


def sample_jpeg(width: int, height: int, seed: int = 0) -> bytes:
    """A random RGB JPEG of the given size."""
    from PIL import Image

    rng = np.random.default_rng(seed)
    pixels = rng.integers(0, 256, size=(height, width, 3), dtype=np.uint8)
    buffer = io.BytesIO()
    Image.fromarray(pixels).save(buffer, format="JPEG", quality=90)
    return buffer.getvalue()


def write_linear_saved_model(out_dir: Path, slope: float = 0.5, intercept: float = 2.0) -> Path:
    """A generic (non-MURA) SavedModel y = slope * x + intercept on input `x` float32 [None]."""
    import tensorflow as tf

    class Linear(tf.Module):
        def __init__(self):
            super().__init__()
            self.slope = tf.Variable(slope, dtype=tf.float32)
            self.intercept = tf.Variable(intercept, dtype=tf.float32)

        @tf.function(input_signature=[tf.TensorSpec([None], tf.float32, name="x")])
        def serve(self, x):
            return {"y": self.slope * x + self.intercept}

    module = Linear()
    tf.saved_model.save(module, str(out_dir), signatures={SERVING_SIGNATURE: module.serve})
    return Path(out_dir)
