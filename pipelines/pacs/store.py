"""Filling a PACS from a folder of DICOM files, one STOW-RS request per study."""

from __future__ import annotations

from collections import defaultdict
from pathlib import Path

from pipelines.dicom import dicom_files, read_dicom


def push_folder(client, folder: Path) -> dict:
    """Store every DICOM file under `folder` in the PACS (`client`: a PacsClient), by study."""
    by_study: dict[str, list] = defaultdict(list)
    skipped = []
    for path in dicom_files(folder):
        dataset = read_dicom(path)
        uid = str(dataset.get("StudyInstanceUID", "") or "")
        if not uid or "SOPInstanceUID" not in dataset:  # a DICOMDIR, or an instance stripped of its UIDs
            skipped.append(path.name)
            continue
        by_study[uid].append(dataset)
    stored = sum(client.store(datasets) for datasets in by_study.values())
    return {"studies": len(by_study), "instances": stored, "skipped": skipped}
