"""Readable summaries of an evaluation: the MURA paper's kappa table per study type."""

from __future__ import annotations

import math

from pipelines.contracts import BODY_PARTS


def _cell(value) -> str:
    return "   n/a" if value is None or (isinstance(value, float) and math.isnan(value)) else f"{value:6.3f}"


def kappa_table(metrics: dict) -> str:
    """Study-level Cohen's kappa (and AUROC, sensitivity, specificity) per study type, then overall."""
    header = f"{'Study type':<12} {'studies':>7} {'kappa':>6} {'AUROC':>6} {'sens':>6} {'spec':>6}"
    lines = [header, "-" * len(header)]
    rows = [
        (part.removeprefix("XR_").capitalize(), metrics["per_part"][part]["study"])
        for part in BODY_PARTS
        if part in metrics["per_part"]
    ]
    rows.append(("Overall", metrics["study"]))
    for name, study in rows:
        lines.append(
            f"{name:<12} {study['count']:>7} {_cell(study['kappa'])} {_cell(study['auroc'])} "
            f"{_cell(study['sensitivity'])} {_cell(study['specificity'])}"
        )
    if "body_part_accuracy" in metrics:
        accuracy = metrics["body_part_accuracy"]
        lines.append(
            f"body-part accuracy: image {_cell(accuracy['image']).strip()}, "
            f"study {_cell(accuracy['study']).strip()}"
        )
    lines.append(
        f"expected calibration error (study): {_cell(metrics['calibration']['study']['ece']).strip()}"
    )
    return "\n".join(lines)


def flat_metrics(metrics: dict) -> dict[str, float]:
    """The MLflow metric names of an evaluation (eval.study_kappa, eval.elbow.study_kappa, ...); NaN left out."""
    flat: dict[str, float] = {}

    def put(key: str, value) -> None:
        if isinstance(value, int | float) and not (isinstance(value, float) and math.isnan(value)):
            flat[key] = float(value)

    for level in ("image", "study"):
        for name, value in metrics[level].items():
            put(f"eval.{level}_{name}", value)
        put(f"eval.{level}_ece", metrics["calibration"][level]["ece"])
        for part, part_metrics in metrics["per_part"].items():
            slug = part.removeprefix("XR_").lower()
            for name, value in part_metrics[level].items():
                put(f"eval.{slug}.{level}_{name}", value)
    for level, value in metrics.get("body_part_accuracy", {}).items():
        put(f"eval.{level}_body_part_accuracy", value)
    return flat
