"""External validation: a site's own labelled DICOM studies, de-identified and versioned, and how a
registered model does on them (`mura external`, DAG mura_external_validation)."""

from __future__ import annotations

from typing import TYPE_CHECKING

from mura_core.doors import open_door

if TYPE_CHECKING:
    from pipelines.external.importer import import_site as import_site
    from pipelines.external.importer import import_summary_lines as import_summary_lines
    from pipelines.external.sites import site as site
    from pipelines.external.validate import gated_release as gated_release
    from pipelines.external.validate import validate_site as validate_site
    from pipelines.external.validate import validation_summary_lines as validation_summary_lines

# The front door: what other rooms may use, by the module of the room that defines it (loaded on
# first use, so importing the room stays cheap).
__all__, __getattr__ = open_door(
    __name__,
    {
        "gated_release": "validate",
        "import_site": "importer",
        "import_summary_lines": "importer",
        "site": "sites",
        "validate_site": "validate",
        "validation_summary_lines": "validate",
    },
)
