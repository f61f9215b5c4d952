"""The synthetic generator: deterministic, MURA-shaped, and atomic."""

from __future__ import annotations

import hashlib

import pytest

from mura_core.errors import ConfigError
from pipelines.data.synth import generate_synthetic


def _digest(root):
    files = sorted(path for path in (root / "MURA-v1.1").rglob("*") if path.is_file())
    return hashlib.sha256(
        b"".join(p.relative_to(root).as_posix().encode() + p.read_bytes() for p in files)
    ).hexdigest()


def test_same_seed_gives_identical_bytes_and_another_seed_does_not(tmp_path):
    generate_synthetic(tmp_path / "a", seed=4, train_patients=10, valid_patients=3)
    generate_synthetic(tmp_path / "b", seed=4, train_patients=10, valid_patients=3)
    generate_synthetic(tmp_path / "c", seed=5, train_patients=10, valid_patients=3)
    assert _digest(tmp_path / "a") == _digest(tmp_path / "b")
    assert _digest(tmp_path / "a") != _digest(tmp_path / "c")


def test_studies_have_one_to_four_images_and_patients_one_to_three_studies(synthetic_manifest):
    per_study = synthetic_manifest.groupby("study_id").size()
    per_patient = synthetic_manifest.groupby("patient_id")["study_id"].nunique()
    assert per_study.between(1, 4).all() and per_study.max() > 1
    assert per_patient.between(1, 3).all() and per_patient.max() > 1


def test_unknown_fault_is_refused_and_nothing_is_written(tmp_path):
    with pytest.raises(ConfigError, match="unknown fault 'bogus'"):
        generate_synthetic(tmp_path, fault="bogus")
    assert not any(tmp_path.iterdir())
