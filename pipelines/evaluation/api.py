"""`evaluate_run()`: score a training run's model on MURA `valid` and log the metrics to the same run."""

from __future__ import annotations

import json
import math
import tempfile
from pathlib import Path
from typing import Any

from mura_core.config import EvaluationParams, load_config
from mura_core.errors import ConfigError, DataError
from mura_core.stages import EvaluationReport
from pipelines.evaluation.artifacts import download_model, run_manifest, split_rows
from pipelines.evaluation.holdout import HOLDOUT_STUDY_PREFIX, operating_point_of
from pipelines.evaluation.report import json_safe


def evaluate_run(
    run_id: str,
    manifest=None,
    data_root: str | Path | None = None,
    *,
    threshold: float | None = None,
    log: bool = True,
    output_dir: Path | None = None,
    params: EvaluationParams | None = None,
) -> EvaluationReport:
    """Study- and image-level metrics of the run's model on `valid`, at the operating point fitted on
    holdout (`threshold` overrides its threshold), with bootstrap intervals; logged as eval.* metrics."""
    from mlflow.tracking import MlflowClient

    from pipelines.evaluation import plots
    from pipelines.evaluation.metrics import Uncertainty, evaluate_predictions, study_scores
    from pipelines.evaluation.predict import score_images
    from pipelines.evaluation.report import flat_metrics, kappa_table
    from pipelines.training import configure_mlflow, load_model

    settings: EvaluationParams = params or load_config().evaluation
    configure_mlflow()
    client = MlflowClient()
    run = _run_of(client, run_id)
    # The download stays out of the folder that is logged: one copy of the model per run.
    with tempfile.TemporaryDirectory() as download, tempfile.TemporaryDirectory() as scratch:
        folder = Path(output_dir) if output_dir is not None else Path(scratch)
        folder.mkdir(parents=True, exist_ok=True)
        model_path, class_map, stored = download_model(run_id, Path(download))
        frame = run_manifest(run_id, manifest)
        root = Path(data_root) if data_root is not None else Path(run.data.tags.get("data.root", ""))
        if not str(root) or not root.is_dir():
            raise DataError(f"data root {root} not found; pass data_root (the folder holding MURA-v1.1/)")
        rows = split_rows(frame, class_map, "valid")
        model = load_model(model_path)
        point = operating_point_of(client, run_id, model, frame, root, class_map, settings, stored, store=log)
        threshold = point.threshold if threshold is None else float(threshold)
        scored = score_images(model, rows, root, class_map, settings.batch_size)
        scored["raw_probability"] = scored["probability"]
        scored["probability"] = point.apply(scored["raw_probability"])
        scored["study_probability"] = point.study_probability(scored)
        uncertainty = Uncertainty(settings.bootstrap_replicates, settings.confidence, settings.bootstrap_seed)
        metrics = evaluate_predictions(scored, threshold, settings.calibration_bins, uncertainty)
        metrics["operating_point"] = {**point.to_dict(), "threshold": threshold}
        studies = study_scores(scored)
        subject = f"{class_map['model_name']}, run {run_id[:8]}, valid"
        plots.evaluation_figures(studies, metrics, folder / "figures", subject)
        metrics = json_safe(
            {"run_id": run_id, "task": class_map["task"], "model_name": class_map["model_name"], **metrics}
        )
        _write_outputs(folder, metrics, scored)
        flat = flat_metrics(_nan_back(metrics))
        table = kappa_table(_nan_back(metrics))
        if log:
            _log_evaluation(client, run, run_id, folder, flat, table)
    holdout = _holdout_metrics(client, run_id)
    return EvaluationReport(run_id, metrics={**flat, **holdout}, table=table, report=metrics)


def _run_of(client, run_id: str):
    """The MLflow run `run_id`; ConfigError when the tracking server has none."""
    from mlflow.exceptions import MlflowException

    try:
        return client.get_run(run_id)
    except MlflowException:
        raise ConfigError(
            f"MLflow run {run_id!r} not found; list runs in the MLflow UI (experiment mura)"
        ) from None


def _write_outputs(folder: Path, metrics: dict, scored) -> None:
    """metrics.json and predictions.csv (without the per-part probabilities) into `folder`."""
    (folder / "metrics.json").write_text(json.dumps(metrics, indent=2), encoding="utf-8")
    scored.drop(columns=[c for c in scored if c.startswith("part_probability_")]).to_csv(
        folder / "predictions.csv", index=False
    )


def _log_evaluation(client, run, run_id: str, folder: Path, flat: dict, table: str) -> None:
    """The eval.* metrics, the evaluation folder and the kappa table, logged to the run."""
    from mlflow.entities import Metric

    stamp = run.info.start_time or 0
    client.log_batch(run_id, metrics=[Metric(k, v, stamp, 0) for k, v in sorted(flat.items())])
    client.log_artifacts(run_id, str(folder), artifact_path="evaluation")
    client.log_text(run_id, table, "evaluation/kappa_table.txt")


def _holdout_metrics(client, run_id: str) -> dict:
    """The run's holdout study metrics (HOLDOUT_STUDY_PREFIX), as the tracking server holds them now."""
    return {
        key: value
        for key, value in client.get_run(run_id).data.metrics.items()
        if key.startswith(HOLDOUT_STUDY_PREFIX)
    }


def _nan_back(value: Any) -> Any:
    """None -> NaN for the numeric helpers (inverse of _clean)."""
    if isinstance(value, dict):
        return {key: _nan_back(item) for key, item in value.items()}
    if isinstance(value, list):
        return [_nan_back(item) for item in value]
    return math.nan if value is None else value
