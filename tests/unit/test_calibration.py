"""The operating point fitted on holdout, bootstrap intervals and the paired champion comparison."""

from __future__ import annotations

import dataclasses
import math

import numpy as np
import pandas as pd
import pytest

from mura_core.config import load_config
from mura_core.errors import DataError
from pipelines.evaluation.bootstrap import paired_differences, study_intervals
from pipelines.evaluation.calibration import (
    TEMPERATURE_RANGE,
    OperatingPoint,
    calibrate,
    check_probabilities,
    fit_calibration,
    fit_operating_point,
    fit_threshold,
    kappa_rows,
    logit,
)
from pipelines.evaluation.metrics import Uncertainty, binary_metrics, evaluate_predictions
from pipelines.evaluation.report import flat_metrics, kappa_table
from pipelines.registry.gate import evaluate_gate
from pipelines.registry.paired import PairedStudies, compare_paired

PARTS = ("XR_ELBOW", "XR_HAND", "XR_WRIST")


def _studies(count: int, seed: int, spread: float = 2.5) -> pd.DataFrame:
    """One image per study with a calibrated probability: each label is drawn from it (`spread`: the
    standard deviation of the logits, how confident the model is)."""
    rng = np.random.default_rng(seed)
    probability = 1 / (1 + np.exp(-rng.normal(0, spread, count)))
    return pd.DataFrame(
        {
            "study_id": [f"s{index:04d}" for index in range(count)],
            "body_part": [PARTS[index % len(PARTS)] for index in range(count)],
            "label": (rng.random(count) < probability).astype(int),
            "probability": probability,
        }
    )


def test_calibration_recovers_a_known_distortion_and_lowers_the_ece():
    studies = _studies(4000, seed=1)
    # The model's output: true probabilities pushed towards abnormal and made overconfident, i.e.
    # logit(distorted) = 2.5 * (logit(p) + 1), which calibrate(temperature=2.5, shift=2.5) undoes.
    distorted = calibrate(studies["probability"], temperature=1 / 2.5, shift=-1.0)
    temperature, shift = fit_calibration(distorted, studies["study_id"], studies["label"])
    assert temperature == pytest.approx(2.5, rel=0.1)
    assert shift == pytest.approx(2.5, rel=0.1)
    from pipelines.evaluation.metrics import calibration

    before = calibration(studies["label"], distorted, 10)["ece"]
    after = calibration(studies["label"], calibrate(distorted, temperature, shift), 10)["ece"]
    assert before > 0.1 and after < 0.03


def test_threshold_maximises_kappa_where_the_classes_separate():
    labels = np.array([0] * 30 + [1] * 30)
    probabilities = np.concatenate([np.linspace(0.6, 0.75, 30), np.linspace(0.8, 0.95, 30)])
    threshold = fit_threshold(probabilities, labels)
    assert 0.75 < threshold < 0.8  # at 0.5 every study is called abnormal (kappa 0)
    assert kappa_rows(labels, probabilities >= threshold) == pytest.approx(1.0)
    assert fit_threshold(probabilities, np.ones(60, dtype=int)) == 0.5  # one class: nothing to fit


def test_operating_point_fits_on_image_rows_and_round_trips():
    studies = _studies(300, seed=2)
    images = pd.concat([studies, studies.assign(probability=studies["probability"] ** 0.8)])
    images["probability"] = calibrate(images["probability"], 0.5, -0.5)
    point = fit_operating_point(images)
    assert point.method == "fitted" and point.studies == 300
    assert OperatingPoint.from_dict(point.to_dict(), 0.5) == point
    assert OperatingPoint.from_dict(None, default_threshold=0.4) == OperatingPoint(threshold=0.4)
    with pytest.raises(DataError, match="not usable"):
        OperatingPoint.from_dict({"threshold": 1.5, "method": "fitted"}, 0.5)
    with pytest.raises(DataError, match="no holdout images"):
        fit_operating_point(images.iloc[:0])


