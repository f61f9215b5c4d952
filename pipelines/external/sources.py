"""Where a site's studies come from, and what it says about them: the labels file (StudyInstanceUID ->
0/1), a folder of DICOM files, or the PACS over DICOMweb. Each source yields one study at a time (its
radiographs as pydicom Datasets), so a site of any size is read with one study in memory."""

from __future__ import annotations

import csv
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from mura_core.errors import ConfigError, DataError

REQUIRED_COLUMNS = ("StudyInstanceUID", "label")
QUERY_KEYS = {"date": "date", "body-part": "body_part"}


@dataclass(frozen=True)
class Label:
    """One row of the labels file: its line (how a refusal names it), the label and, when the site
    gave one, the study type it expects."""

    line: int
    label: str  # "0", "1", or what the site wrote (refused with the reason)
    study_type: str = ""


def read_labels(path: Path) -> dict[str, Label]:
    """The labels file (CSV with a header: StudyInstanceUID, label, optionally study_type)."""
    path = Path(path)
    if not path.is_file():
        raise DataError(f"{path}: labels file not found; give a CSV with columns StudyInstanceUID,label")
    with path.open(newline="", encoding="utf-8-sig") as stream:
        reader = csv.DictReader(stream)
        missing = [column for column in REQUIRED_COLUMNS if column not in (reader.fieldnames or [])]
        if missing:
            raise DataError(
                f"{path}: no column {', '.join(missing)} in the header {reader.fieldnames}; a labels file "
                "has a header line with StudyInstanceUID and label (0 normal, 1 abnormal), optionally study_type"
            )
        labels: dict[str, Label] = {}
        for line, row in enumerate(reader, start=2):
            uid = (row.get("StudyInstanceUID") or "").strip()
            if not uid:
                continue
            found = Label(line, (row.get("label") or "").strip(), (row.get("study_type") or "").strip())
            if uid in labels and labels[uid].label != found.label:
                raise DataError(
                    f"{path}: lines {labels[uid].line} and {line} give one study two labels; keep one"
                )
            labels.setdefault(uid, found)
    if not labels:
        raise DataError(f"{path}: no labelled study (no row with a StudyInstanceUID)")
    return labels


def parse_query(text: str | None) -> dict[str, str]:
    """`date=20260101-20261231,body-part=WRIST` -> filters of PacsClient.studies; empty or `labelled`:
    no query (the labels file's studies are retrieved one by one)."""
    if not text or text.strip() == "labelled":
        return {}
    filters = {}
    for part in text.split(","):
        key, _, value = part.partition("=")
        if key.strip() not in QUERY_KEYS or not value.strip():
            raise ConfigError(
                f"--pacs {text!r}: write `labelled` (the labels file's studies) or filters "
                "date=YYYYMMDD[-YYYYMMDD],body-part=WRIST"
            )
        filters[QUERY_KEYS[key.strip()]] = value.strip()
    return filters


def folder_studies(folder: Path) -> tuple[dict[str, list[Path]], int]:
    """({StudyInstanceUID: its files}, files that are not readable DICOM), from the headers alone."""
    import pydicom
    from pydicom.errors import InvalidDicomError

    from pipelines.dicom import dicom_files

    folder = Path(folder)
    if not folder.is_dir():
        raise DataError(f"{folder}: no such folder of DICOM files")
    grouped: dict[str, list[Path]] = {}
    unreadable = 0
    for path in dicom_files(folder):
        try:
            header = pydicom.dcmread(path, stop_before_pixels=True)
        except (InvalidDicomError, EOFError, OSError, ValueError, KeyError):
            unreadable += 1
            continue
        uid = str(header.get("StudyInstanceUID", "") or "")
        if not uid:
            unreadable += 1
            continue
        grouped.setdefault(uid, []).append(path)
    return grouped, unreadable


def read_folder_study(paths: list[Path]) -> list:
    """The Datasets of one study's files (an unreadable file is left out: the study is then judged by
    what remains, and a radiograph missing makes no label wrong)."""
    from pipelines.dicom import DicomImageError, read_dicom

    datasets = []
    for path in sorted(paths):
        try:
            datasets.append(read_dicom(path))
        except DicomImageError:
            continue
    return datasets


def pacs_study_uids(client, query: dict[str, str], labels: dict[str, Label]) -> list[str]:
    """The studies to import: those the query finds in the PACS, or (no query) the labelled ones."""
    if not query:
        return sorted(labels)
    return sorted(study.study_uid for study in client.studies(**query))


def pacs_studies(client, uids: list[str]) -> Iterator[tuple[str, list | None]]:
    """(uid, its Datasets) for each study; None where the PACS does not hold it (any other PACS error
    stops the import: nothing is published from a half-read site)."""
    from pipelines.pacs import PacsNotFound

    for uid in uids:
        try:
            yield uid, client.retrieve_study(uid)
        except PacsNotFound:
            yield uid, None
