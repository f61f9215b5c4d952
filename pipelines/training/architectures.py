"""The zoo's architectures by name: how each is built, normalised and what ImageNet file it needs.

Pure Python (no Keras), so presets, the CLI and the DAG form check names and sizes before any heavy
import; pipelines.training.zoo builds the models.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

from mura_core.errors import ConfigError

_WEIGHTS_BASE = "https://storage.googleapis.com/tensorflow/keras-applications/"


@dataclass(frozen=True)
class Architecture:
    """How to build one backbone: keras.applications constructor, normalisation, smallest input."""

    name: str
    application: str | None  # attribute of keras.applications; None for the custom baseline
    normalization: str
    min_input: int
    weights_file: str | None = None  # the no-top ImageNet file keras.applications looks for
    weights_url: str | None = None
    extra_kwargs: tuple = ()


ARCHITECTURES: dict[str, Architecture] = {
    arch.name: arch
    for arch in (
        Architecture("baseline_cnn", None, "unit", 32),
        Architecture(
            "densenet121",
            "DenseNet121",
            "torch",
            32,
            "densenet121_weights_tf_dim_ordering_tf_kernels_notop.h5",
            "densenet/",
        ),
        Architecture(
            "densenet169",
            "DenseNet169",
            "torch",
            32,
            "densenet169_weights_tf_dim_ordering_tf_kernels_notop.h5",
            "densenet/",
        ),
        Architecture(
            "resnet50",
            "ResNet50",
            "caffe",
            32,
            "resnet50_weights_tf_dim_ordering_tf_kernels_notop.h5",
            "resnet/",
        ),
        Architecture(
            "resnet152",
            "ResNet152",
            "caffe",
            32,
            "resnet152_weights_tf_dim_ordering_tf_kernels_notop.h5",
            "resnet/",
        ),
        Architecture(
            "inception_v3",
            "InceptionV3",
            "tf",
            75,
            "inception_v3_weights_tf_dim_ordering_tf_kernels_notop.h5",
            "inception_v3/",
        ),
        Architecture(
            "xception",
            "Xception",
            "tf",
            71,
            "xception_weights_tf_dim_ordering_tf_kernels_notop.h5",
            "xception/",
        ),
        # EfficientNetV2 and MobileNetV3 carry their own rescaling layers (include_preprocessing).
        Architecture(
            "efficientnetv2_b0",
            "EfficientNetV2B0",
            "none",
            32,
            "efficientnetv2-b0_notop.h5",
            "efficientnet_v2/",
            (("include_preprocessing", True),),
        ),
        Architecture(
            "efficientnetv2_s",
            "EfficientNetV2S",
            "none",
            32,
            "efficientnetv2-s_notop.h5",
            "efficientnet_v2/",
            (("include_preprocessing", True),),
        ),
        Architecture(
            "mobilenet_v3_small",
            "MobileNetV3Small",
            "none",
            32,
            "weights_mobilenet_v3_small_224_1.0_float_no_top_v2.h5",
            "mobilenet_v3/",
            (("include_preprocessing", True),),
        ),
    )
}


def get_architecture(name: str) -> Architecture:
    """The zoo entry for `name`, or a ConfigError listing the known names."""
    if name not in ARCHITECTURES:
        raise ConfigError(f"unknown architecture {name!r}; choose one of: {', '.join(ARCHITECTURES)}")
    return ARCHITECTURES[name]


def check_input_size(arch_name: str, image_size: tuple[int, int]) -> None:
    """Raise ConfigError when `image_size` is below what the architecture accepts."""
    arch = get_architecture(arch_name)
    if min(image_size) < arch.min_input:
        raise ConfigError(
            f"image_size {list(image_size)} is too small for {arch_name}: it needs at least "
            f"{arch.min_input}x{arch.min_input}; pass a larger image_size"
        )


def keras_cache_dir() -> Path:
    """The folder keras.applications reads downloaded weights from ($KERAS_HOME/models)."""
    keras_home = os.environ.get("KERAS_HOME", os.path.join(os.path.expanduser("~"), ".keras"))
    return Path(keras_home) / "models"


def resolve_weights(arch_name: str, weights: str | None) -> str | None:
    """Turn the `weights` setting into what keras.applications takes; clear error when unavailable."""
    arch = get_architecture(arch_name)
    if weights in (None, "none", "None", ""):
        return None
    if arch.application is None:
        raise ConfigError(f"{arch_name} has no pretrained weights; use weights: null")
    if weights == "imagenet":
        if arch.weights_file is None:
            raise ConfigError(f"{arch_name} has no ImageNet weights file listed in the zoo")
        cached = keras_cache_dir() / arch.weights_file
        if not cached.is_file() and os.environ.get("MURA_ALLOW_WEIGHT_DOWNLOAD", "0") != "1":
            raise ConfigError(
                f"ImageNet weights for {arch_name} are not in the Keras cache and are not downloaded here: "
                f"place {arch.weights_file} (from {_WEIGHTS_BASE}{arch.weights_url}{arch.weights_file}) in "
                f"{cached.parent}/, or set MURA_ALLOW_WEIGHT_DOWNLOAD=1 on a machine with internet, "
                "or use weights: null or a local weights file path"
            )
        return "imagenet"
    path = Path(weights).expanduser()
    if not path.is_file():
        raise ConfigError(
            f"weights file {path} not found; give an existing .h5/.weights.h5 path, imagenet or null"
        )
    return str(path)


ARCHITECTURE_CHOICES = tuple(ARCHITECTURES)
