"""The MURA manifest: one row per image with its split, study, label and header properties.

Disagreements between the CSVs and the disk are rows with flags plus entries in `problems`, never
crashes: the validation gate decides what fails.
"""

from __future__ import annotations

import hashlib
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from mura_core.contracts import BODY_PARTS
from mura_core.errors import DataError
from pipelines.data.headers import read_headers
from pipelines.data.layout import IMAGE_CSV, MANIFEST_COLUMNS, SPLITS, STUDY_CSV, parse_image_path
from pipelines.data.release import read_image_csv, read_study_csv, release_dir, scan_images

EXTRA_COLUMNS = ("folder_label", "csv_label", "listed", "file_exists", "intact")


@dataclass
class ManifestResult:
    """The manifest frame and the data problems found while building it."""

    frame: pd.DataFrame
    problems: list[dict] = field(default_factory=list)

    def problem_counts(self) -> dict[str, int]:
        """How many problems of each kind."""
        return dict(Counter(problem["kind"] for problem in self.problems))


def _problem(kind: str, path: str, detail: str) -> dict:
    return {"kind": kind, "path": path, "detail": detail}


def _row(path: str, listed: bool, csv_split: str, study_labels: dict[str, int], problems: list[dict]) -> dict:
    parsed = parse_image_path(path)
    if parsed is None:
        problems.append(
            _problem(
                "bad_path",
                path,
                "does not match MURA-v1.1/<split>/XR_<PART>/patientNNNNN/studyN_<label>/imageN.png",
            )
        )
        return {
            "image_path": path,
            "split": csv_split,
            "body_part": "",
            "patient_id": "",
            "study_id": "",
            "label": -1,
            "image_index": -1,
            "folder_label": -1,
            "csv_label": -1,
            "listed": listed,
        }
    csv_label = study_labels.get(parsed.study_path, -1)
    return {
        "image_path": path,
        "split": parsed.split,
        "body_part": parsed.body_part,
        "patient_id": parsed.patient_id,
        "study_id": parsed.study_id,
        "label": csv_label if csv_label >= 0 else parsed.folder_label,
        "image_index": parsed.image_index,
        "folder_label": parsed.folder_label,
        "csv_label": csv_label,
        "listed": listed,
    }


def _collect_rows(data_root: Path) -> tuple[list[dict], list[dict]]:
    release = release_dir(data_root)
    problems: list[dict] = []
    study_labels: dict[str, int] = {}
    for split in SPLITS:
        for study_path, label in read_study_csv(release / STUDY_CSV[split]):
            study_labels[study_path] = label
    rows: list[dict] = []
    seen: Counter[str] = Counter()
    for split in SPLITS:
        for path in read_image_csv(release / IMAGE_CSV[split]):
            seen[path] += 1
            if seen[path] == 2:
                problems.append(
                    _problem("duplicate_row", path, f"listed more than once in {IMAGE_CSV[split]}")
                )
            rows.append(_row(path, True, split, study_labels, problems))
    for path in scan_images(data_root):
        if path not in seen:
            problems.append(_problem("unlisted_file", path, "on disk but not in the image CSVs"))
            rows.append(_row(path, False, path.split("/")[1], study_labels, problems))
    for row in rows:
        if row["csv_label"] >= 0 and row["folder_label"] >= 0 and row["csv_label"] != row["folder_label"]:
            problems.append(
                _problem(
                    "label_mismatch",
                    row["image_path"],
                    f"labeled_studies CSV says {row['csv_label']}, folder suffix says {row['folder_label']}",
                )
            )
        elif row["csv_label"] < 0 and row["folder_label"] >= 0:
            problems.append(
                _problem("unlabeled_study", row["image_path"], "study missing from the labeled_studies CSV")
            )
    return rows, problems


def _file_problems(frame: pd.DataFrame) -> list[dict]:
    """Problems seen in the files themselves and across rows (parts, patients across splits)."""
    found = []
    for path in frame.loc[frame["listed"] & ~frame["file_exists"], "image_path"]:
        found.append(_problem("missing_file", path, "listed in the image CSV but not on disk"))
    for path in frame.loc[frame["file_bytes"] == 0, "image_path"]:
        found.append(_problem("empty_file", path, "zero bytes"))
    for path in frame.loc[(frame["file_bytes"] > 0) & ~frame["intact"], "image_path"]:
        found.append(_problem("unreadable_image", path, "not a complete PNG/JPEG (truncated or corrupt)"))
    for path in frame.loc[~frame["body_part"].isin(BODY_PARTS) & (frame["body_part"] != ""), "image_path"]:
        found.append(
            _problem("unknown_body_part", path, f"body part folder is not one of {', '.join(BODY_PARTS)}")
        )
    known = frame[frame["patient_id"] != ""]
    splits_per_patient = known.groupby("patient_id")["split"].nunique()
    for patient in splits_per_patient[splits_per_patient > 1].index:
        path = known.loc[known["patient_id"] == patient, "image_path"].iloc[0]
        found.append(_problem("patient_overlap", path, f"patient {patient} appears in both train and valid"))
    return found


