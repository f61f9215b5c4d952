"""Readable summaries of an evaluation: the MURA paper's kappa table per study type."""

from __future__ import annotations

import math

from mura_core.contracts import BODY_PARTS, interval_names, part_slug, study_type


def _cell(value) -> str:
    return "   n/a" if value is None or (isinstance(value, float) and math.isnan(value)) else f"{value:6.3f}"


def _span(study: dict, name: str) -> str:
    low, high = (study.get(bound) for bound in interval_names(name))
    if low is None or high is None or math.isnan(low) or math.isnan(high):
        return f"{'':>15}"
    return f" [{low:5.2f}, {high:5.2f}]"


def kappa_table(metrics: dict) -> str:
    """Study-level Cohen's kappa and AUROC (with bootstrap intervals when computed), sensitivity and
    specificity per study type, then overall; the operating point and calibration below."""
    header = (
        f"{'Study type':<12} {'studies':>7} {'kappa':>6} {'95% interval':>15} {'AUROC':>6} "
        f"{'95% interval':>15} {'sens':>6} {'spec':>6}"
    )
    lines = [header, "-" * len(header)]
    rows = [
        (study_type(part), metrics["per_part"][part]["study"])
        for part in BODY_PARTS
        if part in metrics["per_part"]
    ]
    rows.append(("Overall", metrics["study"]))
    for name, study in rows:
        lines.append(
            f"{name:<12} {study['count']:>7} {_cell(study['kappa'])}{_span(study, 'kappa')} "
            f"{_cell(study['auroc'])}{_span(study, 'auroc')} "
            f"{_cell(study['sensitivity'])} {_cell(study['specificity'])}"
        )
    if any(_undefined(study["kappa"]) for _, study in rows):
        lines.append("n/a: undefined (a study type with one class only, in labels and predictions)")
    if "body_part_accuracy" in metrics:
        accuracy = metrics["body_part_accuracy"]
        lines.append(
            f"body-part accuracy: image {_cell(accuracy['image']).strip()}, "
            f"study {_cell(accuracy['study']).strip()}"
        )
    calibration = metrics["calibration"]
    ece = f"expected calibration error (study): {_cell(calibration['study']['ece']).strip()}"
    if "study_raw" in calibration:
        ece += f" calibrated, {_cell(calibration['study_raw']['ece']).strip()} raw"
    lines.append(ece)
    point = metrics.get("operating_point")
    if point:
        lines.append(
            f"operating point: threshold {point['threshold']:.3f} ({point['method']}"
            + (
                f" on {point['studies']} holdout studies, temperature {point['temperature']:.2f}, "
                f"shift {point['shift']:+.2f})"
                if point["method"] == "fitted"
                else ")"
            )
        )
    return "\n".join(lines)


def _undefined(value) -> bool:
    return value is None or (isinstance(value, float) and math.isnan(value))


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
            slug = part_slug(part)
            for name, value in part_metrics[level].items():
                put(f"eval.{slug}.{level}_{name}", value)
    if "study_raw" in metrics["calibration"]:
        put("eval.study_ece_raw", metrics["calibration"]["study_raw"]["ece"])
    put("eval.threshold", metrics.get("threshold"))
    for level, value in metrics.get("body_part_accuracy", {}).items():
        put(f"eval.{level}_body_part_accuracy", value)
    return flat


def json_safe(value):
    """NaN -> None recursively (tuples become lists), so the result is valid JSON."""
    if isinstance(value, dict):
        return {key: json_safe(item) for key, item in value.items()}
    if isinstance(value, list | tuple):
        return [json_safe(item) for item in value]
    if isinstance(value, float) and math.isnan(value):
        return None
    return value
