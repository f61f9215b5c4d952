"""Score manifest rows with a trained model through the same tf.data decoding as training (in order)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from mura_core.contracts import BODY_PARTS
from mura_core.progress import enabled as progress_enabled


def abnormal_probability(outputs: np.ndarray, multiclass: bool) -> np.ndarray:
    """The abnormality probability of each image: the sigmoid, or the 14cls mass on abnormal classes."""
    outputs = np.asarray(outputs, dtype=np.float64)
    if not multiclass:
        return outputs.reshape(-1)
    return outputs[:, len(BODY_PARTS) :].sum(axis=1)


def part_probabilities(outputs: np.ndarray) -> np.ndarray:
    """14cls: probability of each body part (normal + abnormal class of the part) -> [N, 7]."""
    outputs = np.asarray(outputs, dtype=np.float64)
    return outputs[:, : len(BODY_PARTS)] + outputs[:, len(BODY_PARTS) :]


def score_images(
    model, rows: pd.DataFrame, data_root: Path, class_map: dict, batch_size: int = 32
) -> pd.DataFrame:
    """`rows` with a `probability` column (and predicted parts for 14cls); order is kept, never shuffled."""
    from mura_core.contracts import parse_task
    from pipelines.training import make_dataset

    task = parse_task(class_map["task"])
    image_size = tuple(class_map["image_size"])
    dataset = make_dataset(
        rows, data_root, task, image_size, batch_size, training=False, cache="none", with_labels=False
    )
    outputs = model.predict(dataset, verbose=1 if progress_enabled() else 0)
    scored = rows.reset_index(drop=True).copy()
    scored["probability"] = abnormal_probability(outputs, task.is_multiclass)
    if task.is_multiclass:
        parts = part_probabilities(outputs)
        for index in range(len(BODY_PARTS)):
            scored[f"part_probability_{index}"] = parts[:, index]
        scored["predicted_part"] = [BODY_PARTS[i] for i in parts.argmax(axis=1)]
    return scored
