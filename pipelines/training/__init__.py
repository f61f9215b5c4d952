"""Training: model zoo, tasks, tf.data input, fitting, MLflow tracking and tuning.

Importing the package is cheap (no Keras): every entry point loads lazily. Read a saved `model.keras`
with `pipelines.training.layers.load_model`, which registers the zoo's custom layers first.
"""

from __future__ import annotations

from typing import Any

_LAZY = {
    "train": "pipelines.training.run",
    "TrainedRun": "pipelines.training.run",
    "TrainConfig": "pipelines.training.presets",
    "resolve_config": "pipelines.training.presets",
    "build_model": "pipelines.training.zoo",
    "ARCHITECTURES": "pipelines.training.zoo",
    "load_model": "pipelines.training.layers",
    "tune": "pipelines.training.tuning",
}


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        import importlib

        return getattr(importlib.import_module(_LAZY[name]), name)
    raise AttributeError(f"module 'pipelines.training' has no attribute {name!r}")


__all__ = list(_LAZY)
