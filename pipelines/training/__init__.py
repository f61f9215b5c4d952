"""Training: model zoo, tasks, tf.data input, fitting, MLflow tracking and tuning.

Importing the package registers the custom layers, so `keras.saving.load_model` can read a saved
`model.keras`. The heavier entry points load lazily.
"""

from __future__ import annotations

from typing import Any

from pipelines.training import layers as _layers  # noqa: F401  (registers ImageNormalization)

_LAZY = {
    "train": "pipelines.training.run",
    "train_candidates": "pipelines.training.run",
    "TrainResult": "pipelines.training.run",
    "TrainConfig": "pipelines.training.presets",
    "resolve_config": "pipelines.training.presets",
    "build_model": "pipelines.training.zoo",
    "ARCHITECTURES": "pipelines.training.zoo",
    "parse_task": "pipelines.training.tasks",
    "tune": "pipelines.training.tuning",
}


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        import importlib

        return getattr(importlib.import_module(_LAZY[name]), name)
    raise AttributeError(f"module 'pipelines.training' has no attribute {name!r}")


__all__ = list(_LAZY)
