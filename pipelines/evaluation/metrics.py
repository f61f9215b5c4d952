"""Image- and study-level metrics (study probability = mean of its images, as in the MURA paper)."""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import pandas as pd
from sklearn import metrics as skm

from mura_core.contracts import BODY_PARTS, interval_names
from pipelines.evaluation.bootstrap import study_intervals
from pipelines.evaluation.calibration import check_probabilities, kappa_rows


def study_scores(images: pd.DataFrame) -> pd.DataFrame:
    """One row per study: its probability (`study_probability` where the images carry it: a study-level
    calibration; else the mean of its images'), its label and body part."""
    grouped = images.groupby("study_id", sort=True)
    studies = grouped.agg(
        probability=("study_probability" if "study_probability" in images else "probability", "mean"),
        label=("label", "first"),
        body_part=("body_part", "first"),
        images=("probability", "size"),
    )
    if "predicted_part" in images:
        # A study's body part vote: the part with the highest mean part probability over its images.
        part_means = grouped[[f"part_probability_{index}" for index in range(len(BODY_PARTS))]].mean()
        studies["predicted_part"] = [BODY_PARTS[i] for i in part_means.to_numpy().argmax(axis=1)]
    return studies.reset_index()


def _safe(function, *args, **kwargs) -> float:
    """A metric that is undefined for one-class inputs gives NaN instead of raising."""
    try:
        value = float(function(*args, **kwargs))
    except ValueError:
        return math.nan
    return value


def binary_metrics(labels, probabilities, threshold: float) -> dict[str, float]:
    """AUROC, Cohen's kappa, accuracy, sensitivity, specificity and F1 of thresholded probabilities."""
    labels = np.asarray(labels, dtype=int)
    probabilities = np.asarray(probabilities, dtype=float)
    predicted = (probabilities >= threshold).astype(int)
    positives = int(labels.sum())
    negatives = int(len(labels) - positives)
    true_positive = int(((predicted == 1) & (labels == 1)).sum())
    true_negative = int(((predicted == 0) & (labels == 0)).sum())
    both_classes = positives > 0 and negatives > 0
    return {
        "count": int(len(labels)),
        "positives": positives,
        "auroc": _safe(skm.roc_auc_score, labels, probabilities) if both_classes else math.nan,
        "kappa": _kappa(labels, predicted),
        "accuracy": float((predicted == labels).mean()) if len(labels) else math.nan,
        "sensitivity": true_positive / positives if positives else math.nan,
        "specificity": true_negative / negatives if negatives else math.nan,
        "f1": float(skm.f1_score(labels, predicted, zero_division=0.0)) if len(labels) else math.nan,
    }


def _kappa(labels: np.ndarray, predicted: np.ndarray) -> float:
    """Cohen's kappa; NaN where it is undefined (no studies, or labels and predictions one same class:
    chance agreement is then 1, and a 1.0 would claim skill that a constant rater also has)."""
    if len(labels) == 0:
        return math.nan
    return float(kappa_rows(labels, predicted))


def calibration(labels, probabilities, bins: int) -> dict:
    """Reliability bins (equal width) and the expected calibration error (weighted |accuracy - confidence|)."""
    labels = np.asarray(labels, dtype=float)
    probabilities = np.asarray(probabilities, dtype=float)
    edges = np.linspace(0.0, 1.0, bins + 1)
    index = np.clip(np.digitize(probabilities, edges[1:-1], right=False), 0, bins - 1)
    table, error = [], 0.0
    for position in range(bins):
        inside = index == position
        if not inside.any():
            continue
        mean_probability = float(probabilities[inside].mean())
        observed = float(labels[inside].mean())
        error += inside.mean() * abs(observed - mean_probability)
        table.append(
            {
                "low": float(edges[position]),
                "high": float(edges[position + 1]),
                "count": int(inside.sum()),
                "mean_probability": mean_probability,
                "observed_rate": observed,
            }
        )
    return {"ece": float(error) if len(labels) else math.nan, "bins": table}


def body_part_accuracy(actual, predicted) -> float:
    """Share of rows whose predicted body part is the true one (14cls)."""
    actual, predicted = np.asarray(actual), np.asarray(predicted)
    return float((actual == predicted).mean()) if len(actual) else math.nan


@dataclass(frozen=True)
class Uncertainty:
    """Bootstrap settings of the study-level intervals (0 replicates: no intervals)."""

    replicates: int = 0
    confidence: float = 0.95
    seed: int = 0


def _study_metrics(studies: pd.DataFrame, threshold: float, uncertainty: Uncertainty) -> dict:
    result = binary_metrics(studies["label"], studies["probability"], threshold)
    if uncertainty.replicates > 0 and len(studies):
        intervals = study_intervals(
            studies["label"],
            studies["probability"],
            threshold,
            studies["body_part"],
            uncertainty.replicates,
            uncertainty.confidence,
            uncertainty.seed,
        )
        for name, (low, high) in intervals.items():
            result[interval_names(name)[0]], result[interval_names(name)[1]] = low, high
    return result


def evaluate_predictions(
    images: pd.DataFrame, threshold: float, bins: int, uncertainty: Uncertainty | None = None
) -> dict:
    """All metrics for scored images (columns probability, label, study_id, body_part[, predicted_part]
    and, when calibrated, raw_probability); study kappa/AUROC intervals when `uncertainty` asks."""
    uncertainty = uncertainty or Uncertainty()
    check_probabilities(images["probability"], "probabilities to evaluate")
    studies = study_scores(images)
    result: dict = {
        "threshold": threshold,
        "image": binary_metrics(images["label"], images["probability"], threshold),
        "study": _study_metrics(studies, threshold, uncertainty),
        "calibration": {
            "image": calibration(images["label"], images["probability"], bins),
            "study": calibration(studies["label"], studies["probability"], bins),
        },
        "per_part": {},
    }
    if "raw_probability" in images:
        raw_studies = images.groupby("study_id", sort=True).agg(
            probability=("raw_probability", "mean"), label=("label", "first")
        )
        result["calibration"]["study_raw"] = calibration(
            raw_studies["label"], raw_studies["probability"], bins
        )
    if "predicted_part" in images:
        result["body_part_accuracy"] = {
            "image": body_part_accuracy(images["body_part"], images["predicted_part"]),
            "study": body_part_accuracy(studies["body_part"], studies["predicted_part"]),
        }
    for part in BODY_PARTS:
        part_images = images[images["body_part"] == part]
        if part_images.empty:
            continue
        part_studies = studies[studies["body_part"] == part]
        result["per_part"][part] = {
            "image": binary_metrics(part_images["label"], part_images["probability"], threshold),
            "study": _study_metrics(part_studies, threshold, uncertainty),
        }
    return result


def confusion(labels, probabilities, threshold: float) -> np.ndarray:
    """2x2 confusion matrix [[TN, FP], [FN, TP]] of thresholded probabilities."""
    predicted = (np.asarray(probabilities) >= threshold).astype(int)
    return skm.confusion_matrix(np.asarray(labels, dtype=int), predicted, labels=[0, 1])
