"""Each named shift of the synthetic generator is caught by the drift tests, on the feature it moves;
a clean release drawn with another seed is not (its false-positive rate over many seeds is measured in
benchmarks/bench_monitor_drift.py)."""

from __future__ import annotations

import pytest

from pipelines.data.manifest import build_manifest
from pipelines.data.synth import SHIFTS, generate_synthetic
from pipelines.monitoring.drift import feature_tests, verdict
from pipelines.monitoring.profile import image_profile, sample_rows

pytestmark = pytest.mark.slow
SIZE = {"train_patients": 70, "valid_patients": 30}
EXPECTED = {
    "brightness": "mean_intensity",
    "noise": "noise",
    "resolution": "width",
    "study_mix": "body_part",
    "prevalence": "label",
    "other_site": "mean_intensity",  # another hospital: darker exposures (and its own study mix)
}
PARAMS = {"alpha": 0.05, "min_effect": {"default": 0.1}}


def _profile(root):
    frame = build_manifest(root).frame
    return image_profile(sample_rows(frame[frame["image_path"].notna()], 400, seed=0), root, workers=1)


@pytest.fixture(scope="module")
def reference(tmp_path_factory):
    root = tmp_path_factory.mktemp("reference")
    generate_synthetic(root, seed=7, **SIZE)
    return _profile(root)


def test_shift_kinds_cover_the_issue():
    assert set(SHIFTS) == set(EXPECTED)


def test_a_clean_release_from_another_seed_is_not_drift(reference, tmp_path):
    generate_synthetic(tmp_path, seed=8, **SIZE)
    judged, drifted = verdict(feature_tests(reference, _profile(tmp_path), permutations=200), **PARAMS)
    assert not drifted, [test for test in judged if test.drifted]


@pytest.mark.parametrize("shift", sorted(EXPECTED))
def test_each_shift_is_flagged_on_the_feature_it_moves(reference, tmp_path, shift):
    summary = generate_synthetic(tmp_path, seed=9, shift=shift, **SIZE)
    assert summary["shift"] == shift
    judged, drifted = verdict(feature_tests(reference, _profile(tmp_path), permutations=200), **PARAMS)
    flagged = [test.feature for test in judged if test.drifted]
    assert drifted and EXPECTED[shift] in flagged, judged
