"""Run the data gate: image checks, derived columns, the GX checkpoint, Data Docs, the report."""

from __future__ import annotations

import time
from pathlib import Path

import pandas as pd

from mura_core.config import load_config
from mura_core.errors import ConfigError, DataValidationError
from mura_core.stages import Validation
from pipelines.validation.frame import failure_notes, prepare_frame
from pipelines.validation.report import build_report
from pipelines.validation.studies import study_frame

PARAM_KEYS = ("examples", "row_count", "abnormal_ratio", "image")


def gate_params(params: dict | None = None) -> dict:
    """The `validation` section of params.yaml (or `params`), checked for the keys the suite needs."""
    params = load_config().validation if params is None else params
    missing = [key for key in PARAM_KEYS if key not in (params or {})]
    if missing:
        raise ConfigError(
            f"params.yaml 'validation' section lacks {', '.join(missing)}; see the defaults in the repo"
        )
    return params


def validate(
    manifest: pd.DataFrame,
    data_root: Path,
    *,
    project_dir: Path | None = None,
    params: dict | None = None,
    workers: int | None = None,
    raise_on_failure: bool = True,
    data_version: str | None = None,
) -> Validation:
    """Validate a manifest against the gate; return the report, raise DataValidationError on failure.

    `data_root` is the folder holding MURA-v1.1/ (image paths are relative to it); `project_dir` is the
    GX project (default: the runtime copy `$MURA_HOME/gx` of the committed template), whose
    uncommitted/ receives the Data Docs. `data_version` names the data in the Data Docs (the run
    name; default: the manifest's hash).
    """
    from pipelines.data import manifest_hash
    from pipelines.validation.docs_assets import localize
    from pipelines.validation.project import default_project_dir, docs_index, ensure_gate

    params = gate_params(params)
    workers = params.get("workers") if workers is None else workers
    started = time.perf_counter()
    frame = prepare_frame(manifest, Path(data_root), params, workers)
    prepared = time.perf_counter()
    studies = study_frame(frame, Path(data_root))
    context, checkpoints = ensure_gate(Path(project_dir) if project_dir else default_project_dir(), params)
    from great_expectations.core.run_identifier import RunIdentifier  # after the column checks: GX is slow

    run_name = data_version or f"manifest-{manifest_hash(manifest)[:12]}"
    results = [
        checkpoints["images"].run(
            batch_parameters={"dataframe": frame}, run_id=RunIdentifier(run_name=run_name)
        ),
        checkpoints["studies"].run(
            batch_parameters={"dataframe": studies}, run_id=RunIdentifier(run_name=run_name)
        ),
    ]
    docs = docs_index(context)
    if docs and docs.startswith("file://"):
        localize(Path(docs.removeprefix("file://")).parent)
    finished = time.perf_counter()
    timings = {
        "image_checks": prepared - started,
        "expectations": finished - prepared,
        "total": finished - started,
    }
    counts = {"images": len(frame), "studies": len(studies)}
    notes = failure_notes(frame)
    report = build_report(results, counts, int(params["examples"]), notes, docs, timings, run_name)
    if raise_on_failure and not report.success:
        raise DataValidationError(report.summary, report.to_xcom())
    return report


def validate_manifest_file(manifest_path: Path, data_root: Path, **options) -> Validation:
    """The Airflow task's single call: read a manifest parquet, validate it, raise on failure."""
    from pipelines.data import read_manifest

    return validate(read_manifest(Path(manifest_path)), Path(data_root), **options)


def validate_data_dir(data_root: Path, **options) -> Validation:
    """Build the manifest of `data_root` (holdout settings of params.yaml) and validate it."""
    from pipelines.data import build_manifest

    manifest = build_manifest(Path(data_root))
    return validate(manifest.frame, Path(data_root), **options)
