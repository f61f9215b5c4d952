"""The model's own view of images: the pooled backbone features that its prediction layer reads."""

from __future__ import annotations

from pathlib import Path

import numpy as np


def feature_models(model) -> list:
    """pixels -> the pooled backbone output, one model per network (an ensemble: per member)."""
    import keras

    from pipelines.training import BACKBONE_NAME

    members = [layer for layer in model.layers if layer.name.startswith("member_")] or [model]
    extractors = []
    for member in members:
        pixels = keras.Input(shape=model.input_shape[1:], dtype="float32")
        pooled = member.get_layer(BACKBONE_NAME)(member.get_layer("normalization")(pixels))
        extractors.append(keras.Model(pixels, pooled))
    return extractors


def image_embeddings(model, data_root: Path, image_paths: list[str], batch: int = 32) -> np.ndarray:
    """[N, D] features of the images, framed exactly as the model sees them when served."""
    from pipelines.evaluation import frame_image

    extractors = feature_models(model)
    height, width = model.input_shape[1:3]
    size = (int(height), int(width))
    result = []
    for start in range(0, len(image_paths), batch):
        pixels = np.stack(
            [
                frame_image((Path(data_root) / path).read_bytes(), size)[0]
                for path in image_paths[start : start + batch]
            ]
        )
        # An ensemble's members side by side: the features its averaged prediction rests on.
        per_network = [np.asarray(extract(pixels, training=False), np.float32) for extract in extractors]
        result.append(np.concatenate(per_network, axis=-1))
    return np.concatenate(result) if result else np.zeros((0, 0), np.float32)
