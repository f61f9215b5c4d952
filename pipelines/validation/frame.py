"""The frame the suite checks: the manifest plus image facts and derived cross-row columns.

GX has no expectation for rules that span rows (a patient in two splits, a part's abnormal ratio,
path fields that disagree with the path), so they become one column each, null where the rule does
not apply; a named expectation then checks each column, so Data Docs show every rule. Study-level
rules run on a frame of their own (pipelines.validation.studies).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pandas as pd

from mura_core.errors import DataValidationError
from mura_core.stages import Validation
from pipelines.data import parse_image_path
from pipelines.validation.image_checks import image_columns

# Manifest columns the suite needs, with the Python kind of their values.
REQUIRED_COLUMNS = {
    "image_path": "str",
    "split": "str",
    "body_part": "str",
    "patient_id": "str",
    "study_id": "str",
    "label": "int",
    "image_index": "int",
    "width": "int",
    "height": "int",
    "mode": "str",
    "file_bytes": "int",
    "folder_label": "int",
    "csv_label": "int",
    "listed": "bool",
}
DERIVED_COLUMNS = (
    "path_matches_fields",
    "patient_in_one_split",
    "part_abnormal_ratio",
)


def check_required_columns(manifest: pd.DataFrame) -> None:
    """Raise DataValidationError naming the missing columns (instead of a KeyError deep inside)."""
    missing = [name for name in REQUIRED_COLUMNS if name not in manifest.columns]
    if not missing:
        return
    message = (
        f"Data validation FAILED: rule required_columns: the manifest lacks {len(missing)} column(s): "
        f"{', '.join(missing)} (it has: {', '.join(map(str, manifest.columns))}). Rebuild it with "
        f"'mura data manifest' (pipelines.data.manifest.build_manifest)."
    )
    failure: dict[str, Any] = {
        "rule": "required_columns",
        "unexpected_count": len(missing),
        "missing": missing,
        "examples": [],
        "message": message,
    }
    report = Validation(
        success=False,
        summary=message,
        rows=len(manifest),
        studies=0,  # not counted: the study checks need the missing columns
        rules_checked=1,
        rules_failed=1,
        failed_rules=[failure["rule"]],
        failures=[failure],
        data_docs=None,
        data_version="",
    )
    raise DataValidationError(message, report.to_xcom())


def _boolean(values) -> pd.Series:
    return pd.Series(pd.array(values, dtype="boolean"))


def _path_matches_fields(frame: pd.DataFrame) -> pd.Series:
    """Whether split/part/patient/study/index agree with image_path; null where the path is malformed."""
    result: list[bool | None] = []
    rows = frame[["image_path", "split", "body_part", "patient_id", "study_id", "image_index"]].itertuples(
        index=False
    )
    for path, split, body_part, patient_id, study_id, image_index in rows:
        parsed = parse_image_path(path) if isinstance(path, str) else None
        if parsed is None:
            result.append(None)  # reported by image_path_pattern
            continue
        # holdout rows live in the train folder: the holdout is carved out of MURA train.
        folder_split = "train" if split == "holdout" else split
        result.append(
            parsed.split == folder_split
            and parsed.body_part == body_part
            and parsed.patient_id == patient_id
            and parsed.study_id == study_id
            and parsed.image_index == image_index
        )
    return _boolean(result)


def _per_group_unique(frame: pd.DataFrame, key: str, value: str) -> pd.Series:
    """True where every row of the row's `key` group has one `value`; null where the key is blank."""
    counts = frame.groupby(key, dropna=True)[value].transform("nunique")
    blank = frame[key].isna() | (frame[key].astype(str) == "")
    return _boolean([None if is_blank else count == 1 for is_blank, count in zip(blank, counts, strict=True)])


def _part_abnormal_ratio(frame: pd.DataFrame, min_images: int) -> pd.Series:
    """Share of abnormal images of the row's body part; null for parts too small to judge."""
    grouped = frame.groupby("body_part")["label"]
    ratio = grouped.transform("mean").astype("float64")
    ratio[grouped.transform("size") < min_images] = float("nan")
    return ratio.reset_index(drop=True)


def _as_object_strings(frame: pd.DataFrame) -> pd.DataFrame:
    """Cast string columns to object dtype: GX 1.24's type checks do not know pandas 3's `str` dtype."""
    casts = {name: object for name in frame.columns if pd.api.types.is_string_dtype(frame[name].dtype)}
    return frame.astype(casts) if casts else frame


def prepare_frame(
    manifest: pd.DataFrame, data_root: Path, params: dict, workers: int | None = None
) -> pd.DataFrame:
    """The manifest with image facts and derived columns added, ready for the suite."""
    check_required_columns(manifest)
    frame = _as_object_strings(manifest.reset_index(drop=True))
    for name, values in image_columns(
        data_root, [str(path) for path in frame["image_path"]], workers
    ).items():
        frame[name] = values
    frame["image_exists"] = frame["image_exists"].astype(bool)
    frame["image_decodes"] = _boolean(frame["image_decodes"].tolist())
    for name in ("image_bytes", "image_width", "image_height", "image_pixel_range"):
        frame[name] = pd.to_numeric(frame[name], errors="coerce").astype("float64")
    frame["path_matches_fields"] = _path_matches_fields(frame)
    frame["patient_in_one_split"] = _per_group_unique(frame, "patient_id", "split")
    frame["part_abnormal_ratio"] = _part_abnormal_ratio(frame, int(params["abnormal_ratio"]["min_images"]))
    return frame


IMAGE_RULES = (
    "image_file_exists",
    "image_not_empty",
    "image_decodes",
    "image_width",
    "image_height",
    "image_mode",
    "image_not_constant",
)


def failure_notes(frame: pd.DataFrame) -> dict[str, dict[str, str]]:
    """Per rule, a short reason for each failing row's image path (shown beside the report's examples)."""
    notes: dict[str, dict[str, str]] = {}
    broken = frame[frame["image_error"] != ""]
    image_notes = dict(zip(broken["image_path"], broken["image_error"], strict=True))
    for rule in IMAGE_RULES:
        notes[rule] = image_notes
    leaking = frame[frame["patient_in_one_split"].eq(False).fillna(False)]
    if len(leaking):
        splits = (
            frame[frame["patient_id"].isin(set(leaking["patient_id"]))]
            .groupby("patient_id")["split"]
            .unique()
        )
        notes["patient_in_one_split"] = {
            path: f"patient {patient} is in {' and '.join(sorted(splits[patient]))}"
            for path, patient in zip(leaking["image_path"], leaking["patient_id"], strict=True)
        }
    disagree = frame[frame["label"] != frame["folder_label"]]
    notes["label_matches_folder"] = {
        path: f"label {label}, folder suffix says {folder}"
        for path, label, folder in zip(
            disagree["image_path"], disagree["label"], disagree["folder_label"], strict=True
        )
    }
    return notes
