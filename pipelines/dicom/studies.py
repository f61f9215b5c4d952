"""DICOM files on disk as studies to predict: grouped by StudyInstanceUID, each image through the one
pixel path, the study type from BodyPartExamined. Nothing of the patient leaves this module: a study
is known by its StudyInstanceUID only."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

from pipelines.dicom.pixels import DicomImageError, model_image_bytes, read_dicom, study_type

if TYPE_CHECKING:
    from pydicom.dataset import Dataset

DICOM_MAGIC_OFFSET = 128  # "DICM" follows the 128-byte preamble of a DICOM file (PS3.10)


@dataclass
class DicomStudy:
    """One study's images, ready for the served model."""

    study_uid: str
    study_type: str
    images: list[bytes] = field(default_factory=list)  # encoded by pixels.model_image_bytes
    names: list[str] = field(default_factory=list)  # the files they came from


def is_dicom_file(path: Path) -> bool:
    """A `.dcm` file, or any file with DICOM's "DICM" marker after the preamble."""
    suffix = path.suffix.lower()
    if suffix in (".dcm", ".png", ".jpg", ".jpeg"):  # a study folder of PNGs: no file opened
        return suffix == ".dcm"
    try:
        with path.open("rb") as stream:
            stream.seek(DICOM_MAGIC_OFFSET)
            return stream.read(4) == b"DICM"
    except OSError:
        return False


def dicom_files(root: Path) -> list[Path]:
    """`root` itself when it is a DICOM file; else the DICOM files at or below the folder (hidden ones
    skipped), in name order; [] when there are none (the caller then reads PNG/JPEG)."""
    root = Path(root)
    if root.is_file():
        return [root] if is_dicom_file(root) else []
    if not root.is_dir():
        return []
    return sorted(
        path
        for path in root.rglob("*")
        if path.is_file()
        and not any(part.startswith(".") for part in path.relative_to(root).parts)
        and is_dicom_file(path)
    )


def load_studies(paths: list[Path]) -> tuple[list[DicomStudy], list[dict[str, str]]]:
    """(the studies in these files the model can be asked about, the refused ones with their reason)."""
    readable, refused = [], []
    for path in paths:
        try:
            readable.append((str(path), read_dicom(path)))
        except DicomImageError as error:
            refused.append({"study": str(path), "reason": str(error)})
    studies, refused_studies = group_studies(readable)
    return studies, refused + refused_studies


def group_studies(items: Sequence[tuple[str, Dataset]]) -> tuple[list[DicomStudy], list[dict[str, str]]]:
    """(name, Dataset) pairs -> studies by StudyInstanceUID, each image through the one pixel path. An
    unreadable image, or a body part the model does not know, refuses its whole study."""
    studies: dict[str, DicomStudy] = {}
    refused: dict[str, str] = {}
    for name, dataset in items:
        label = Path(name).name
        uid = str(dataset.get("StudyInstanceUID", "") or f"(no StudyInstanceUID) {name}")  # never merged
        if uid in refused:
            continue
        try:
            kind = study_type(dataset, label)
            study = studies.setdefault(uid, DicomStudy(uid, kind))
            if kind != study.study_type:
                raise DicomImageError(
                    f"{label}: BodyPartExamined says {kind}, the study's other images {study.study_type}"
                )
            study.images.append(model_image_bytes(dataset, label))
            study.names.append(name)
        except DicomImageError as error:
            refused[uid] = str(error)
            studies.pop(uid, None)
    answers = [studies[uid] for uid in sorted(studies)]
    return answers, [{"study": study, "reason": reason} for study, reason in sorted(refused.items())]
