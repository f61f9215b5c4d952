"""Two-sample drift tests: each feature on its own, a Holm-corrected overall verdict, and a kernel
two-sample test (MMD) on the model's own features.

A patient's images are alike (one study type, one scanner session), so images are not independent
draws: image-level p-values from the textbook formulas flagged 30 % of clean releases. Every image
test here takes its p-value from permutations of whole patients between the two samples, which is
exact under "same distribution of patients"; study-type mix and label balance count one study per
patient. Plain numpy/scipy: alibi-detect 0.13 requires numpy<2 and Pillow<11 (TensorFlow<2.19 for
its TensorFlow backend), which the platform's lock cannot give it; and the drift tests of
alibi-detect, frouros and evidently treat each row as independent, not a patient's images as one unit.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import asdict, dataclass

import numpy as np
import pandas as pd
from scipy import stats

from pipelines.monitoring.profile import IMAGE_CATEGORIES, IMAGE_FEATURES, STUDY_CATEGORIES


@dataclass(frozen=True)
class FeatureTest:
    """One feature's test: its statistic, effect size, raw and Holm-adjusted p-values, verdict."""

    feature: str
    test: str
    statistic: float
    effect: float  # KS distance, Cramer's V, or MMD^2 (for embeddings)
    p_value: float
    adjusted_p: float = float("nan")
    drifted: bool = False
    reference: str = ""  # a readable summary of each side (medians, shares)
    current: str = ""

    def to_dict(self) -> dict:
        return asdict(self)


@dataclass(frozen=True)
class Clusters:
    """Which patient each pooled item (reference first, then current) belongs to."""

    codes: np.ndarray  # pooled item -> patient index
    reference_patients: int  # patients 0..n-1 are the reference's
    patients: int

    @classmethod
    def of(cls, reference_patients, current_patients) -> Clusters:
        left = pd.factorize(pd.Series(reference_patients, dtype=str))[0]
        right = pd.factorize(pd.Series(current_patients, dtype=str))[0]
        count = int(left.max()) + 1 if len(left) else 0
        codes = np.concatenate([left, right + count])
        return cls(codes, count, int(codes.max()) + 1 if len(codes) else 0)

    def masks(self, permutations: int, seed: int):
        """Reference-side masks over the pooled items, each from a random split of the patients."""
        rng = np.random.default_rng(seed)
        for _ in range(permutations):
            chosen = np.zeros(self.patients, bool)
            chosen[rng.choice(self.patients, self.reference_patients, replace=False)] = True
            yield chosen[self.codes]


def permutation_p(statistic: Callable[[np.ndarray], float], clusters: Clusters, permutations: int, seed: int):
    """(observed statistic, p-value): how often a random split of whole patients differs as much."""
    observed = statistic(
        np.arange(len(clusters.codes)) < np.searchsorted(clusters.codes, clusters.reference_patients)
    )
    exceed = sum(statistic(mask) >= observed - 1e-12 for mask in clusters.masks(permutations, seed))
    return observed, (1 + exceed) / (1 + permutations)


def numeric_test(
    feature: str, reference, current, clusters: Clusters, permutations: int, seed: int
) -> FeatureTest:
    """Kolmogorov-Smirnov distance (the largest gap between the two empirical distributions)."""
    reference, current = np.asarray(reference, float), np.asarray(current, float)
    pooled = np.concatenate([reference, current])
    order = np.argsort(pooled, kind="stable")
    ranks_sorted = pooled[order]

    def distance(first: np.ndarray) -> float:
        chosen = first[order]
        left = np.cumsum(chosen) / max(chosen.sum(), 1)
        right = np.cumsum(~chosen) / max((~chosen).sum(), 1)
        last_of_tie = np.append(ranks_sorted[1:] != ranks_sorted[:-1], True)  # compare after whole ties
        return float(np.abs(left - right)[last_of_tie].max()) if len(pooled) else 0.0

    observed, p_value = permutation_p(distance, clusters, permutations, seed)
    return FeatureTest(
        feature,
        "Kolmogorov-Smirnov (patient permutation)",
        observed,
        observed,
        p_value,
        reference=f"median {np.median(reference):.3g}",
        current=f"median {np.median(current):.3g}",
    )


def _shares(counts: pd.Series) -> str:
    total = counts.sum()
    return (
        ", ".join(f"{key} {value / total:.0%}" for key, value in counts.items() if value) if total else "none"
    )


def categorical_test(feature: str, reference, current) -> FeatureTest:
    """Chi-square test of homogeneity of the category shares; Cramer's V as the effect size."""
    categories = sorted(set(map(str, reference)) | set(map(str, current)))
    left = pd.Series(list(map(str, reference))).value_counts().reindex(categories, fill_value=0)
    right = pd.Series(list(map(str, current))).value_counts().reindex(categories, fill_value=0)
    if len(categories) < 2:
        return FeatureTest(
            feature, "chi-square", 0.0, 0.0, 1.0, reference=_shares(left), current=_shares(right)
        )
    table = np.vstack([left.to_numpy(), right.to_numpy()])
    statistic, p_value, _, _ = stats.chi2_contingency(table, correction=False)
    cramers_v = float(np.sqrt(statistic / table.sum() / (min(table.shape) - 1)))
    return FeatureTest(
        feature,
        "chi-square",
        float(statistic),
        cramers_v,
        float(p_value),
        reference=_shares(left),
        current=_shares(right),
    )


