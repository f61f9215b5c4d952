"""What a model card says, gathered from the registry and the training run's artifacts. A missing part
(an old run without evaluation files, data not on this machine) becomes a stated gap, never a failure."""

from __future__ import annotations

import json
import math
from pathlib import Path

import pandas as pd

from mura_core.contracts import BODY_PARTS, study_type
from pipelines.cards import paper

SPLITS = ("train", "holdout", "valid")


def artifact(client, run_id: str, path: str, folder: Path) -> Path | None:
    """The run's artifact `path` downloaded under `folder`, or None when the run has none."""
    from mlflow.exceptions import MlflowException

    try:
        local = Path(client.download_artifacts(run_id, path, str(folder)))
    except (MlflowException, OSError):
        return None
    return local if local.exists() else None


def data_counts(manifest: pd.DataFrame) -> list[dict]:
    """Per study type and split: studies, abnormal studies and images; a total row last."""
    rows = []
    for name, frame in [
        *((study_type(p), manifest[manifest["body_part"] == p]) for p in BODY_PARTS),
        ("All types", manifest),
    ]:
        row: dict[str, object] = {"type": name}
        for split in SPLITS:
            part = frame[frame["split"] == split]
            studies = part.drop_duplicates("study_id")
            row[split] = {
                "studies": len(studies),
                "abnormal": int(studies["label"].sum()),
                "images": len(part),
            }
        rows.append(row)
    return rows


def _number(value) -> float | None:
    return None if value is None or (isinstance(value, float) and math.isnan(value)) else float(value)


def _measure(study: dict, name: str) -> dict:
    return {
        "value": _number(study.get(name)),
        "low": _number(study.get(f"{name}_ci_low")),
        "high": _number(study.get(f"{name}_ci_high")),
    }


def performance_rows(metrics: dict) -> list[dict]:
    """Per study type then overall: this version's study kappa and AUROC with intervals, sensitivity,
    specificity and studies, beside the paper's radiologists and model."""
    pairs = [(study_type(p), metrics["per_part"][p]["study"]) for p in BODY_PARTS if p in metrics["per_part"]]
    rows = []
    for name, study in [*pairs, ("Overall", metrics["study"])]:
        rows.append(
            {
                "type": name,
                "studies": study.get("count"),
                "kappa": _measure(study, "kappa"),
                "auroc": _measure(study, "auroc"),
                "sensitivity": _number(study.get("sensitivity")),
                "specificity": _number(study.get("specificity")),
                "paper": [
                    dict(zip(("value", "low", "high"), cell, strict=True)) for cell in paper.KAPPA[name]
                ],
            }
        )
    return rows


def calibration_summary(metrics: dict) -> dict:
    """ECE before and after the fitted calibration, and the operating point."""
    calibration = metrics.get("calibration", {})
    return {
        "ece_raw": _number(calibration.get("study_raw", {}).get("ece")),
        "ece_calibrated": _number(calibration.get("study", {}).get("ece")),
        "operating_point": metrics.get("operating_point") or {"threshold": metrics.get("threshold")},
    }


def load_json(path: Path | None) -> dict | None:
    return json.loads(path.read_text(encoding="utf-8")) if path else None


def limitations(facts: dict) -> list[str]:
    """Known limitations of this version, the general ones first, then what its own facts show."""
    items = [
        "Trained and evaluated on one institution's studies (Stanford); other scanners, protocols and "
        "populations may behave differently (see the monitoring of data drift before trusting it elsewhere).",
        "Labels are the study-level normal/abnormal of the original reports, not per-finding annotations; "
        "the model does not say what the abnormality is.",
        "Grad-CAM++ shows what raised the score at the resolution of the last feature map; it is not a "
        "segmentation and can point at text markers or borders.",
        "Intervals are bootstrap intervals over the evaluated studies; a study type with few studies "
        "has a wide interval and a point value that may not hold.",
    ]
    config = facts.get("config") or {}
    if config and not config.get("weights"):
        items.append(
            "Trained from random initialisation (no ImageNet weights: none could be downloaded where it "
            "trained), so it needs more data and epochs than the paper's ImageNet-initialised DenseNet."
        )
    size = config.get("image_size")
    if size and min(size) < 320:
        items.append(
            f"Input {size[0]}x{size[1]} pixels, below the paper's 320x320: small findings may be lost."
        )
    if facts.get("synthetic"):
        items.append(
            "Evaluated on a synthetic release: its numbers say the pipeline works, not how it reads X-rays."
        )
    ece = (facts.get("calibration") or {}).get("ece_calibrated")
    if ece is not None and ece > 0.05:
        items.append(f"Calibrated probabilities are off by {ece:.3f} on average (ECE): read them as scores.")
    return items


def external_validations(client, model: str, version: int) -> list[dict]:
    """The external validations logged for a version, newest first (what its model card lists)."""
    from mura_core.contracts import (
        EXTERNAL_DATA_TAG,
        EXTERNAL_EXPERIMENT,
        EXTERNAL_REPORT,
        EXTERNAL_SITE_TAG,
        MODEL_NAME_TAG,
        MODEL_VERSION_TAG,
    )

    experiment = client.get_experiment_by_name(EXTERNAL_EXPERIMENT)
    if experiment is None:
        return []
    runs = client.search_runs(
        [experiment.experiment_id],
        f"tags.`{MODEL_NAME_TAG}` = '{model}' and tags.`{MODEL_VERSION_TAG}` = '{int(version)}'",
        order_by=["start_time DESC"],
        max_results=50,
    )
    return [
        {
            "site": run.data.tags.get(EXTERNAL_SITE_TAG, "?"),
            "data_md5": run.data.tags.get(EXTERNAL_DATA_TAG, "?"),
            "run_id": run.info.run_id,
            "studies": run.data.metrics.get("external.studies"),
            "kappa": run.data.metrics.get("external.study_kappa"),
            "kappa_ci": [
                run.data.metrics.get("external.study_kappa_ci_low"),
                run.data.metrics.get("external.study_kappa_ci_high"),
            ],
            "valid_kappa": run.data.metrics.get("valid.study_kappa"),
            "auroc": run.data.metrics.get("external.study_auroc"),
            "drop_significant": run.data.tags.get("external.drop_significant") == "true",
            "drift": run.data.tags.get("external.drift") == "true",
            "report": f"runs:/{run.info.run_id}/{EXTERNAL_REPORT}",
        }
        for run in runs
    ]
