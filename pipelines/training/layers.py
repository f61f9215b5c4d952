"""Custom Keras layers of the model zoo, registered so `keras.saving.load_model` finds them.

Written with `keras.ops` only, so a saved model runs under any Keras backend.
"""

from __future__ import annotations

import keras
from keras import ops

# Per-channel constants of the backbones' own `preprocess_input` (keras.applications.imagenet_utils).
_TORCH_MEAN = (0.485, 0.456, 0.406)
_TORCH_STD = (0.229, 0.224, 0.225)
_CAFFE_MEAN_BGR = (103.939, 116.779, 123.68)
NORMALIZATION_MODES = ("torch", "caffe", "tf", "unit", "none")


@keras.saving.register_keras_serializable(package="mura")
class ImageNormalization(keras.layers.Layer):
    """Maps RGB pixels in 0..255 to what a backbone was trained on (the `mode` of its preprocess_input)."""

    def __init__(self, mode: str = "unit", **kwargs):
        super().__init__(**kwargs)
        if mode not in NORMALIZATION_MODES:
            raise ValueError(f"unknown normalization mode {mode!r}; expected one of {NORMALIZATION_MODES}")
        self.mode = mode

    def call(self, inputs):
        """Normalise a batch [N, H, W, 3] of 0..255 pixels."""
        pixels = ops.cast(inputs, self.compute_dtype)
        if self.mode == "torch":
            mean = ops.convert_to_tensor(_TORCH_MEAN, dtype=self.compute_dtype)
            std = ops.convert_to_tensor(_TORCH_STD, dtype=self.compute_dtype)
            return (pixels / 255.0 - mean) / std
        if self.mode == "caffe":
            # Caffe-trained ResNets expect BGR with the ImageNet mean subtracted, no scaling.
            bgr = ops.flip(pixels, axis=-1)
            return bgr - ops.convert_to_tensor(_CAFFE_MEAN_BGR, dtype=self.compute_dtype)
        if self.mode == "tf":
            return pixels / 127.5 - 1.0
        if self.mode == "unit":
            return pixels / 255.0
        return pixels

    def compute_output_shape(self, input_shape):
        """Same shape as the input."""
        return input_shape

    def get_config(self):
        """Serialisable config (the mode)."""
        config = super().get_config()
        config["mode"] = self.mode
        return config


@keras.saving.register_keras_serializable(package="mura")
class HorizontalFlip(keras.layers.Layer):
    """Mirrors a batch [N, H, W, C] left to right (flip test-time augmentation of an ensemble)."""

    def call(self, inputs):
        """The mirrored batch."""
        return ops.flip(inputs, axis=2)

    def compute_output_shape(self, input_shape):
        """Same shape as the input."""
        return input_shape


def load_model(path, compile: bool = True):
    """`keras.saving.load_model` with the zoo's custom layers registered (importing this module does it)."""
    return keras.saving.load_model(str(path), compile=compile)