def test_nan_probabilities_are_an_error_naming_the_count():
    with pytest.raises(DataError, match="2 of 4 probabilities are NaN, infinite or outside"):
        check_probabilities([0.1, math.nan, 0.3, 1.5])
    frame = _studies(20, seed=3)
    frame.loc[3, "probability"] = math.nan
    with pytest.raises(DataError, match="retrain"):
        evaluate_predictions(frame, 0.5, 10)


def test_kappa_is_undefined_not_perfect_when_one_class_only():
    assert math.isnan(binary_metrics([1, 1, 1], [0.9, 0.8, 0.7], 0.5)["kappa"])
    assert binary_metrics([0, 1, 1], [0.1, 0.8, 0.7], 0.5)["kappa"] == pytest.approx(1.0)


def test_intervals_cover_the_estimate_and_narrow_with_more_studies():
    small, large = _studies(80, seed=4), _studies(2000, seed=4)
    widths = []
    for studies in (small, large):
        intervals = study_intervals(
            studies["label"], studies["probability"], 0.5, studies["body_part"], 500, 0.95
        )
        kappa = binary_metrics(studies["label"], studies["probability"], 0.5)["kappa"]
        low, high = intervals["kappa"]
        assert low < kappa < high
        assert intervals["auroc"][0] < intervals["auroc"][1] <= 1.0
        widths.append(high - low)
    assert widths[1] < widths[0] / 3


def test_evaluation_reports_intervals_in_metrics_and_table():
    images = _studies(150, seed=5)
    images["raw_probability"] = calibrate(images["probability"], 0.5, -1.0)
    result = evaluate_predictions(images, 0.5, 10, Uncertainty(200, 0.95))
    result["operating_point"] = OperatingPoint(0.5, 0.5, -1.0, "fitted", 60).to_dict()
    flat = flat_metrics(result)
    assert flat["eval.study_kappa_ci_low"] < flat["eval.study_kappa"] < flat["eval.study_kappa_ci_high"]
    assert "eval.elbow.study_auroc_ci_high" in flat and "eval.study_ece_raw" in flat
    table = kappa_table(result)
    assert "95% interval" in table and "fitted on 60 holdout studies" in table
    overall = next(line for line in table.splitlines() if line.startswith("Overall"))
    assert f"[{flat['eval.study_kappa_ci_low']:5.2f}," in overall


POLICY = dataclasses.replace(
    load_config().gate,
    min_study_kappa=0.05,
    min_study_auroc=0.55,
    max_overall_drop=0.0,
    max_part_kappa_drop=0.0,
    paired_replicates=500,
)
FLOOR_METRICS = {"eval.study_kappa": 0.6, "eval.study_auroc": 0.9}


def _paired(challenger: np.ndarray, champion: pd.DataFrame) -> PairedStudies:
    return PairedStudies.join(champion.assign(probability=challenger), champion, (0.5, 0.5))


def test_paired_gate_passes_noise_and_blocks_a_real_regression():
    champion = _studies(150, seed=6)
    rng = np.random.default_rng(7)
    retrain = np.clip(champion["probability"] + rng.normal(0, 0.05, 150), 0, 1)
    verdict = evaluate_gate(FLOOR_METRICS, FLOOR_METRICS, POLICY, 2, paired=_paired(retrain, champion))
    assert verdict.passed, verdict.reason
    assert "study kappa change" in verdict.reason and "150 paired holdout studies" in verdict.reason
    # Half of the abnormal studies now called normal: a regression whose interval excludes zero.
    worse = champion["probability"].to_numpy().copy()
    abnormal = np.flatnonzero(champion["label"].to_numpy() == 1)
    worse[abnormal[::2]] = 0.05
    verdict = evaluate_gate(FLOOR_METRICS, FLOOR_METRICS, POLICY, 2, paired=_paired(worse, champion))
    assert not verdict.passed
    assert "study kappa change -0." in verdict.reason and "a regression larger than 0.000" in verdict.reason


