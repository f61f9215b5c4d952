"""The gate's building blocks without GX: image checks, derived columns, the report helpers, params."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest
from PIL import Image

from mura_core.errors import ConfigError, DataValidationError
from pipelines.validation.frame import check_required_columns, failure_notes, prepare_frame
from pipelines.validation.image_checks import IMAGE_COLUMNS, check_image, check_images
from pipelines.validation.report import plain, summary_text
from pipelines.validation.runner import gate_params, validate
from pipelines.validation.studies import study_frame

PARAMS = {"abnormal_ratio": {"min_images": 2}}


def _png(path, mode="L", size=(80, 60), constant=False):
    rng = np.random.default_rng(0)
    shape = (size[1], size[0]) if mode == "L" else (size[1], size[0], 3)
    pixels = np.full(shape, 90, np.uint8) if constant else rng.integers(0, 255, shape, dtype=np.uint8)
    Image.fromarray(pixels, mode=mode).save(path)
    return str(path)


def test_a_good_image_reports_its_decoded_size_mode_and_contrast(tmp_path):
    facts = dict(zip(IMAGE_COLUMNS, check_image(_png(tmp_path / "a.png", "RGB", (90, 70))), strict=True))
    assert facts["image_exists"] and facts["image_decodes"] and facts["image_error"] == ""
    assert (facts["image_width"], facts["image_height"], facts["image_mode"]) == (90, 70, "RGB")
    assert facts["image_bytes"] > 0 and facts["image_pixel_range"] > 0


def test_each_broken_image_fails_at_its_first_stage_only(tmp_path):
    good = _png(tmp_path / "good.png")
    truncated = tmp_path / "truncated.png"
    data = (tmp_path / "good.png").read_bytes()
    truncated.write_bytes(data[: len(data) // 2])
    (tmp_path / "empty.png").write_bytes(b"")
    (tmp_path / "text.png").write_text("not an image")
    constant = _png(tmp_path / "constant.png", constant=True)
    missing = check_image(str(tmp_path / "missing.png"))
    assert missing[0] is False and missing[1:7] == (None,) * 6 and "not found" in missing[7]
    empty = check_image(str(tmp_path / "empty.png"))
    assert empty[:3] == (True, 0, None) and "empty" in empty[7]
    for broken in (truncated, tmp_path / "text.png"):
        facts = check_image(str(broken))
        assert facts[2] is False and facts[3] is None and facts[7].startswith("does not decode")
    assert check_image(constant)[6] == 0.0
    assert check_image(good)[6] > 0


def test_parallel_checks_equal_serial_checks_in_order(tmp_path):
    paths = [_png(tmp_path / f"{index}.png", size=(40 + index, 50)) for index in range(12)]
    paths.insert(5, str(tmp_path / "missing.png"))
    assert check_images(paths, workers=2) == check_images(paths, workers=1)
    assert [facts[3] for facts in check_images(paths, workers=2)][:3] == [40, 41, 42]


def test_missing_manifest_column_is_a_clear_validation_error_not_a_key_error(synthetic_manifest, tmp_path):
    broken = synthetic_manifest.drop(columns=["label", "patient_id"])
    with pytest.raises(DataValidationError) as caught:
        validate(broken, tmp_path, project_dir=tmp_path / "gx")
    message = str(caught.value)
    assert "required_columns" in message and "label" in message and "patient_id" in message
    assert caught.value.report["failures"][0]["missing"] == ["patient_id", "label"]
    assert not (tmp_path / "gx").exists()  # stopped before GX was touched
    check_required_columns(synthetic_manifest)  # the real manifest has them all


def _frame_rows():
    rows = [
        ("MURA-v1.1/train/XR_HAND/patient00001/study1_positive/image1.png", "train", 1, 1),
        (
            "MURA-v1.1/train/XR_HAND/patient00001/study1_positive/image2.png",
            "train",
            0,
            1,
        ),  # study label differs
        (
            "MURA-v1.1/valid/XR_HAND/patient00001/study2_negative/image1.png",
            "valid",
            0,
            0,
        ),  # patient in 2 splits
        ("MURA-v1.1/train/XR_HAND/patient00002/study1_negative/image1.png", "holdout", 0, 0),
        ("not/a/mura/path.png", "train", 0, 0),
    ]
    frame = pd.DataFrame(rows, columns=["image_path", "split", "label", "folder_label"])
    frame["body_part"] = "XR_HAND"
    frame["patient_id"] = ["00001", "00001", "00001", "00002", ""]
    frame["study_id"] = ["XR_HAND/patient00001/study1"] * 2 + [
        "XR_HAND/patient00001/study2",
        "XR_HAND/patient00002/study1",
        "",
    ]
    frame["image_index"] = [1, 2, 1, 1, 1]
    frame[["width", "height", "file_bytes", "csv_label"]] = [0, 0, 0, -1]
    frame["mode"], frame["listed"] = "L", True
    return frame


def test_cross_row_rules_become_boolean_columns_null_where_they_do_not_apply(tmp_path):
    frame = prepare_frame(_frame_rows(), tmp_path, PARAMS, workers=1)
    assert frame["patient_in_one_split"].tolist()[:4] == [False, False, False, True]
    assert frame["path_matches_fields"].tolist()[:4] == [True, True, True, True]  # holdout lives under train/
    assert (
        frame["patient_in_one_split"].isna().tolist()[4] and frame["path_matches_fields"].isna().tolist()[4]
    )
    assert frame["part_abnormal_ratio"].iloc[0] == pytest.approx(0.2)
    assert not frame["image_exists"].any()
    notes = failure_notes(frame)
    assert notes["patient_in_one_split"][frame["image_path"][0]] == "patient 00001 is in train and valid"
    assert "file not found" in notes["image_file_exists"][frame["image_path"][0]]


def test_study_frame_counts_images_labels_and_csv_entries_including_empty_studies(tmp_path):
    release = tmp_path / "MURA-v1.1"
    release.mkdir()
    study = "MURA-v1.1/train/XR_HAND/patient00001/study1_positive/"
    empty = "MURA-v1.1/valid/XR_HAND/patient00009/study1_negative/"
    (release / "train_labeled_studies.csv").write_text(f"{study},1\n{study},1\n")
    (release / "valid_labeled_studies.csv").write_text(f"{empty},0\n")
    for name in ("train_image_paths.csv", "valid_image_paths.csv"):
        (release / name).write_text("")
    studies = study_frame(_frame_rows(), tmp_path).set_index("study_path")
    assert studies.loc[study, "images"] == 2 and studies.loc[study, "labels"] == 2  # labels 1 and 0
    assert studies.loc[study, "csv_entries"] == 2
    assert studies.loc[empty, "images"] == 0 and np.isnan(studies.loc[empty, "labels"])
    assert "not/a/mura/" not in studies.index  # malformed paths are image_path_pattern's business
    assert studies.loc["MURA-v1.1/valid/XR_HAND/patient00001/study2_negative/", "csv_entries"] == 0


def test_a_path_that_disagrees_with_its_fields_is_flagged(tmp_path):
    frame = _frame_rows()
    frame.loc[3, "patient_id"] = "00003"
    frame.loc[0, "image_index"] = 7
    flags = prepare_frame(frame, tmp_path, PARAMS, workers=1)["path_matches_fields"].tolist()
    assert flags[:4] == [False, True, True, False]


def test_small_parts_have_no_ratio_to_judge(tmp_path):
    frame = prepare_frame(_frame_rows(), tmp_path, {"abnormal_ratio": {"min_images": 6}}, workers=1)
    assert frame["part_abnormal_ratio"].isna().all()


def test_report_values_become_plain_json():
    value = plain({"a": np.int64(3), "b": [np.float64("nan"), (np.bool_(True), "x")]})
    assert value == {"a": 3, "b": [None, [True, "x"]]}
    json.dumps(value)


def test_summary_names_each_failed_rule_and_the_docs():
    report = {
        "success": False,
        "rules_failed": 1,
        "rules_checked": 9,
        "rows": 10,
        "data_docs": "file:///d/index.html",
        "failures": [{"message": "image_decodes: 1 image(s) fail"}],
    }
    text = summary_text(report)
    assert text.splitlines() == [
        "Data validation FAILED: 1 of 9 rules failed on 10 images.",
        "  - image_decodes: 1 image(s) fail",
        "Data Docs: file:///d/index.html",
    ]


def test_gate_params_come_from_params_yaml_and_are_checked():
    params = gate_params()
    assert params["row_count"]["min"] < params["row_count"]["max"]
    assert set(params["image"]["allowed_modes"]) >= {"L"}
    with pytest.raises(ConfigError, match="abnormal_ratio"):
        gate_params({"examples": 3, "row_count": {}, "image": {}})
