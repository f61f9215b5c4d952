"""Reading a MURA v1.1 release as Stanford ships it: the four CSVs (no header) and the tree on disk."""

from __future__ import annotations

import csv
import os
from pathlib import Path

from mura_core.contracts import IMAGE_SUFFIXES, is_hidden
from mura_core.errors import DataError
from pipelines.data.layout import IMAGE_CSV, RELEASE_DIR, SPLITS, STUDY_CSV


def release_dir(data_root: Path) -> Path:
    """`<data_root>/MURA-v1.1`, or a DataError saying what a MURA tree looks like."""
    release = Path(data_root) / RELEASE_DIR
    if not release.is_dir():
        raise DataError(
            f"{data_root}: not a MURA tree (expected a folder {RELEASE_DIR}/ with train/, valid/ and the four "
            f"CSVs inside; run 'mura data synth' or 'mura data import SRC')"
        )
    for name in (*IMAGE_CSV.values(), *STUDY_CSV.values()):
        if not (release / name).is_file():
            raise DataError(
                f"{release / name}: missing; a MURA v1.1 release has {name} beside train/ and valid/"
            )
    return release


def _rows(path: Path, columns: int) -> list[list[str]]:
    rows = []
    with open(path, newline="", encoding="utf-8") as handle:
        for number, row in enumerate(csv.reader(handle), start=1):
            if not row or not "".join(row).strip():
                continue
            if len(row) != columns:
                raise DataError(
                    f"{path}: line {number} has {len(row)} columns, expected {columns} (no header): {','.join(row)[:120]}"
                )
            rows.append([cell.strip() for cell in row])
    return rows


def read_image_csv(path: Path) -> list[str]:
    """Lines of `<split>_image_paths.csv`: one release-relative image path each, in file order."""
    return [row[0] for row in _rows(path, 1)]


def read_study_csv(path: Path) -> list[tuple[str, int]]:
    """Lines of `<split>_labeled_studies.csv`: (study path ending in '/', label 0/1)."""
    studies = []
    for study_path, label in _rows(path, 2):
        if label not in ("0", "1"):
            raise DataError(f"{path}: label '{label}' for {study_path} is not 0 or 1")
        studies.append((study_path if study_path.endswith("/") else study_path + "/", int(label)))
    return studies


def scan_images(data_root: Path) -> list[str]:
    """Image files on disk, relative to `data_root` (hidden files such as `._x.png` skipped), sorted."""
    found: list[str] = []
    for split in SPLITS:
        top = Path(data_root) / RELEASE_DIR / split
        for folder, dirnames, filenames in os.walk(top):
            dirnames[:] = [name for name in dirnames if not is_hidden(name)]
            relative = Path(folder).relative_to(data_root).as_posix()
            found.extend(
                f"{relative}/{name}"
                for name in filenames
                if not is_hidden(name) and name.lower().endswith(IMAGE_SUFFIXES)
            )
    return sorted(found)
