"""An external validation as a run of MLflow experiment `mura-external`: tags naming the site, its
data version and the model version; metrics; the HTML report, the numbers and the study predictions
(pseudonymous study ids only); then the version's model card, written again to list it."""

from __future__ import annotations

import json
import math
from pathlib import Path

import pandas as pd

from mura_core.contracts import (
    EXTERNAL_DATA_TAG,
    EXTERNAL_EXPERIMENT,
    EXTERNAL_SITE_TAG,
    MODEL_NAME_TAG,
    MODEL_VERSION_TAG,
    part_slug,
)
from mura_core.contracts import (
    EXTERNAL_REPORT as REPORT,
)
from pipelines.evaluation import json_safe


def validation_metrics(result: dict) -> dict[str, float]:
    """MLflow metric names: external.study_kappa(_ci_low/_ci_high), valid.study_kappa, drop.study_kappa,
    external.<part>.study_kappa, calibration and drift; recalibrated.* with --recalibrate."""
    metrics: dict[str, float] = {}
    study = result["metrics"]["study"]
    for name in ("kappa", "auroc", "sensitivity", "specificity"):
        metrics[f"external.study_{name}"] = study.get(name)
        for end in ("ci_low", "ci_high"):
            metrics[f"external.study_{name}_{end}"] = study.get(f"{name}_{end}")
    overall = result["comparison"][-1]
    for name in ("kappa", "auroc"):
        metrics[f"valid.study_{name}"] = overall[name]["valid"]
        metrics[f"drop.study_{name}"] = overall[name]["drop"]
    for part, values in result["metrics"]["per_part"].items():
        metrics[f"external.{part_slug(part)}.study_kappa"] = values["study"].get("kappa")
    calibration = result["metrics"]["calibration"]
    metrics["external.study_ece"] = calibration["study"]["ece"]
    metrics["external.study_ece_raw"] = calibration.get("study_raw", {}).get("ece")
    metrics["external.studies"] = study.get("count")
    if result["drift"]["detected"] is not None:
        metrics["drift.detected"] = float(result["drift"]["detected"])
    for test in result["drift"]["tests"]:
        metrics[f"drift.{test['feature']}.adjusted_p"] = test["adjusted_p"]
    again = result.get("recalibration")
    if again:
        for when in ("before", "after"):
            for name in ("kappa", "auroc"):
                metrics[f"recalibrated.{when}.study_{name}"] = again[when]["study"].get(name)
            metrics[f"recalibrated.{when}.study_ece"] = again[when]["calibration"]["study"]["ece"]
    return {
        key: float(value)
        for key, value in metrics.items()
        if value is not None and not (isinstance(value, float) and math.isnan(value))
    }


def _tags(result: dict) -> dict[str, str]:
    return {
        EXTERNAL_SITE_TAG: result["site"],
        EXTERNAL_DATA_TAG: result["data"]["md5"],
        "external.versioned": str(result["data"]["versioned"]).lower(),
        "external.gate": "passed",
        "external.drop_significant": str(result["drop_significant"]).lower(),
        "external.drift": {True: "true", False: "false"}.get(result["drift"]["detected"], "not measured"),
        "external.recalibrated": str(result["recalibration"] is not None).lower(),
        MODEL_NAME_TAG: result["model"],
        MODEL_VERSION_TAG: str(result["version"]),
        "model.run_id": result["run_id"],
        "external.registered_version": str((result.get("registered") or {}).get("version", "")),
    }


def log_validation(client, result: dict, images: pd.DataFrame, scratch: Path) -> dict:
    """Log the validation as a finished run; the result with `mlflow_run_id`, `report` and `card`."""
    from pipelines.external.report import render_report
    from pipelines.registry import republish_card
    from pipelines.tracking import experiment_id

    run = client.create_run(
        experiment_id(client, EXTERNAL_EXPERIMENT),
        run_name=f"{result['site']}-{result['model']}-v{result['version']}",
        tags=_tags(result),
    )
    run_id = run.info.run_id
    from mlflow.entities import Metric

    stamp = run.info.start_time or 0
    client.log_batch(
        run_id, metrics=[Metric(k, v, stamp, 0) for k, v in sorted(validation_metrics(result).items())]
    )
    result = {**result, "mlflow_run_id": run_id, "report": f"runs:/{run_id}/{REPORT}"}
    try:
        folder = scratch / "external-run"
        (folder / "report").mkdir(parents=True)
        render_report(result, images, folder / REPORT)
        (folder / "report" / "result.json").write_text(
            json.dumps(json_safe(result), indent=2), encoding="utf-8"
        )
        columns = ["image_path", "study_id", "body_part", "label", "raw_probability"]
        images[columns].to_csv(folder / "report" / "predictions.csv", index=False)
        client.log_artifacts(run_id, str(folder / "report"), artifact_path="report")
    except BaseException:
        client.set_terminated(run_id, "FAILED")  # never a run left RUNNING that looks like a result
        raise
    client.set_terminated(run_id)
    _, card = republish_card(result["model"], result["version"], client)
    return {**result, "card": card}
