"""The data validation gate (Great Expectations): image profiling, the manifest suite, the report.

Public calls: validate(manifest, data_root, ...), validate_manifest_file(path, data_root, ...) and
validate_data_dir(data_root, ...). They are loaded on first use so that worker processes importing
pipelines.validation.image_checks do not pay for pandas and GX.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from mura_core.doors import open_door

if TYPE_CHECKING:
    from pipelines.validation.project import default_project_dir as default_project_dir
    from pipelines.validation.runner import validate as validate
    from pipelines.validation.runner import validate_data_dir as validate_data_dir
    from pipelines.validation.runner import validate_manifest_file as validate_manifest_file

# The front door: what other rooms may use, by the module of the room that defines it (loaded on
# first use, so importing the room stays cheap).
__all__, __getattr__ = open_door(
    __name__,
    {
        "default_project_dir": "project",
        "validate": "runner",
        "validate_data_dir": "runner",
        "validate_manifest_file": "runner",
    },
)
