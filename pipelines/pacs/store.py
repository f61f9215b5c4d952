"""Filling a PACS from a folder of DICOM files, one STOW-RS request per study."""

from __future__ import annotations

from collections import defaultdict
from pathlib import Path

from mura_core.errors import DataError
from pipelines.dicom import DicomImageError, dicom_files, read_dicom
from pipelines.pacs.client import PacsRefusal


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
        try:
            dataset = read_dicom(path)
        except DicomImageError:
            skipped.append(str(path.relative_to(folder)) if path != folder else path.name)
            continue
        uid = str(dataset.get("StudyInstanceUID", "") or "")
        if not uid or "SOPInstanceUID" not in dataset:  # a DICOMDIR, or an instance stripped of its UIDs
            skipped.append(str(path.relative_to(folder)) if path != folder else path.name)
            continue
        by_study[uid].append(dataset)
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
