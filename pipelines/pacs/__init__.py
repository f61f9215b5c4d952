"""The research PACS: Orthanc as the embedded stack runs it, and a DICOMweb client of any PACS."""

from __future__ import annotations

from typing import TYPE_CHECKING

from mura_core.doors import open_door

if TYPE_CHECKING:
    from pipelines.pacs.client import PacsClient as PacsClient
    from pipelines.pacs.client import PacsNotFound as PacsNotFound
    from pipelines.pacs.inference import answer_study as answer_study
    from pipelines.pacs.inference import is_radiograph as is_radiograph
    from pipelines.pacs.inference import new_studies as new_studies
    from pipelines.pacs.inference import read_refusals as read_refusals
    from pipelines.pacs.inference import record_refusals as record_refusals
    from pipelines.pacs.inference import served_version as served_version
    from pipelines.pacs.orthanc import command as command
    from pipelines.pacs.orthanc import credentials_file as credentials_file
    from pipelines.pacs.orthanc import orthanc_binary as orthanc_binary
    from pipelines.pacs.orthanc import write_config as write_config
    from pipelines.pacs.store import push_folder as push_folder

# The front door: what other rooms may use, by the module of the room that defines it (loaded on
# first use, so importing the room stays cheap).
__all__, __getattr__ = open_door(
    __name__,
    {
        "PacsClient": "client",
        "PacsNotFound": "client",
        "answer_study": "inference",
        "command": "orthanc",
        "credentials_file": "orthanc",
        "is_radiograph": "inference",
        "new_studies": "inference",
        "orthanc_binary": "orthanc",
        "push_folder": "store",
        "read_refusals": "inference",
        "record_refusals": "inference",
        "served_version": "inference",
        "write_config": "orthanc",
    },
)
