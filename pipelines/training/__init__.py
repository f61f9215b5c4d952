"""Training: model zoo, tasks, tf.data input, fitting, MLflow tracking and tuning.

Importing the package is cheap (no Keras): every entry point loads lazily. Read a saved `model.keras`
with `pipelines.training.layers.load_model`, which registers the zoo's custom layers first.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from mura_core.doors import open_door

if TYPE_CHECKING:
    from pipelines.training.architectures import ARCHITECTURE_CHOICES as ARCHITECTURE_CHOICES
    from pipelines.training.architectures import ARCHITECTURES as ARCHITECTURES
    from pipelines.training.ensemble import combine_runs as combine_runs
    from pipelines.training.inputs import make_dataset as make_dataset
    from pipelines.training.inputs import usable_rows as usable_rows
    from pipelines.training.layers import load_model as load_model
    from pipelines.training.preprocessing import decode_and_resize as decode_and_resize
    from pipelines.training.preprocessing import decode_grey as decode_grey
    from pipelines.training.preprocessing import fitted_size as fitted_size
    from pipelines.training.preprocessing import grey_to_model_pixels as grey_to_model_pixels
    from pipelines.training.preprocessing import resize_with_padding as resize_with_padding
    from pipelines.training.presets import TrainConfig as TrainConfig
    from pipelines.training.presets import available_presets as available_presets
    from pipelines.training.presets import resolve_config as resolve_config
    from pipelines.training.run import TrainedRun as TrainedRun
    from pipelines.training.run import load_manifest as load_manifest
    from pipelines.training.run import train as train
    from pipelines.training.tasks import select_rows as select_rows
    from pipelines.training.tracking import configure_mlflow as configure_mlflow
    from pipelines.training.tuning import tune as tune
    from pipelines.training.zoo import BACKBONE_NAME as BACKBONE_NAME
    from pipelines.training.zoo import build_model as build_model

# The front door: what other rooms may use, by the module of the room that defines it (loaded on
# first use, so importing the room stays cheap).
__all__, __getattr__ = open_door(
    __name__,
    {
        "ARCHITECTURES": "architectures",
        "ARCHITECTURE_CHOICES": "architectures",
        "BACKBONE_NAME": "zoo",
        "TrainConfig": "presets",
        "TrainedRun": "run",
        "available_presets": "presets",
        "build_model": "zoo",
        "combine_runs": "ensemble",
        "configure_mlflow": "tracking",
        "decode_and_resize": "preprocessing",
        "decode_grey": "preprocessing",
        "fitted_size": "preprocessing",
        "grey_to_model_pixels": "preprocessing",
        "load_manifest": "run",
        "load_model": "layers",
        "make_dataset": "inputs",
        "resize_with_padding": "preprocessing",
        "resolve_config": "presets",
        "select_rows": "tasks",
        "train": "run",
        "tune": "tuning",
        "usable_rows": "inputs",
    },
)
