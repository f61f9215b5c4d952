"""The champion comparison as a paired bootstrap on the same holdout studies.

Two retrains of one config differ by several kappa points on 100-150 studies, so comparing two single
numbers flip-flops on noise. Both models' study predictions on the same studies are resampled together
(stratified by study type); a regression blocks only when the interval of challenger minus champion
lies wholly below minus the allowed drop (with a drop of 0: when the interval excludes zero).

The gate asks several questions at once (study kappa, AUROC, each study type's kappa), so each
interval is widened to keep the chance that noise blocks a retrain at 1 - confidence overall
(Bonferroni). Six retrains of one config on a synthetic release, every ordered pair, drops of 0:
95 % per interval blocked 16 of 120 verdicts, family-wise 4, all of them the one retrain that was
worse on valid too (kappa 0.70 against 0.79-0.80); the allowed drops of params.yaml absorb that
spread. A model missing a third of the abnormal studies is still blocked.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from mura_core.config import GateParams
from mura_core.contracts import part_slug
from pipelines.evaluation import interval, paired_differences

MIN_PAIRED_STUDIES = 20  # fewer paired studies than this cannot show a regression
PAIRED_SEED = 0  # one resampling for every verdict: gating the same pair twice gives the same answer


@dataclass(frozen=True)
class PairedStudies:
    """Study predictions of challenger and champion on the same studies (calibrated probabilities)."""

    frame: pd.DataFrame  # study_id, body_part, label, challenger, champion
    thresholds: tuple[float, float]  # (challenger's, champion's)

    @classmethod
    def join(
        cls, challenger: pd.DataFrame, champion: pd.DataFrame, thresholds: tuple[float, float]
    ) -> PairedStudies:
        """Pair two study tables (study_id, body_part, label, probability) on their common studies."""
        merged = challenger[["study_id", "body_part", "label", "probability"]].merge(
            champion[["study_id", "probability"]], on="study_id", suffixes=("_challenger", "_champion")
        )
        frame = merged.rename(
            columns={"probability_challenger": "challenger", "probability_champion": "champion"}
        )
        return cls(frame.sort_values("study_id").reset_index(drop=True), thresholds)


def _describe(label: str, differences: np.ndarray, confidence: float) -> tuple[str, float]:
    low, high = interval(differences, confidence)
    centre = float(np.nanmedian(differences)) if np.isfinite(differences).any() else float("nan")
    return f"{label} {centre:+.3f} [{low:+.3f}, {high:+.3f}]", high


def compare_paired(paired: PairedStudies, policy: GateParams) -> tuple[list[str], list[str]]:
    """(notes, failures) of the challenger against the champion on the paired studies (params.yaml
    gate: the allowed drops, paired_replicates, confidence)."""
    frame = paired.frame
    count = len(frame)
    if count < MIN_PAIRED_STUDIES:
        return [f"only {count} paired holdout studies: too few to compare, no regression shown"], []
    parts = [
        (part, rows)
        for part, rows in frame.groupby("body_part", sort=True)
        # kappa is undefined or meaningless on a handful of one-class studies
        if rows["label"].nunique() >= 2 and len(rows) >= MIN_PAIRED_STUDIES // 2
    ]
    comparisons = 2 + len(parts)
    each = 1.0 - (1.0 - policy.confidence) / comparisons
    percent = f"{policy.confidence:.0%} family-wise (each of {comparisons} intervals {each:.1%})"
    notes: list[str] = []
    failures: list[str] = []
    overall = paired_differences(
        frame["label"],
        frame["challenger"].to_numpy(),
        frame["champion"].to_numpy(),
        paired.thresholds,
        frame["body_part"],
        policy.paired_replicates,
        PAIRED_SEED,
    )
    for metric, label in (("kappa", "study kappa"), ("auroc", "study AUROC")):
        text, high = _describe(f"{label} change", overall[metric], each)
        if high < -policy.max_overall_drop:
            failures.append(
                f"{text}: a regression larger than {policy.max_overall_drop:.3f} at {percent} "
                f"({count} paired holdout studies)"
            )
        else:
            notes.append(text)
    for part, rows in parts:
        slug = part_slug(str(part))
        differences = paired_differences(
            rows["label"],
            rows["challenger"].to_numpy(),
            rows["champion"].to_numpy(),
            paired.thresholds,
            np.zeros(len(rows)),
            policy.paired_replicates,
            PAIRED_SEED,
        )["kappa"]
        text, high = _describe(f"{slug} study kappa change", differences, each)
        if high < -policy.max_part_kappa_drop:
            failures.append(
                f"{text}: a regression larger than {policy.max_part_kappa_drop:.3f} at {percent} "
                f"({len(rows)} paired {slug} studies)"
            )
    notes.append(f"{count} paired holdout studies, paired bootstrap at {percent}")
    return notes, failures
