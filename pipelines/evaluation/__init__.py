"""Study-level evaluation of trained models: metrics, plots, the MURA kappa table."""

from __future__ import annotations

from typing import TYPE_CHECKING

from mura_core.doors import open_door

if TYPE_CHECKING:
    from pipelines.evaluation import plots as plots
    from pipelines.evaluation.api import evaluate_run as evaluate_run
    from pipelines.evaluation.artifacts import OPERATING_POINT_FILE as OPERATING_POINT_FILE
    from pipelines.evaluation.artifacts import download_model as download_model
    from pipelines.evaluation.artifacts import run_manifest as run_manifest
    from pipelines.evaluation.artifacts import split_rows as split_rows
    from pipelines.evaluation.bootstrap import interval as interval
    from pipelines.evaluation.bootstrap import paired_differences as paired_differences
    from pipelines.evaluation.calibration import OperatingPoint as OperatingPoint
    from pipelines.evaluation.calibration import fit_operating_point as fit_operating_point
    from pipelines.evaluation.explain import frame_image as frame_image
    from pipelines.evaluation.explain import image_heatmaps as image_heatmaps
    from pipelines.evaluation.gradcam import has_zoo_layout as has_zoo_layout
    from pipelines.evaluation.gradcam import heatmaps as heatmaps
    from pipelines.evaluation.gradcam import networks_of as networks_of
    from pipelines.evaluation.holdout import scored_holdout_studies as scored_holdout_studies
    from pipelines.evaluation.holdout import stored_holdout_studies as stored_holdout_studies
    from pipelines.evaluation.metrics import Uncertainty as Uncertainty
    from pipelines.evaluation.metrics import evaluate_predictions as evaluate_predictions
    from pipelines.evaluation.metrics import study_scores as study_scores
    from pipelines.evaluation.plots import evaluation_figures as evaluation_figures
    from pipelines.evaluation.predict import score_images as score_images
    from pipelines.evaluation.report import json_safe as json_safe

# The front door: what other rooms may use, by the module of the room that defines it (loaded on
# first use, so importing the room stays cheap).
__all__, __getattr__ = open_door(
    __name__,
    {
        "OPERATING_POINT_FILE": "artifacts",
        "OperatingPoint": "calibration",
        "Uncertainty": "metrics",
        "download_model": "artifacts",
        "evaluate_predictions": "metrics",
        "evaluate_run": "api",
        "evaluation_figures": "plots",
        "fit_operating_point": "calibration",
        "frame_image": "explain",
        "has_zoo_layout": "gradcam",
        "heatmaps": "gradcam",
        "image_heatmaps": "explain",
        "interval": "bootstrap",
        "json_safe": "report",
        "networks_of": "gradcam",
        "paired_differences": "bootstrap",
        "plots": None,
        "run_manifest": "artifacts",
        "score_images": "predict",
        "scored_holdout_studies": "holdout",
        "split_rows": "artifacts",
        "stored_holdout_studies": "holdout",
        "study_scores": "metrics",
    },
)
