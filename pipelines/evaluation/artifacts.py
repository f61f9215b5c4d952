"""What an evaluation reads from a training run: its model, class map, operating point and rows."""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd

from mura_core.artifacts import fetch_once
from mura_core.contracts import CLASS_MAP_FILE, MODEL_ARTIFACT_DIR, MODEL_FILE
from mura_core.errors import ConfigError, DataError

OPERATING_POINT_FILE = "operating_point.json"  # beside model.keras: what export bakes into the graph


def download_model(run_id: str, folder: Path) -> tuple[Path, dict, dict | None]:
    """model/model.keras of the run, its class map and its stored operating point (None: not fitted).
    The model and class map come down once per process (mura_core.artifacts); the operating point,
    which an evaluation may write after training, is read afresh into `folder`."""
    from mlflow.exceptions import MlflowException
    from mlflow.tracking import MlflowClient

    try:
        model = fetch_once(run_id, f"{MODEL_ARTIFACT_DIR}/{MODEL_FILE}")
        class_map = json.loads(
            fetch_once(run_id, f"{MODEL_ARTIFACT_DIR}/{CLASS_MAP_FILE}").read_text("utf-8")
        )
        listed = {
            Path(entry.path).name for entry in MlflowClient().list_artifacts(run_id, MODEL_ARTIFACT_DIR)
        }
    except (MlflowException, OSError) as error:
        raise ConfigError(
            f"run {run_id} has no model/ artifacts ({error}); train it with `mura train` first"
        ) from None
    point = None
    if OPERATING_POINT_FILE in listed:
        import mlflow

        stored = mlflow.artifacts.download_artifacts(
            run_id=run_id, artifact_path=f"{MODEL_ARTIFACT_DIR}/{OPERATING_POINT_FILE}", dst_path=str(folder)
        )
        point = json.loads(Path(stored).read_text(encoding="utf-8"))
    return model, class_map, point


def run_manifest(run_id: str, manifest=None) -> pd.DataFrame:
    """`manifest` (a frame or parquet path) when given, else the rows the run was trained on (downloaded
    once per process)."""
    if manifest is not None:
        from pipelines.training import load_manifest

        return load_manifest(manifest)
    from mlflow.exceptions import MlflowException

    try:
        path = fetch_once(run_id, "data/manifest.parquet")
    except (MlflowException, OSError):
        raise DataError(
            f"run {run_id} holds no data/manifest.parquet; pass the manifest explicitly"
        ) from None
    return pd.read_parquet(path)


def split_rows(frame: pd.DataFrame, class_map: dict, split: str = "valid") -> pd.DataFrame:
    """The usable rows of one split for the model's task; DataError when there are none."""
    from mura_core.contracts import parse_task
    from pipelines.training import select_rows, usable_rows

    task = parse_task(class_map["task"])
    rows = usable_rows(select_rows(task, frame[frame["split"] == split]))
    if rows.empty:
        raise DataError(
            f"the manifest has no usable {split!r} rows for task {task.name}; nothing to evaluate on"
        )
    return rows.reset_index(drop=True)
