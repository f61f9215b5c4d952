"""MURA data layer: the release layout, the manifest, the synthetic generator, import and DVC."""

from __future__ import annotations

from typing import TYPE_CHECKING

from mura_core.doors import open_door

if TYPE_CHECKING:
    from pipelines.data import dvc as dvc
    from pipelines.data.diff import diff_revisions as diff_revisions
    from pipelines.data.dvc import pointer_at as pointer_at
    from pipelines.data.dvc import pointer_file_out as pointer_file_out
    from pipelines.data.dvc import pointer_md5 as pointer_md5
    from pipelines.data.dvc import version_folder as version_folder
    from pipelines.data.importer import import_release as import_release
    from pipelines.data.layout import IMAGE_CSV as IMAGE_CSV
    from pipelines.data.layout import IMAGE_PATH_PATTERN as IMAGE_PATH_PATTERN
    from pipelines.data.layout import RELEASE_DIR as RELEASE_DIR
    from pipelines.data.layout import SPLITS as SPLITS
    from pipelines.data.layout import STUDY_CSV as STUDY_CSV
    from pipelines.data.layout import STUDY_PATH_PATTERN as STUDY_PATH_PATTERN
    from pipelines.data.layout import parse_image_path as parse_image_path
    from pipelines.data.manifest import build_manifest as build_manifest
    from pipelines.data.manifest import manifest_hash as manifest_hash
    from pipelines.data.manifest import read_manifest as read_manifest
    from pipelines.data.manifest import write_manifest as write_manifest
    from pipelines.data.release import read_study_csv as read_study_csv
    from pipelines.data.release import release_dir as release_dir
    from pipelines.data.stats import barplot_per_bodypart as barplot_per_bodypart
    from pipelines.data.stats import summary_table as summary_table
    from pipelines.data.synth import BOXES_FILE as BOXES_FILE
    from pipelines.data.synth import generate_synthetic as generate_synthetic
    from pipelines.data.synth_faults import FAULTS as FAULTS
    from pipelines.data.synth_shifts import SHIFTS as SHIFTS
    from pipelines.data.versioning import code_state as code_state
    from pipelines.data.versioning import data_lineage as data_lineage
    from pipelines.data.versioning import folder_md5 as folder_md5

# The front door: what other rooms may use, by the module of the room that defines it (loaded on
# first use, so importing the room stays cheap).
__all__, __getattr__ = open_door(
    __name__,
    {
        "BOXES_FILE": "synth",
        "FAULTS": "synth_faults",
        "IMAGE_CSV": "layout",
        "IMAGE_PATH_PATTERN": "layout",
        "RELEASE_DIR": "layout",
        "SHIFTS": "synth_shifts",
        "SPLITS": "layout",
        "STUDY_CSV": "layout",
        "STUDY_PATH_PATTERN": "layout",
        "barplot_per_bodypart": "stats",
        "build_manifest": "manifest",
        "code_state": "versioning",
        "data_lineage": "versioning",
        "diff_revisions": "diff",
        "dvc": None,
        "folder_md5": "versioning",
        "generate_synthetic": "synth",
        "import_release": "importer",
        "manifest_hash": "manifest",
        "parse_image_path": "layout",
        "pointer_at": "dvc",
        "pointer_file_out": "dvc",
        "pointer_md5": "dvc",
        "read_manifest": "manifest",
        "read_study_csv": "release",
        "release_dir": "release",
        "summary_table": "stats",
        "version_folder": "dvc",
        "write_manifest": "manifest",
    },
)
