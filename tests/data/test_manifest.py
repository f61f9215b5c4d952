"""The manifest of generated trees: counts, hidden files, holdout, and the data-problem report."""

from __future__ import annotations

import shutil

import pytest

from mura_core.contracts import BODY_PARTS
from mura_core.errors import DataError
from pipelines.data.layout import MANIFEST_COLUMNS
from pipelines.data.manifest import build_manifest, manifest_hash, read_manifest, write_manifest
from pipelines.data.synth import FAULTS, generate_synthetic


def test_counts_per_part_and_split_equal_what_the_generator_wrote(tmp_path):
    summary = generate_synthetic(tmp_path, seed=3, train_patients=40, valid_patients=12)
    frame = build_manifest(tmp_path).frame
    assert list(frame.columns[: len(MANIFEST_COLUMNS)]) == list(MANIFEST_COLUMNS)
    frame = frame.assign(split=frame["split"].replace({"holdout": "train"}))
    for split, parts in summary["counts"].items():
        for part, counts in parts.items():
            rows = frame[(frame["split"] == split) & (frame["body_part"] == part)]
            assert len(rows) == counts["images"], (split, part)
            assert rows["study_id"].nunique() == counts["studies"], (split, part)
    assert set(frame["body_part"]) <= set(BODY_PARTS)
    assert frame["width"].between(100, 512).all() and frame["height"].between(100, 512).all()
    assert set(frame["mode"]) == {"L", "RGB"}


def test_valid_patients_are_numbered_after_train_and_disjoint(synthetic_manifest):
    train = synthetic_manifest[synthetic_manifest["split"] != "valid"]["patient_id"].astype(int)
    valid = synthetic_manifest[synthetic_manifest["split"] == "valid"]["patient_id"].astype(int)
    assert valid.min() > train.max()


def test_hidden_files_are_ignored(tmp_path, synthetic_root):
    shutil.copytree(synthetic_root / "MURA-v1.1", tmp_path / "MURA-v1.1")
    study = next((tmp_path / "MURA-v1.1" / "train").glob("XR_*/patient*/study*"))
    (study / "._image1.png").write_bytes(b"\x00resource fork")
    (study / ".DS_Store").write_bytes(b"\x00")
    result = build_manifest(tmp_path)
    assert not result.problems
    assert not result.frame["image_path"].str.contains("/\\.", regex=True).any()


def test_holdout_is_reproducible_patient_level_and_about_ten_percent(synthetic_root):
    first = build_manifest(synthetic_root, holdout_fraction=0.1, seed=5).frame
    again = build_manifest(synthetic_root, holdout_fraction=0.1, seed=5).frame
    other = build_manifest(synthetic_root, holdout_fraction=0.1, seed=6).frame
    assert first["split"].tolist() == again["split"].tolist()
    assert first["split"].tolist() != other["split"].tolist()
    holdout = set(first.loc[first["split"] == "holdout", "patient_id"])
    train = set(first.loc[first["split"] == "train", "patient_id"])
    assert holdout and not holdout & train
    share = len(holdout) / (len(holdout) + len(train))
    assert 0.05 <= share <= 0.2


EXPECTED_PROBLEM = {
    "corrupt_png": "unreadable_image",
    "zero_byte": "empty_file",
    "missing_file": "missing_file",
    "unlisted_file": "unlisted_file",
    "patient_in_both_splits": "patient_overlap",
    "label_mismatch": "label_mismatch",
    "unknown_body_part": "unknown_body_part",
    "duplicate_csv_row": "duplicate_row",
}


def test_every_fault_kind_is_named():
    assert set(EXPECTED_PROBLEM) == set(FAULTS)


@pytest.mark.parametrize("fault", FAULTS)
def test_each_fault_shows_up_in_the_problem_report(tmp_path, fault):
    generate_synthetic(tmp_path, seed=2, train_patients=12, valid_patients=4, fault=fault)
    result = build_manifest(tmp_path)
    kinds = result.problem_counts()
    assert EXPECTED_PROBLEM[fault] in kinds, kinds
    assert set(kinds) == {EXPECTED_PROBLEM[fault]}, f"{fault} caused other problems too: {kinds}"


def test_clean_data_has_no_problems(synthetic_root):
    assert build_manifest(synthetic_root).problems == []


def test_not_a_mura_tree_is_a_clear_error(tmp_path):
    with pytest.raises(DataError, match="not a MURA tree"):
        build_manifest(tmp_path)


def test_csv_with_wrong_column_count_names_file_and_line(tmp_path, synthetic_root):
    shutil.copytree(synthetic_root / "MURA-v1.1", tmp_path / "MURA-v1.1")
    csv_path = tmp_path / "MURA-v1.1" / "valid_labeled_studies.csv"
    csv_path.write_text(
        csv_path.read_text() + "MURA-v1.1/valid/XR_HAND/patient99999/study1_positive/,1,extra\n"
    )
    with pytest.raises(DataError, match=r"valid_labeled_studies.csv: line \d+ has 3 columns, expected 2"):
        build_manifest(tmp_path)


def test_manifest_round_trips_through_parquet(tmp_path, synthetic_manifest):
    path = write_manifest(synthetic_manifest, tmp_path / "m.parquet")
    loaded = read_manifest(path)
    assert manifest_hash(loaded) == manifest_hash(synthetic_manifest)
    assert loaded.equals(synthetic_manifest)
