"""Evaluation figures a reader can trust: each title names the model, the run or version and the split;
study types are spelled one way (contracts.study_type); confusion panels share one colour scale."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
from sklearn import metrics as skm

from mura_core.contracts import BODY_PARTS, study_type
from pipelines.evaluation.metrics import confusion


def _pyplot():
    import matplotlib

    matplotlib.use("Agg")  # files only; no display on servers and workers
    import matplotlib.pyplot as plt

    return plt


def _save(figure, path: Path) -> Path:
    plt = _pyplot()
    figure.tight_layout()
    figure.savefig(path, dpi=90)
    plt.close(figure)
    return path


def _matrix(axis, counts: np.ndarray, title: str, labels):
    """Cells coloured by the share of their row (one 0..1 scale for every panel), labelled with counts."""
    totals = counts.sum(axis=1, keepdims=True)
    shares = np.divide(counts, totals, out=np.zeros(counts.shape, dtype=float), where=totals > 0)
    shown = axis.imshow(shares, cmap="Blues", vmin=0.0, vmax=1.0)
    for (row, column), value in np.ndenumerate(counts):
        axis.text(
            column,
            row,
            str(int(value)),
            ha="center",
            va="center",
            color="white" if shares[row, column] > 0.5 else "black",
        )
    axis.set_xticks(range(len(labels)), labels, rotation=45 if len(labels) > 2 else 0)
    axis.set_yticks(range(len(labels)), labels)
    axis.set_xlabel("predicted")
    axis.set_ylabel("actual")
    axis.set_title(title, fontsize=10)
    return shown


def _rate(numerator: int, denominator: int) -> str:
    return f"{numerator / denominator:.2f}" if denominator else "n/a"


def confusion_figure(studies: pd.DataFrame, threshold: float, path: Path, subject: str) -> Path:
    """Study-level 2x2 confusion matrices, overall and per study type, each titled with its
    sensitivity and specificity; colours are the share of the actual class (one scale for all)."""
    plt = _pyplot()
    groups = [("All types", studies)] + [
        (study_type(part), studies[studies["body_part"] == part])
        for part in BODY_PARTS
        if (studies["body_part"] == part).any()
    ]
    figure, axes = plt.subplots(2, 4, figsize=(14, 7.4))
    for axis in axes.flat[len(groups) :]:
        axis.axis("off")
    shown = None
    for axis, (name, rows) in zip(axes.flat, groups, strict=False):
        counts = confusion(rows["label"], rows["probability"], threshold)
        (true_negative, false_positive), (false_negative, true_positive) = counts
        title = (
            f"{name} ({len(rows)} studies)\nsens {_rate(true_positive, true_positive + false_negative)}"
            f", spec {_rate(true_negative, true_negative + false_positive)}"
        )
        shown = _matrix(axis, counts, title, ["normal", "abnormal"])
    figure.colorbar(shown, ax=axes, fraction=0.02, pad=0.02, label="share of the actual class")
    figure.suptitle(f"Study-level confusion at threshold {threshold:.3f}: {subject}")
    figure.savefig(path, dpi=90)
    plt.close(figure)
    return path


def part_confusion_figure(studies: pd.DataFrame, path: Path, subject: str) -> Path:
    """14cls: 7x7 study-level confusion of true vs predicted study type."""
    plt = _pyplot()
    counts = skm.confusion_matrix(studies["body_part"], studies["predicted_part"], labels=list(BODY_PARTS))
    figure, axis = plt.subplots(figsize=(7.5, 6.5))
    shown = _matrix(axis, counts, f"Study type (study level): {subject}", [study_type(p) for p in BODY_PARTS])
    figure.colorbar(shown, ax=axis, fraction=0.046, pad=0.04, label="share of the actual type")
    return _save(figure, path)


def roc_figure(studies: pd.DataFrame, path: Path, subject: str) -> Path:
    """Study-level ROC curves, one per study type with both classes, plus all types; the legend gives
    each curve's studies (abnormal/all) and its AUC."""
    plt = _pyplot()
    figure, axis = plt.subplots(figsize=(6.5, 6.5))
    groups = [(study_type(p), studies[studies["body_part"] == p]) for p in BODY_PARTS]
    for name, rows in [*groups, ("All types", studies)]:
        if rows["label"].nunique() < 2:
            continue  # ROC is undefined with one class
        false_rate, true_rate, _ = skm.roc_curve(rows["label"], rows["probability"])
        area = skm.roc_auc_score(rows["label"], rows["probability"])
        axis.plot(
            false_rate,
            true_rate,
            linewidth=2.5 if name == "All types" else 1.2,
            label=f"{name}: {int(rows['label'].sum())}/{len(rows)} abnormal, AUC {area:.3f}",
        )
    axis.plot([0, 1], [0, 1], "k--", linewidth=0.8, label="chance")
    axis.set_xlabel("1 - specificity")
    axis.set_ylabel("sensitivity")
    axis.set_title(f"ROC per study type (study level)\n{subject}", fontsize=10)
    axis.legend(loc="lower right", fontsize=7)
    return _save(figure, path)


def reliability_figure(calibration: dict, path: Path, subject: str, raw: dict | None = None) -> Path:
    """Reliability diagram: per probability bin, the observed abnormal rate (bars, with the number of
    studies in the bin) and each bin's mean predicted probability against it (points); the raw model's
    points too when calibration changed them."""
    plt = _pyplot()
    figure, axis = plt.subplots(figsize=(6, 6))
    bins = calibration["bins"]
    axis.bar(
        [(b["low"] + b["high"]) / 2 for b in bins],
        [b["observed_rate"] for b in bins],
        width=[b["high"] - b["low"] for b in bins],
        edgecolor="black",
        alpha=0.35,
        label="observed abnormal rate per bin (calibrated)",
    )
    for item in bins:
        axis.annotate(
            f"n={item['count']}",
            ((item["low"] + item["high"]) / 2, min(item["observed_rate"] + 0.02, 0.95)),
            ha="center",
            fontsize=7,
        )
    curves = [("calibrated", calibration, "C1")] + ([("raw", raw, "C2")] if raw else [])
    for name, table, colour in curves:
        axis.plot(
            [b["mean_probability"] for b in table["bins"]],
            [b["observed_rate"] for b in table["bins"]],
            "o-" if name == "calibrated" else "s--",
            color=colour,
            label=f"{name}: mean predicted vs observed (ECE {table['ece']:.3f})",
        )
    axis.plot([0, 1], [0, 1], "k:", linewidth=0.8, label="perfect calibration")
    axis.set_xlim(0, 1)
    axis.set_ylim(0, 1)
    axis.set_xlabel("predicted abnormal probability")
    axis.set_ylabel("observed abnormal rate")
    axis.set_title(f"Reliability (study level)\n{subject}", fontsize=10)
    axis.legend(loc="upper left", fontsize=7)
    return _save(figure, path)


def evaluation_figures(studies: pd.DataFrame, metrics: dict, folder: Path, subject: str) -> list[Path]:
    """Every evaluation figure of `studies` (one row per study, calibrated probabilities) into `folder`."""
    folder.mkdir(parents=True, exist_ok=True)
    threshold = float(metrics["threshold"])
    calibration = metrics["calibration"]
    paths = [
        confusion_figure(studies, threshold, folder / "confusion_study.png", subject),
        roc_figure(studies, folder / "roc_per_part.png", subject),
        reliability_figure(
            calibration["study"], folder / "reliability_study.png", subject, calibration.get("study_raw")
        ),
    ]
    if "predicted_part" in studies:
        paths.append(part_confusion_figure(studies, folder / "confusion_body_part.png", subject))
    return paths