def mode_test(reference, current, clusters: Clusters, permutations: int, seed: int) -> FeatureTest:
    """Colour modes per image: the gap in shares of each mode (total variation), patient permutation."""
    codes, names = pd.factorize(
        pd.Series(np.concatenate([np.asarray(reference, str), np.asarray(current, str)]))
    )
    onehot = np.eye(max(len(names), 1))[codes]

    def gap(first: np.ndarray) -> float:
        return (
            float(np.abs(onehot[first].mean(axis=0) - onehot[~first].mean(axis=0)).sum() / 2)
            if first.any() and (~first).any()
            else 0.0
        )

    observed, p_value = permutation_p(gap, clusters, permutations, seed)
    left, right = pd.Series(list(reference)).value_counts(), pd.Series(list(current)).value_counts()
    return FeatureTest(
        "mode",
        "share gap (patient permutation)",
        observed,
        observed,
        p_value,
        reference=_shares(left),
        current=_shares(right),
    )


def holm(p_values: list[float]) -> list[float]:
    """Holm-Bonferroni adjusted p-values (family-wise error control), in the input order."""
    order = np.argsort(p_values)
    adjusted = np.empty(len(p_values))
    running = 0.0
    for rank, index in enumerate(order):
        running = max(running, (len(p_values) - rank) * p_values[index])
        adjusted[index] = min(1.0, running)
    return adjusted.tolist()


def _one_study_per_patient(images: pd.DataFrame) -> pd.DataFrame:
    studies = images.drop_duplicates("study_id")
    return studies[~studies["patient_id"].astype(str).duplicated()]


def feature_tests(
    reference: pd.DataFrame, current: pd.DataFrame, permutations: int = 200, seed: int = 0
) -> list[FeatureTest]:
    """Every image feature and colour mode (patient permutations), and the study-type mix and label
    balance (one study per patient)."""
    clusters = Clusters.of(reference["patient_id"], current["patient_id"])
    results = [
        numeric_test(name, reference[name], current[name], clusters, permutations, seed)
        for name in IMAGE_FEATURES
    ]
    results += [
        mode_test(reference[name], current[name], clusters, permutations, seed) for name in IMAGE_CATEGORIES
    ]
    reference_units, current_units = _one_study_per_patient(reference), _one_study_per_patient(current)
    results += [
        categorical_test(name, reference_units[name], current_units[name]) for name in STUDY_CATEGORIES
    ]
    return results


def mmd_test(
    reference: np.ndarray, current: np.ndarray, clusters: Clusters, permutations: int = 200, seed: int = 0
) -> FeatureTest:
    """Maximum mean discrepancy with a Gaussian kernel (median-distance bandwidth), patient permutation."""
    reference, current = np.asarray(reference, np.float64), np.asarray(current, np.float64)
    pooled = np.vstack([reference, current])
    pooled = pooled / (pooled.std(axis=0) + 1e-8)  # features on one scale, so no channel dominates
    norms = (pooled**2).sum(axis=1)
    squared = np.maximum(norms[:, None] + norms[None, :] - 2.0 * pooled @ pooled.T, 0.0)
    bandwidth = float(np.sqrt(np.median(squared[np.triu_indices(len(pooled), 1)]) / 2.0)) or 1.0
    kernel = np.exp(-squared / (2.0 * bandwidth**2))

    def mmd_squared(first: np.ndarray) -> float:
        second = ~first
        n, m = int(first.sum()), int(second.sum())
        if n < 2 or m < 2:
            return 0.0
        within_first, within_second = kernel[np.ix_(first, first)], kernel[np.ix_(second, second)]
        return float(
            (within_first.sum() - np.trace(within_first)) / (n * (n - 1))
            + (within_second.sum() - np.trace(within_second)) / (m * (m - 1))
            - 2.0 * kernel[np.ix_(first, second)].mean()
        )

    observed, p_value = permutation_p(mmd_squared, clusters, permutations, seed)
    return FeatureTest(
        "embedding",
        "MMD (patient permutation)",
        observed,
        observed,
        p_value,
        reference=f"{len(reference)} images",
        current=f"{len(current)} images",
    )


def drift_tests(
    reference: pd.DataFrame,
    current: pd.DataFrame,
    reference_embeddings: np.ndarray,
    current_embeddings: np.ndarray,
    permutations: int,
    seed: int,
) -> list[FeatureTest]:
    """The whole family: feature_tests, then the MMD test on the model's features."""
    clusters = Clusters.of(reference["patient_id"], current["patient_id"])
    return [
        *feature_tests(reference, current, permutations, seed),
        mmd_test(reference_embeddings, current_embeddings, clusters, permutations, seed),
    ]


def verdict(
    tests: list[FeatureTest], alpha: float, min_effect: dict[str, float]
) -> tuple[list[FeatureTest], bool]:
    """Holm-adjust the family, mark each test drifted when significant *and* large enough (a big
    release makes tiny, harmless differences significant), and the overall verdict."""
    adjusted = holm([test.p_value for test in tests])
    judged = []
    for test, p_value in zip(tests, adjusted, strict=True):
        floor = min_effect.get(test.feature, min_effect.get("default", 0.0))
        judged.append(
            FeatureTest(
                **{
                    **test.to_dict(),
                    "adjusted_p": p_value,
                    "drifted": bool(p_value < alpha and test.effect >= floor),
                }
            )
        )
    return judged, any(test.drifted for test in judged)
