"""Image- and study-level metrics (study probability = mean of its images, as in the MURA paper)."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
from sklearn import metrics as skm

from pipelines.contracts import BODY_PARTS


def study_scores(images: pd.DataFrame) -> pd.DataFrame:
    """One row per study: mean abnormal probability of its images, its label and body part."""
    grouped = images.groupby("study_id", sort=True)
    studies = grouped.agg(
        probability=("probability", "mean"),
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


def binary_metrics(labels, probabilities, threshold: float = 0.5) -> dict[str, float]:
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
    """Cohen's kappa; 1.0 when both raters agree completely on a single class (sklearn gives NaN)."""
    if len(labels) == 0:
        return math.nan
    if len(np.unique(np.concatenate([labels, predicted]))) == 1:
        return 1.0
    return _safe(skm.cohen_kappa_score, labels, predicted)


def calibration(labels, probabilities, bins: int = 10) -> dict:
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


def evaluate_predictions(images: pd.DataFrame, threshold: float = 0.5, bins: int = 10) -> dict:
    """All metrics for scored images (columns probability, label, study_id, body_part[, predicted_part])."""
    studies = study_scores(images)
    result: dict = {
        "threshold": threshold,
        "image": binary_metrics(images["label"], images["probability"], threshold),
        "study": binary_metrics(studies["label"], studies["probability"], threshold),
        "calibration": {
            "image": calibration(images["label"], images["probability"], bins),
            "study": calibration(studies["label"], studies["probability"], bins),
        },
        "per_part": {},
    }
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
            "study": binary_metrics(part_studies["label"], part_studies["probability"], threshold),
        }
    return result


def confusion(labels, probabilities, threshold: float = 0.5) -> np.ndarray:
    """2x2 confusion matrix [[TN, FP], [FN, TP]] of thresholded probabilities."""
    predicted = (np.asarray(probabilities) >= threshold).astype(int)
    return skm.confusion_matrix(np.asarray(labels, dtype=int), predicted, labels=[0, 1])
