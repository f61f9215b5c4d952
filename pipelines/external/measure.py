"""The numbers of an external validation: a version's scored site studies at its own operating point,
beside its valid-set numbers, and (optionally) the site's own operating point fitted on part of the
patients and measured on the rest."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd

from mura_core.contracts import BODY_PARTS, study_type
from pipelines.evaluation import OperatingPoint, Uncertainty, evaluate_predictions, fit_operating_point

COMPARED = ("kappa", "auroc")


def at_point(images: pd.DataFrame, point: OperatingPoint) -> pd.DataFrame:
    """Scored images (raw_probability) with the probabilities `point` gives them."""
    images = images.copy()
    images["probability"] = point.apply(images["raw_probability"])
    images["study_probability"] = point.study_probability(images)
    return images


def measure(images: pd.DataFrame, point: OperatingPoint, bins: int, uncertainty: Uncertainty) -> dict:
    """Every metric of the images at `point`: study kappa and AUROC with intervals, per study type,
    sensitivity and specificity, calibration of the calibrated and the raw probabilities."""
    metrics = evaluate_predictions(at_point(images, point), point.threshold, bins, uncertainty)
    return {**metrics, "operating_point": point.to_dict()}


def _value(study: dict, name: str) -> float:
    value = study.get(name)
    return math.nan if value is None else float(value)


def side_by_side(site: dict, valid: dict | None) -> list[dict]:
    """Per study type and overall: the site's study kappa/AUROC with intervals beside the version's
    valid-set ones, the drop, and whether the site's interval excludes the valid value (a drop that
    is not the site's sampling noise)."""
    rows = []
    named = [(study_type(part), part) for part in BODY_PARTS if part in site["per_part"]]
    for name, part in [*named, ("Overall", None)]:
        here = site["study"] if part is None else site["per_part"][part]["study"]
        there = {}
        if valid:
            there = (
                valid.get("study", {})
                if part is None
                else valid.get("per_part", {}).get(part, {}).get("study", {})
            )
        row = {
            "type": name,
            "studies": int(here.get("count", 0)),
            "valid_studies": int(there.get("count", 0) or 0),
        }
        for metric in COMPARED:
            site_value, valid_value = _value(here, metric), _value(there, metric)
            low, high = _value(here, f"{metric}_ci_low"), _value(here, f"{metric}_ci_high")
            row[metric] = {
                "site": site_value,
                "site_ci": [low, high],
                "valid": valid_value,
                "valid_ci": [_value(there, f"{metric}_ci_low"), _value(there, f"{metric}_ci_high")],
                "drop": valid_value - site_value,
                "significant": bool(valid_value > high)
                if not math.isnan(high) and not math.isnan(valid_value)
                else False,
            }
        for metric in ("sensitivity", "specificity"):
            row[metric] = {"site": _value(here, metric), "valid": _value(there, metric)}
        rows.append(row)
    return rows


def patient_split(images: pd.DataFrame, fraction: float, seed: int) -> np.ndarray:
    """A mask of the images whose patient falls in the fitting part: whole patients (no patient's
    studies on both sides), stratified by whether a patient has an abnormal study, so that each part
    holds both classes whenever two patients of each allow it; the same for the same patients and seed.
    (Unstratified, a site of 10 patients of whom 2 have an abnormal study put both on one side for 44 %
    of seeds, and the other side could not be judged.)"""
    abnormal = images.groupby(images["patient_id"].astype(str))["label"].max()  # patient -> any abnormal
    if len(abnormal) < 4:
        from mura_core.errors import DataError

        raise DataError(
            f"--recalibrate needs studies of at least 4 patients to fit on some and measure on others; "
            f"the site has {len(abnormal)}"
        )
    take = min(len(abnormal) - 1, max(1, round(len(abnormal) * fraction)))  # both parts keep patients
    rng = np.random.default_rng(seed)
    strata = [rng.permutation(sorted(abnormal.index[abnormal == value])) for value in sorted(set(abnormal))]
    quotas = _quotas([len(stratum) for stratum in strata], take)
    chosen = {patient for stratum, quota in zip(strata, quotas, strict=True) for patient in stratum[:quota]}
    return images["patient_id"].astype(str).isin(chosen).to_numpy()


def _quotas(sizes: list[int], take: int) -> list[int]:
    """How many patients of each stratum go to the fitting part: `take` in all, shared in proportion
    (largest remainders first), at least one and at most all but one of every stratum of two or more."""
    exact = [size * take / sum(sizes) for size in sizes]
    low = [1 if size >= 2 else 0 for size in sizes]
    high = [size - 1 if size >= 2 else size for size in sizes]
    quotas = [min(max(int(share), least), most) for share, least, most in zip(exact, low, high, strict=True)]
    by_remainder = sorted(range(len(sizes)), key=lambda index: exact[index] - quotas[index], reverse=True)
    while sum(quotas) != take:
        grow = sum(quotas) < take
        room = [i for i in by_remainder if (quotas[i] < high[i] if grow else quotas[i] > low[i])]
        if not room:
            break
        quotas[room[0] if grow else room[-1]] += 1 if grow else -1
    return quotas


def recalibration(
    images: pd.DataFrame,
    point: OperatingPoint,
    fraction: float,
    seed: int,
    bins: int,
    uncertainty: Uncertainty,
) -> dict:
    """The site's operating point fitted on `fraction` of its patients; the other patients' metrics at
    the version's own point (before) and at the site's (after)."""
    fitting = patient_split(images, fraction, seed)
    fit_rows, held = images[fitting], images[~fitting]
    for name, part in (("fitting", fit_rows), ("measured", held)):
        if part["label"].nunique() < 2:
            from mura_core.errors import DataError

            raise DataError(
                f"--recalibrate: the {name} part of the site's patients holds one class only (normal or "
                "abnormal studies alone): no operating point can be fitted or judged on it; import more "
                "studies or change params.yaml external.seed"
            )
    site_point = fit_operating_point(fit_rows.assign(probability=fit_rows["raw_probability"]), seed)
    return {
        "operating_point": site_point.to_dict(),
        "fit_studies": int(fit_rows["study_id"].nunique()),
        "measured_studies": int(held["study_id"].nunique()),
        "before": measure(held, point, bins, uncertainty),
        "after": measure(held, site_point, bins, uncertainty),
    }
