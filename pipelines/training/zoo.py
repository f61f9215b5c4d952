"""The model zoo: architectures by name, each with its own input normalisation inside the graph.

Every model takes float32 [None, H, W, 3] pixels in 0..255 and ends in a float32 head (sigmoid [None, 1]
for binary tasks, softmax [None, 14] for 14cls), also under mixed precision. Only keras.layers and
keras.ops are used so the models run under any Keras backend.
"""

from __future__ import annotations

import keras

from mura_core.contracts import Task
from pipelines.training.architectures import check_input_size, get_architecture, resolve_weights
from pipelines.training.layers import ImageNormalization

BACKBONE_NAME = "backbone"


def _baseline_backbone(image_size: tuple[int, int]) -> keras.Model:
    """A small custom CNN like the seed's: four conv blocks and global pooling."""
    inputs = keras.Input(shape=(*image_size, 3))
    features = inputs
    for filters in (16, 32, 64, 96):
        features = keras.layers.Conv2D(filters, 3, padding="same", use_bias=False)(features)
        features = keras.layers.BatchNormalization(momentum=0.9)(
            features
        )  # few steps per epoch on small sets
        features = keras.layers.Activation("relu")(features)
        features = keras.layers.MaxPooling2D(2)(features)
    # Max pooling keeps a small bright plate or dark line visible; average keeps the global layout.
    pooled = keras.layers.Concatenate()(
        [keras.layers.GlobalAveragePooling2D()(features), keras.layers.GlobalMaxPooling2D()(features)]
    )
    return keras.Model(inputs, pooled, name=BACKBONE_NAME)


def build_backbone(arch_name: str, image_size: tuple[int, int], weights: str | None) -> keras.Model:
    """The feature extractor (no head) of `arch_name`, named `backbone`, pooled to a vector."""
    arch = get_architecture(arch_name)
    check_input_size(arch_name, image_size)
    if arch.application is None:
        return _baseline_backbone(image_size)
    constructor = getattr(keras.applications, arch.application)
    backbone = constructor(
        include_top=False,
        weights=resolve_weights(arch_name, weights),
        input_shape=(*image_size, 3),
        pooling="avg",
        **dict(arch.extra_kwargs),
    )
    backbone.name = BACKBONE_NAME
    return backbone


def build_model(
    arch_name: str,
    task: Task,
    image_size: tuple[int, int],
    weights: str | None = None,
    dropout: float = 0.2,
    train_batch_norm: bool = False,
) -> keras.Model:
    """Input 0..255 pixels -> backbone normalisation -> backbone -> dropout -> float32 head for `task`.

    A pretrained backbone keeps its BatchNorm statistics unless `train_batch_norm` (the MURA paper
    fine-tunes DenseNet-169 end to end, statistics included): its BatchNorm layers are made
    non-trainable, which in Keras 3 also runs them in inference mode. (Calling the backbone with
    `training=False` while building the functional model does not: fit() still updates the statistics.)
    """
    arch = get_architecture(arch_name)
    backbone = build_backbone(arch_name, image_size, weights)
    pretrained = resolve_weights(arch_name, weights) is not None
    inputs = keras.Input(shape=(*image_size, 3), name="image", dtype="float32")
    normalized = ImageNormalization(arch.normalization, name="normalization")(inputs)
    if pretrained and not train_batch_norm:
        for layer in _batch_norms(backbone):
            layer.trainable = False
    features = backbone(normalized)
    features = keras.layers.Dropout(dropout, name="dropout")(features)
    outputs = keras.layers.Dense(task.units, activation=task.activation, dtype="float32", name="prediction")(
        features
    )
    return keras.Model(inputs, outputs, name=f"{task.model_name}_{arch_name}")


def _batch_norms(backbone: keras.Model) -> list[keras.layers.Layer]:
    return [layer for layer in backbone.layers if isinstance(layer, keras.layers.BatchNormalization)]


def set_backbone_trainable(model: keras.Model, fine_tune_layers: int, train_batch_norm: bool = True) -> int:
    """Freeze the backbone except its top `fine_tune_layers` layers (-1 = all); returns how many train.

    Without `train_batch_norm` the BatchNorm layers stay frozen (inference mode) even when unfrozen.
    """
    backbone = model.get_layer(BACKBONE_NAME)
    layers = [layer for layer in backbone.layers if layer.weights]
    count = len(layers) if fine_tune_layers < 0 else min(fine_tune_layers, len(layers))
    backbone.trainable = count > 0
    for position, layer in enumerate(layers):
        is_norm = isinstance(layer, keras.layers.BatchNormalization)
        layer.trainable = position >= len(layers) - count and (train_batch_norm or not is_norm)
    return count
