"""The drift tests' arithmetic: Holm's correction, patient permutations, each test on known samples,
the verdict's floors."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from scipy import stats

from pipelines.monitoring.drift import Clusters, categorical_test, holm, mmd_test, numeric_test, verdict


def _each_own_patient(n: int, m: int) -> Clusters:
    return Clusters.of([f"r{i}" for i in range(n)], [f"c{i}" for i in range(m)])


def test_holm_adjusts_in_step_down_order_and_keeps_monotonicity():
    assert holm([0.01, 0.04, 0.03, 0.5]) == pytest.approx([0.04, 0.09, 0.09, 0.5])
    assert holm([0.9, 0.8]) == pytest.approx([1.0, 1.0])  # 2 x 0.8, capped at 1


def test_ks_distance_equals_scipys_and_sees_a_shift_and_not_its_absence():
    rng = np.random.default_rng(0)
    first, second = rng.normal(0, 1, 300), rng.normal(0.5, 1, 300)
    moved = numeric_test("x", first, second, _each_own_patient(300, 300), 199, seed=0)
    assert moved.statistic == pytest.approx(stats.ks_2samp(first, second).statistic)
    assert moved.p_value == pytest.approx(1 / 200) and moved.effect > 0.15
    same = numeric_test("x", first, rng.normal(0, 1, 300), _each_own_patient(300, 300), 199, seed=0)
    assert same.p_value > 0.01


def test_patient_permutations_do_not_mistake_clustered_images_for_drift():
    """Ten images per patient, patients differing a lot: the same population in both samples. Image-level
    KS calls that drift; the patient permutation does not."""
    rng = np.random.default_rng(3)

    def sample(prefix: str):
        centres = rng.normal(0, 3, 30)
        return np.repeat(centres, 10) + rng.normal(0, 0.1, 300), np.repeat(
            [f"{prefix}{i}" for i in range(30)], 10
        )

    (first, first_patients), (second, second_patients) = sample("a"), sample("b")
    clusters = Clusters.of(first_patients, second_patients)
    naive = stats.ks_2samp(first, second).pvalue
    permuted = numeric_test("x", first, second, clusters, 199, seed=0).p_value
    assert naive < 0.01 < permuted, (naive, permuted)


def test_categorical_test_reports_shares_and_cramers_v():
    mix = categorical_test("part", ["a"] * 50 + ["b"] * 50, ["a"] * 90 + ["b"] * 10 + ["c"] * 5)
    assert mix.p_value < 1e-6 and 0.3 < mix.effect <= 1.0 and "c 5%" in mix.current
    assert categorical_test("mode", ["L"] * 10, ["L"] * 12).p_value == 1.0


def test_mmd_separates_moved_features_and_not_equal_ones():
    rng = np.random.default_rng(1)
    reference = rng.normal(0, 1, (120, 8))
    clusters = _each_own_patient(120, 120)
    assert mmd_test(reference, rng.normal(0, 1, (120, 8)), clusters, 99, seed=0).p_value > 0.05
    moved = rng.normal(0, 1, (120, 8))
    moved[:, 0] += 0.8
    assert mmd_test(reference, moved, clusters, 99, seed=0).p_value == pytest.approx(0.01)


def test_verdict_needs_significance_and_a_large_enough_effect():
    rng = np.random.default_rng(2)
    big = numeric_test(
        "contrast", rng.normal(0, 1, 3000), rng.normal(0.15, 1, 3000), _each_own_patient(3000, 3000), 99, 0
    )
    judged, drifted = verdict([big], alpha=0.05, min_effect={"default": 0.1})
    assert big.p_value < 0.05 and big.effect < 0.1 and not drifted, (
        "a small difference on a big release is not drift"
    )
    judged, drifted = verdict([big], alpha=0.05, min_effect={"default": 0.0})
    assert drifted and judged[0].adjusted_p == big.p_value


def test_feature_tests_cover_images_and_studies():
    from pipelines.monitoring.drift import feature_tests
    from pipelines.monitoring.profile import IMAGE_FEATURES

    frame = pd.DataFrame(
        {name: np.arange(6.0) for name in IMAGE_FEATURES}
        | {
            "mode": ["L"] * 6,
            "patient_id": ["p1", "p1", "p2", "p3", "p4", "p5"],
            "study_id": ["s1", "s1", "s2", "s3", "s4", "s5"],
            "body_part": ["XR_HAND"] * 6,
            "label": [0, 0, 1, 0, 1, 1],
        }
    )
    names = [test.feature for test in feature_tests(frame, frame, permutations=19)]
    assert names == [*IMAGE_FEATURES, "mode", "body_part", "label"]