def test_retrains_of_one_model_are_blocked_at_most_as_often_as_the_confidence_allows():
    """80 pairs of equally good models (one truth, independent noise) on 140 studies of 7 types: the
    gate asks 9 questions, so 95 % per interval blocked 6 of 80; family-wise 95 % may block 4 (1 here)."""
    parts = [f"XR_{name}" for name in ("ELBOW", "FINGER", "FOREARM", "HAND", "HUMERUS", "SHOULDER", "WRIST")]
    policy = dataclasses.replace(POLICY, paired_replicates=1000)
    blocked = 0
    for trial in range(80):
        truth = _studies(140, seed=200 + trial).assign(body_part=[parts[i % 7] for i in range(140)])
        rng = np.random.default_rng(300 + trial)
        champion = truth.assign(probability=_noisy(truth["probability"], rng))
        challenger = truth.assign(probability=_noisy(truth["probability"], rng))
        paired = PairedStudies.join(challenger, champion, (0.5, 0.5))
        blocked += bool(compare_paired(paired, policy)[1])
    assert blocked <= 4


def _noisy(probability: pd.Series, rng: np.random.Generator) -> np.ndarray:
    """A retrain's view of the same truth: logits with independent noise."""
    return 1 / (1 + np.exp(-(logit(probability) + rng.normal(0, 0.8, len(probability)))))


def test_paired_differences_of_a_model_with_itself_are_zero():
    studies = _studies(60, seed=8)
    differences = paired_differences(
        studies["label"], studies["probability"], studies["probability"], (0.5, 0.5), studies["body_part"], 50
    )
    assert np.allclose(differences["kappa"], 0) and np.allclose(differences["auroc"], 0)


def test_too_few_paired_studies_show_no_regression():
    champion = _studies(10, seed=9)
    verdict = evaluate_gate(FLOOR_METRICS, FLOOR_METRICS, POLICY, 2, paired=_paired(np.zeros(10), champion))
    assert verdict.passed and "too few to compare" in verdict.reason


def test_a_calibrated_holdout_of_a_hundred_studies_keeps_its_temperature():
    """Twenty holdouts of 110 studies from an already calibrated, confident model: the fit leaves it
    about alone (Platt's smoothed targets on every fit pushed the median temperature to 1.2:
    under-confidence)."""
    holdouts = [_studies(110, seed=100 + seed, spread=4.0) for seed in range(20)]
    temperatures = [fit_calibration(s["probability"], s["study_id"], s["label"])[0] for s in holdouts]
    assert float(np.median(temperatures)) == pytest.approx(1.0, abs=0.1)


def test_a_perfectly_separated_holdout_still_gets_a_finite_temperature():
    """Every abnormal study above every normal one: plain log loss has no minimum (temperature -> 0)."""
    rng = np.random.default_rng(3)
    labels = np.repeat([0, 1], 30)
    probability = np.where(labels == 1, rng.uniform(0.6, 0.95, 60), rng.uniform(0.05, 0.4, 60))
    temperature, shift = fit_calibration(probability, [f"s{i:03d}" for i in range(60)], labels)
    assert temperature > 2 * TEMPERATURE_RANGE[0]
    calibrated = calibrate(probability, temperature, shift)
    assert calibrated.min() > 1e-4 and calibrated.max() < 1 - 1e-4


