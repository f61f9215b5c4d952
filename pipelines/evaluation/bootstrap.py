"""Bootstrap intervals over studies: how far a study kappa or AUROC could move on another sample.

Resampling is by study, stratified by study type (each type keeps its count), as the study is the unit
the MURA paper scores. The paired form resamples the same studies for two models, so the interval of
their difference is much narrower than the two intervals side by side.
"""

from __future__ import annotations

import numpy as np
from scipy.stats import rankdata

from pipelines.evaluation.calibration import kappa_rows


def resample_indices(strata, replicates: int, seed: int) -> np.ndarray:
    """[replicates, N] row indices drawn with replacement within each stratum (same sizes as the sample)."""
    strata = np.asarray(strata)
    rng = np.random.default_rng(seed)
    columns = []
    for stratum in np.unique(strata):
        members = np.flatnonzero(strata == stratum)
        columns.append(members[rng.integers(0, len(members), size=(replicates, len(members)))])
    return np.concatenate(columns, axis=1) if columns else np.zeros((replicates, 0), dtype=np.int64)


def auroc_rows(labels: np.ndarray, scores: np.ndarray) -> np.ndarray:
    """AUROC of each row of [R, N] labels and scores (Mann-Whitney with tied ranks); NaN for one class."""
    labels = np.asarray(labels, dtype=np.float64)
    ranks = rankdata(scores, axis=-1)
    positives = labels.sum(axis=-1)
    negatives = labels.shape[-1] - positives
    with np.errstate(divide="ignore", invalid="ignore"):
        area = ((ranks * labels).sum(axis=-1) - positives * (positives + 1) / 2) / (positives * negatives)
    return np.where((positives > 0) & (negatives > 0), area, np.nan)


def interval(values: np.ndarray, confidence: float) -> tuple[float, float]:
    """The central `confidence` percentile interval of the defined replicates (NaN, NaN when too few)."""
    defined = values[~np.isnan(values)]
    if len(defined) < max(10, len(values) // 2):
        return float("nan"), float("nan")
    tail = (1.0 - confidence) / 2.0 * 100.0
    low, high = np.percentile(defined, [tail, 100.0 - tail])
    return float(low), float(high)


def study_intervals(
    labels, probabilities, threshold: float, strata, replicates: int, confidence: float, seed: int = 0
) -> dict[str, tuple[float, float]]:
    """{"kappa": (low, high), "auroc": (low, high)} of one model's study predictions."""
    labels, probabilities = np.asarray(labels), np.asarray(probabilities, dtype=np.float64)
    picks = resample_indices(strata, replicates, seed)
    sampled_labels = labels[picks]
    return {
        "kappa": interval(kappa_rows(sampled_labels, probabilities[picks] >= threshold), confidence),
        "auroc": interval(auroc_rows(sampled_labels, probabilities[picks]), confidence),
    }


def paired_differences(
    labels,
    challenger: np.ndarray,
    champion: np.ndarray,
    thresholds: tuple[float, float],
    strata,
    replicates: int,
    seed: int = 0,
) -> dict[str, np.ndarray]:
    """Per replicate: challenger minus champion study kappa and AUROC on the same resampled studies."""
    labels = np.asarray(labels)
    picks = resample_indices(strata, replicates, seed)
    sampled_labels = labels[picks]
    first, second = (
        np.asarray(challenger, dtype=np.float64)[picks],
        np.asarray(champion, dtype=np.float64)[picks],
    )
    return {
        "kappa": kappa_rows(sampled_labels, first >= thresholds[0])
        - kappa_rows(sampled_labels, second >= thresholds[1]),
        "auroc": auroc_rows(sampled_labels, first) - auroc_rows(sampled_labels, second),
    }
