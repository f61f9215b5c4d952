"""The model's own view of images: the pooled backbone features that its prediction layer reads."""

from __future__ import annotations

from pathlib import Path

import numpy as np


def feature_model(model):
    """pixels -> the pooled backbone output (an ensemble: its members' features side by side)."""
    import keras

    from pipelines.training.zoo import BACKBONE_NAME

    members = [layer for layer in model.layers if layer.name.startswith("member_")] or [model]
    pixels = keras.Input(shape=model.input_shape[1:], dtype="float32")
    outputs = [
        member.get_layer(BACKBONE_NAME)(member.get_layer("normalization")(pixels)) for member in members
    ]
    return keras.Model(pixels, outputs[0] if len(outputs) == 1 else keras.ops.concatenate(outputs, axis=-1))


def image_embeddings(model, data_root: Path, image_paths: list[str], batch: int = 32) -> np.ndarray:
    """[N, D] features of the images, framed exactly as the model sees them when served."""
    from pipelines.evaluation.explain import frame_image

    features = feature_model(model)
    size = tuple(int(value) for value in model.input_shape[1:3])
    result = []
    for start in range(0, len(image_paths), batch):
        pixels = np.stack(
            [
                frame_image((Path(data_root) / path).read_bytes(), size)[0]
                for path in image_paths[start : start + batch]
            ]
        )
        result.append(np.asarray(features(pixels, training=False), dtype=np.float32))
    return np.concatenate(result) if result else np.zeros((0, 0), np.float32)
