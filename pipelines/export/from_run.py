"""Export the model of an MLflow training run and log the SavedModel under the run's `tf_serving/`."""

from __future__ import annotations

import json
import shutil
import tempfile
from pathlib import Path

from mura_core.contracts import CLASS_MAP_ARTIFACT, MODEL_ARTIFACT, SAVED_MODEL_ARTIFACT
from mura_core.errors import ExportError
from mura_core.stages import Export
from pipelines.export.saved_model import export_saved_model


def export_run(run_id: str, out_dir: Path | None = None, sample_images: list[bytes] | None = None) -> Export:
    """Download a training run's model, export it and log the SavedModel under the run's `tf_serving/`."""
    import mlflow

    from mura_core.settings import get_settings

    mlflow.set_tracking_uri(get_settings().mlflow_tracking_uri)
    client = mlflow.MlflowClient()
    with tempfile.TemporaryDirectory(prefix="mura-export-") as scratch:
        try:
            model_file = client.download_artifacts(run_id, MODEL_ARTIFACT, scratch)
            map_file = client.download_artifacts(run_id, CLASS_MAP_ARTIFACT, scratch)
        except mlflow.exceptions.MlflowException as error:
            raise ExportError(
                f"run {run_id}: cannot download model/model.keras and model/class_map.json ({error}); "
                "is it a finished training run of this tracking server?"
            ) from error
        class_map = json.loads(Path(map_file).read_text())
        class_map["operating_point"] = _operating_point(client, run_id, scratch)
        from pipelines.training import load_model

        model = load_model(model_file, compile=False)
        target = Path(out_dir) if out_dir else Path(scratch) / SAVED_MODEL_ARTIFACT
        export_saved_model(model, class_map, target, sample_images or [])
        client.log_artifacts(run_id, str(target), artifact_path=SAVED_MODEL_ARTIFACT)
        if out_dir is None:
            shutil.rmtree(target, ignore_errors=True)
    return Export(run_id, class_map["model_name"], SAVED_MODEL_ARTIFACT, str(out_dir) if out_dir else None)


def _operating_point(client, run_id: str, scratch: str) -> dict | None:
    """The operating point fitted on holdout by `evaluate_run` (None: the run was not evaluated yet,
    so the served model keeps params.yaml's fixed threshold and uncalibrated probabilities)."""
    import mlflow

    from pipelines.evaluation import OPERATING_POINT_FILE

    try:
        path = client.download_artifacts(run_id, f"model/{OPERATING_POINT_FILE}", scratch)
    except (mlflow.exceptions.MlflowException, OSError):
        return None
    return json.loads(Path(path).read_text())