def test_calibration_is_fitted_on_the_study_mean_and_recovers_a_known_study_distortion():
    """Studies of three images whose mean raw probability is a known distortion of the true one: the
    fit recovers it from the studies' means (calibrating images one by one, then averaging, cannot)."""
    studies = _studies(3000, seed=4)
    mean = calibrate(studies["probability"], temperature=1 / 2.5, shift=-1.0)  # the study's mean raw
    spread = np.minimum(mean, 1 - mean) * 0.8  # images around the mean, same mean, inside (0, 1)
    images = pd.concat(
        [
            studies.assign(probability=mean - spread),
            studies.assign(probability=mean),
            studies.assign(probability=mean + spread),
        ]
    )
    temperature, shift = fit_calibration(images["probability"], images["study_id"], studies["label"])
    assert temperature == pytest.approx(2.5, rel=0.1) and shift == pytest.approx(2.5, rel=0.1)
    point = fit_operating_point(images)
    assert point.level == "study"
    rows = images.assign(raw_probability=images["probability"])
    by_study = pd.Series(point.study_probability(rows), index=rows["study_id"]).groupby(level=0).first()
    expected = calibrate(mean, point.temperature, point.shift)
    np.testing.assert_allclose(by_study.loc[studies["study_id"]].to_numpy(), expected, atol=1e-9)


def test_a_point_stored_before_study_calibration_keeps_calibrating_images():
    stored = {"temperature": 2.0, "shift": 0.5, "threshold": 0.4, "method": "fitted", "studies": 60}
    point = OperatingPoint.from_dict(stored, 0.5)
    assert point.level == "image" and OperatingPoint.from_dict(point.to_dict(), 0.5) == point
    rows = pd.DataFrame({"study_id": ["a", "a", "b"], "raw_probability": [0.2, 0.9, 0.6]})
    image_level = point.study_probability(rows)
    assert image_level[0] == pytest.approx(np.mean(calibrate([0.2, 0.9], 2.0, 0.5)))
    study_level = OperatingPoint(0.4, 2.0, 0.5, "fitted", 60, "study").study_probability(rows)
    assert study_level[0] == pytest.approx(calibrate([0.55], 2.0, 0.5)[0])
    assert study_level[2] == pytest.approx(calibrate([0.6], 2.0, 0.5)[0])  # one image: a study of one
    with pytest.raises(DataError, match="level study or image"):
        OperatingPoint.from_dict({**stored, "level": "patient"}, 0.5)


def test_evaluation_the_served_graph_and_the_client_calibrate_with_one_formula():
    """The calibration was written three times (evaluation, the SavedModel's graph, the client's
    study step); each now calls the contract's function and gives the same numbers."""
    from types import SimpleNamespace

    from mura_core.contracts import OUTPUT_STUDY_CALIBRATION, calibrated
    from pipelines.evaluation.calibration import calibrate
    from serving.client import study_probability

    raw = np.array([0.0, 1e-9, 0.2, 0.5, 0.93, 1.0])
    temperature, shift = 1.7, -0.4
    expected = calibrate(raw, temperature, shift)
    assert np.allclose(calibrated(raw, temperature, shift), expected)
    # The graph's array functions (a namespace of clip, log, log1p, exp), here numpy's own under other names.
    graph_like = SimpleNamespace(clip=np.clip, log=np.log, log1p=np.log1p, exp=np.exp)
    assert np.allclose(
        calibrated(raw.astype(np.float32), temperature, shift, graph_like), expected, atol=1e-6
    )
    answers = [{"raw_probability": p, OUTPUT_STUDY_CALIBRATION: [temperature, shift]} for p in raw[2:5]]
    assert study_probability(answers) == pytest.approx(float(calibrate(raw[2:5].mean(), temperature, shift)))


def test_a_model_without_its_own_threshold_takes_params_yaml_s_not_half():
    """Code fell back to 0.5 where a stored point lacked its threshold (and the holdout pairing, the
    external report, the monitor and the card each did so on their own): params.yaml's fixed
    threshold is the one fallback."""
    assert OperatingPoint.from_dict({"method": "fixed", "temperature": 1.0}, 0.37).threshold == 0.37
    assert OperatingPoint.from_dict(None, 0.37) == OperatingPoint(threshold=0.37)
