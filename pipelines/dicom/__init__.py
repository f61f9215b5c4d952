"""DICOM: the one pixel path from a radiograph to the served model's input, and synthetic studies."""

from __future__ import annotations

from typing import TYPE_CHECKING

from mura_core.doors import open_door

if TYPE_CHECKING:
    from pipelines.dicom.pixels import DicomImageError as DicomImageError
    from pipelines.dicom.pixels import limit_decode_memory as limit_decode_memory
    from pipelines.dicom.pixels import read_dicom as read_dicom
    from pipelines.dicom.studies import dicom_files as dicom_files
    from pipelines.dicom.studies import group_studies as group_studies
    from pipelines.dicom.studies import load_studies as load_studies
    from pipelines.dicom.synth import LABELS_FILE as LABELS_FILE
    from pipelines.dicom.synth import write_studies as write_studies

# The front door: what other rooms may use, by the module of the room that defines it (loaded on
# first use, so importing the room stays cheap).
__all__, __getattr__ = open_door(
    __name__,
    {
        "DicomImageError": "pixels",
        "LABELS_FILE": "synth",
        "dicom_files": "studies",
        "group_studies": "studies",
        "limit_decode_memory": "pixels",
        "load_studies": "studies",
        "read_dicom": "pixels",
        "write_studies": "synth",
    },
)
