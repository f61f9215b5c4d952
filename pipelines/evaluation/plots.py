"""Evaluation figures: confusion matrices, ROC curves per study type, reliability diagram."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
from sklearn import metrics as skm

from pipelines.contracts import BODY_PARTS
from pipelines.evaluation.metrics import confusion


def _pyplot():
    import matplotlib

    matplotlib.use("Agg")  # files only; no display on servers and workers
    import matplotlib.pyplot as plt

    return plt


def _matrix(axis, matrix: np.ndarray, title: str, labels) -> None:
    axis.imshow(matrix, cmap="Blues")
    for (row, column), value in np.ndenumerate(matrix):
        axis.text(
            column,
            row,
            str(int(value)),
            ha="center",
            va="center",
            color="white" if value > matrix.max() / 2 else "black",
        )
    axis.set_xticks(range(len(labels)), labels, rotation=45 if len(labels) > 2 else 0)
    axis.set_yticks(range(len(labels)), labels)
    axis.set_xlabel("predicted")
    axis.set_ylabel("actual")
    axis.set_title(title)


def confusion_figure(studies: pd.DataFrame, threshold: float, path: Path) -> Path:
    """Study-level 2x2 confusion matrices: overall and per study type."""
    plt = _pyplot()
    groups = [("all", studies)] + [
        (p, studies[studies["body_part"] == p]) for p in BODY_PARTS if (studies["body_part"] == p).any()
    ]
    figure, axes = plt.subplots(2, 4, figsize=(14, 7))
    for axis in axes.flat[len(groups) :]:
        axis.axis("off")
    for axis, (name, rows) in zip(axes.flat, groups, strict=False):
        _matrix(axis, confusion(rows["label"], rows["probability"], threshold), name, ["normal", "abnormal"])
    figure.tight_layout()
    figure.savefig(path, dpi=90)
    plt.close(figure)
    return path


def part_confusion_figure(studies: pd.DataFrame, path: Path) -> Path:
    """14cls: 7x7 study-level confusion of true vs predicted body part."""
    plt = _pyplot()
    matrix = skm.confusion_matrix(studies["body_part"], studies["predicted_part"], labels=list(BODY_PARTS))
    figure, axis = plt.subplots(figsize=(7, 6))
    _matrix(axis, matrix, "body part (study level)", [p.removeprefix("XR_").lower() for p in BODY_PARTS])
    figure.tight_layout()
    figure.savefig(path, dpi=90)
    plt.close(figure)
    return path


def roc_figure(studies: pd.DataFrame, path: Path) -> Path:
    """Study-level ROC curves, one per study type with both classes, plus overall."""
    plt = _pyplot()
    figure, axis = plt.subplots(figsize=(6, 6))
    groups = [(p, studies[studies["body_part"] == p]) for p in BODY_PARTS] + [("overall", studies)]
    for name, rows in groups:
        if rows["label"].nunique() < 2:
            continue  # ROC is undefined with one class
        false_rate, true_rate, _ = skm.roc_curve(rows["label"], rows["probability"])
        area = skm.roc_auc_score(rows["label"], rows["probability"])
        axis.plot(
            false_rate,
            true_rate,
            linewidth=2.5 if name == "overall" else 1.2,
            label=f"{name.removeprefix('XR_').lower()} (AUC {area:.3f})",
        )
    axis.plot([0, 1], [0, 1], "k--", linewidth=0.8)
    axis.set_xlabel("1 - specificity")
    axis.set_ylabel("sensitivity")
    axis.set_title("ROC per study type (study level)")
    axis.legend(loc="lower right", fontsize=8)
    figure.tight_layout()
    figure.savefig(path, dpi=90)
    plt.close(figure)
    return path


def reliability_figure(calibration: dict, path: Path, level: str = "study") -> Path:
    """Reliability diagram (observed abnormal rate vs mean predicted probability per bin) with the ECE."""
    plt = _pyplot()
    figure, axis = plt.subplots(figsize=(5.5, 5.5))
    bins = calibration["bins"]
    centres = [(b["low"] + b["high"]) / 2 for b in bins]
    axis.bar(
        centres,
        [b["observed_rate"] for b in bins],
        width=[b["high"] - b["low"] for b in bins],
        edgecolor="black",
        alpha=0.6,
        label="observed abnormal rate",
    )
    axis.plot(
        [b["mean_probability"] for b in bins],
        [b["observed_rate"] for b in bins],
        "o-",
        color="C1",
        label="per-bin mean probability",
    )
    axis.plot([0, 1], [0, 1], "k--", linewidth=0.8)
    axis.set_xlim(0, 1)
    axis.set_ylim(0, 1)
    axis.set_xlabel("predicted probability")
    axis.set_ylabel("observed abnormal rate")
    axis.set_title(f"Reliability ({level} level), ECE {calibration['ece']:.3f}")
    axis.legend(loc="upper left", fontsize=8)
    figure.tight_layout()
    figure.savefig(path, dpi=90)
    plt.close(figure)
    return path