def assign_holdout(frame: pd.DataFrame, fraction: float, seed: int) -> pd.Series:
    """Split labels with a seeded, patient-level `fraction` of train moved to `holdout`, stratified by part."""
    if not 0.0 <= fraction < 1.0:
        raise DataError(f"holdout fraction must be in [0, 1), got {fraction}")
    split = frame["split"].copy()
    train = frame[frame["split"] == "train"]
    patient_part = train.groupby("patient_id")["body_part"].agg(lambda parts: parts.value_counts().index[0])
    rng = np.random.default_rng(seed)
    holdout_patients: set[str] = set()
    for part in sorted(patient_part.unique()):
        patients = sorted(patient_part[patient_part == part].index)
        take = int(round(fraction * len(patients)))
        if take == 0 and fraction > 0 and len(patients) >= 5:
            take = 1
        holdout_patients.update(rng.permutation(patients)[:take].tolist())
    split[(frame["split"] == "train") & frame["patient_id"].isin(holdout_patients)] = "holdout"
    return split


def build_manifest(
    data_root: Path,
    holdout_fraction: float | None = None,
    seed: int | None = None,
    workers: int | None = None,
) -> ManifestResult:
    """Read the CSVs and the tree under `data_root` (the folder holding MURA-v1.1/) into a manifest.

    The holdout share and seed default to params.yaml's `data:` section.
    """
    if holdout_fraction is None or seed is None:
        from mura_core.config import load_config

        data = load_config().data
        holdout_fraction = data.holdout_fraction if holdout_fraction is None else holdout_fraction
        seed = data.holdout_seed if seed is None else seed
    data_root = Path(data_root)
    rows, problems = _collect_rows(data_root)
    if not rows:
        raise DataError(f"{data_root}: the MURA CSVs list no images and the tree holds none")
    frame = pd.DataFrame(rows)
    headers = read_headers(data_root, frame["image_path"].tolist(), workers)
    columns = ("width", "height", "mode", "file_bytes", "intact")
    for name, values in zip(columns, zip(*headers, strict=True), strict=True):
        frame[name] = list(values)
    frame["file_exists"] = frame["file_bytes"] >= 0
    problems.extend(_file_problems(frame))
    frame["split"] = assign_holdout(frame, holdout_fraction, seed)
    ints = ["label", "image_index", "width", "height", "file_bytes", "folder_label", "csv_label"]
    frame[ints] = frame[ints].astype("int64")
    frame = frame[[*MANIFEST_COLUMNS, *EXTRA_COLUMNS]]
    return ManifestResult(frame=frame, problems=problems)


def write_manifest(frame: pd.DataFrame, path: Path) -> Path:
    """Write the manifest as parquet (via a temporary name, so readers never see half a file)."""
    from mura_core.atomic_files import replaced_atomically

    path = Path(path)
    with replaced_atomically(path) as partial:
        frame.to_parquet(partial, index=False)
    return path


def read_manifest(path: Path) -> pd.DataFrame:
    """Read a manifest parquet written by write_manifest."""
    path = Path(path)
    if not path.is_file():
        raise DataError(f"{path}: manifest not found; build it with 'mura data manifest'")
    return pd.read_parquet(path)


def manifest_hash(frame: pd.DataFrame) -> str:
    """A short content hash of the manifest rows, logged as lineage with every run.

    Order-independent over the columns that decide what a model learns, so the same rows in another
    order (or with header columns re-read) hash the same.
    """
    columns = [name for name in ("image_path", "split", "body_part", "study_id", "label") if name in frame]
    ordered = frame[columns].sort_values("image_path").reset_index(drop=True).astype(str)
    digest = hashlib.sha256(pd.util.hash_pandas_object(ordered, index=False).to_numpy().tobytes())
    return digest.hexdigest()[:16]
