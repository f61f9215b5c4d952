"""Live performance: a release's labelled studies sent to the served models over gRPC, the way users
query them; the challenger scored in shadow on the same studies, and the two compared pairwise."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pandas as pd

from mura_core.config import load_config
from mura_core.contracts import OUTPUT_STUDY_CALIBRATION as STUDY_CALIBRATION
from mura_core.stages import ShadowComparison
from pipelines.evaluation import Uncertainty, evaluate_predictions, interval, paired_differences, study_scores


def score_served(
    rows: pd.DataFrame, data_root: Path, model: str, label: str, client, batch: int = 32
) -> pd.DataFrame:
    """`rows` (manifest rows) with the served `probability` (calibrated), `raw_probability`, the study
    probability the served model's calibration gives, and the `threshold` of `label`."""
    from pipelines.evaluation import OperatingPoint

    answers: list[dict] = []
    paths = list(rows["image_path"])
    for start in range(0, len(paths), batch):
        images = [(Path(data_root) / path).read_bytes() for path in paths[start : start + batch]]
        answers.extend(client.predict_images(images, model=model, label=label))
    versions = {int(answer["version"]) for answer in answers}
    fixed = load_config().evaluation.threshold  # a model exported before it served its threshold
    thresholds = [float(answer.get("threshold", fixed)) for answer in answers]
    threshold = float(np.median(thresholds)) if thresholds else fixed
    scored = rows.reset_index(drop=True).copy()
    scored["probability"] = [float(answer["abnormal_probability"]) for answer in answers]
    scored["raw_probability"] = [
        float(answer.get("raw_probability", answer["abnormal_probability"])) for answer in answers
    ]
    study_calibration = answers[0].get(STUDY_CALIBRATION) if answers else None
    if study_calibration is not None:  # the model calibrates a study's mean raw probability
        temperature, shift = study_calibration
        point = OperatingPoint(threshold, temperature, shift, "fitted", level="study")
        scored["study_probability"] = point.study_probability(scored)
    scored.attrs = {"threshold": threshold, "versions": sorted(versions)}
    return scored


def performance(scored: pd.DataFrame, uncertainty: Uncertainty, bins: int) -> dict:
    """Study-level metrics with bootstrap intervals, overall and per study type (the evaluation's own)."""
    return evaluate_predictions(scored, scored.attrs["threshold"], bins, uncertainty)


def shadow_comparison(
    champion: pd.DataFrame, challenger: pd.DataFrame, uncertainty: Uncertainty
) -> ShadowComparison:
    """Challenger minus champion study kappa and AUROC on the same studies, with paired intervals."""
    first, second = study_scores(challenger), study_scores(champion)
    merged = first.merge(second[["study_id", "probability"]], on="study_id", suffixes=("", "_champion"))
    differences = paired_differences(
        merged["label"],
        merged["probability"].to_numpy(),
        merged["probability_champion"].to_numpy(),
        (challenger.attrs["threshold"], champion.attrs["threshold"]),
        merged["body_part"],
        uncertainty.replicates,
        uncertainty.seed,
    )
    changes: dict = {}
    for metric in ("kappa", "auroc"):
        values = differences[metric]
        low, high = interval(values, uncertainty.confidence)
        changes[f"{metric}_change"] = float(np.nanmedian(values)) if np.isfinite(values).any() else math.nan
        changes[f"{metric}_change_ci"] = [low, high]
    return ShadowComparison(
        studies=len(merged), challenger_better=bool(changes["kappa_change_ci"][0] > 0), **changes
    )
