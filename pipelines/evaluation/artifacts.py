"""What an evaluation reads from a training run: its model, class map, operating point and rows."""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd

from mura_core.contracts import CLASS_MAP_FILE, MODEL_ARTIFACT_DIR, MODEL_FILE
from mura_core.errors import ConfigError, DataError

OPERATING_POINT_FILE = "operating_point.json"  # beside model.keras: what export bakes into the graph


def download_model(run_id: str, folder: Path) -> tuple[Path, dict, dict | None]:
    """model/model.keras of the run, its class map and its stored operating point (None: not fitted)."""
    import mlflow
    from mlflow.exceptions import MlflowException

    try:
        local = Path(
            mlflow.artifacts.download_artifacts(
                run_id=run_id, artifact_path=MODEL_ARTIFACT_DIR, dst_path=str(folder)
            )
        )
    except (MlflowException, OSError) as error:
        raise ConfigError(
            f"run {run_id} has no model/ artifacts ({error}); train it with `mura train` first"
        ) from None
    class_map = json.loads((local / CLASS_MAP_FILE).read_text(encoding="utf-8"))
    stored = local / OPERATING_POINT_FILE
    point = json.loads(stored.read_text(encoding="utf-8")) if stored.is_file() else None
    return local / MODEL_FILE, class_map, point


def run_manifest(run_id: str, manifest, folder: Path) -> pd.DataFrame:
    """`manifest` (a frame or parquet path) when given, else the rows the run was trained on."""
    if manifest is not None:
        from pipelines.training import load_manifest

        return load_manifest(manifest)
    import mlflow
    from mlflow.exceptions import MlflowException

    try:
        path = mlflow.artifacts.download_artifacts(
            run_id=run_id, artifact_path="data/manifest.parquet", dst_path=str(folder)
        )
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
