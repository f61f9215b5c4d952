"""Data steps several flows share: pull the DVC release, build and store its manifest, the GX gate;
and `mura train`'s manifest of a local folder."""

from __future__ import annotations

import logging
from pathlib import Path

from mura_core.logs import configure_logging
from mura_core.settings import get_settings
from mura_core.stages import DataVersion, Manifest, Validation

LOGGER = logging.getLogger(__name__)
__all__ = ["build_manifest", "local_manifest", "pull_data", "validate_data"]


def pull_data(data_rev: str | None = None) -> DataVersion:
    """DVC pull of `data/` (at git revision `data_rev` of data.dvc when given); the data version."""
    from pipelines.data import dvc

    configure_logging()
    return dvc.pull(rev=data_rev or None)


def build_manifest(data_version: DataVersion, data_root: Path | None = None) -> Manifest:
    """Build and store the manifest of the data under `data_root` (default: the settings' data dir)."""
    from pipelines.data import build_manifest as build
    from pipelines.data import write_manifest

    configure_logging()
    settings = get_settings()
    root = Path(data_root) if data_root is not None else settings.data_dir
    result = build(root)
    name = data_version.dvc_md5.replace(".dir", "")
    path = write_manifest(result.frame, settings.mura_home / "manifests" / f"{name}.parquet")
    return Manifest(
        path=str(path),
        data_root=str(root),
        rows=len(result.frame),
        problems=result.problem_counts(),
        data_version=data_version,
    )


def validate_data(manifest: Manifest) -> Validation:
    """The GX gate on the manifest: raises DataValidationError (the summary) when the data is bad."""
    from pipelines.validation import validate_manifest_file

    configure_logging()
    version = manifest.data_version
    report = validate_manifest_file(
        Path(manifest.path),
        Path(manifest.data_root),
        data_version=f"dvc-{version.dvc_md5.removesuffix('.dir')}" if version and version.dvc_md5 else None,
    )
    LOGGER.info("%s", report.summary)
    return report


def local_manifest(data_root: Path, manifest_path: Path | None = None) -> Manifest:
    """`mura train`'s manifest step: the manifest given, or one built from `data_root` and stored as the
    DAG stores its own (under MURA_HOME/manifests, named by its content). A local folder has no DVC
    version: training tags the data's own lineage."""
    from pipelines.data import build_manifest as build
    from pipelines.data import manifest_hash, read_manifest, write_manifest

    configure_logging()
    if manifest_path is not None:
        frame, problems, path = read_manifest(manifest_path), {}, Path(manifest_path)
    else:
        result = build(data_root)
        frame, problems = result.frame, result.problem_counts()
        path = write_manifest(
            frame, get_settings().mura_home / "manifests" / f"local-{manifest_hash(frame)}.parquet"
        )
    unversioned = DataVersion(dvc_md5="", rev="", data_rev="")
    return Manifest(str(path), str(data_root), len(frame), problems, unversioned)
