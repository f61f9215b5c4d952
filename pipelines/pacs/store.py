"""Filling a PACS from a folder of DICOM files, one STOW-RS request per study."""

from __future__ import annotations

from collections import defaultdict
from pathlib import Path

from mura_core.errors import DataError
from pipelines.dicom import DicomImageError, dicom_files, read_dicom
from pipelines.pacs.client import PacsRefusal


def _instance(path: Path):
    """The file's dataset when it is readable DICOM with a study and an instance UID, else None (not
    DICOM after all, a DICOMDIR, or an instance stripped of its UIDs)."""
    try:
        dataset = read_dicom(path)
    except DicomImageError:
        return None
    if not str(dataset.get("StudyInstanceUID", "") or "") or "SOPInstanceUID" not in dataset:
        return None
    return dataset


def push_folder(client, folder: Path) -> dict:
    """Store every DICOM file under `folder` in the PACS (`client`: a PacsClient), one request per
    study. A file that is not readable DICOM or has no UIDs is skipped, a study the PACS refuses is
    named with the reason, and the others are stored; a PACS that cannot be reached stops the push
    (what was stored stays: storing a study again replaces its instances)."""
    folder = Path(folder)
    if not folder.exists():
        raise DataError(f"{folder} does not exist: name a DICOM file or a folder holding DICOM files")
    by_study: dict[str, list] = defaultdict(list)
    skipped = []
    for path in dicom_files(folder):
        dataset = _instance(path)
        if dataset is None:
            skipped.append(path.name if path == folder else str(path.relative_to(folder)))
            continue
        by_study[str(dataset.StudyInstanceUID)].append(dataset)
    stored, refused = 0, {}
    for uid, datasets in by_study.items():
        try:
            stored += client.store(datasets)
        except PacsRefusal as error:
            refused[uid] = str(error)
    return {
        "studies": len(by_study) - len(refused),
        "instances": stored,
        "skipped": skipped,
        "refused": refused,
    }
