"""MLflow tracking of training runs: experiment, lineage tags, per-epoch metrics, model and plots."""

from __future__ import annotations

import importlib.metadata
import json
import logging
import platform
import tempfile
from pathlib import Path

import keras

from mura_core.contracts import CLASS_MAP_FILE, EXPERIMENT, MODEL_ARTIFACT_DIR, MODEL_FILE
from mura_core.settings import get_settings

LOGGER = logging.getLogger(__name__)

UNKNOWN = "unknown"
PACKAGES = ("keras", "tensorflow", "mlflow", "numpy", "pandas", "scikit-learn", "keras-tuner", "pillow")
# Keras history keys -> MLflow metric prefixes ("val_" is the holdout split).
_PREFIXES = (("val_", "holdout."), ("", "train."))


def configure_mlflow() -> str:
    """Point MLflow at the configured store and return the id of experiment `mura` (created if needed)."""
    import mlflow

    uri = get_settings().mlflow_tracking_uri
    if uri.startswith("sqlite:///"):
        Path(uri.removeprefix("sqlite:///")).parent.mkdir(parents=True, exist_ok=True)
    mlflow.set_tracking_uri(uri)
    experiment = mlflow.get_experiment_by_name(EXPERIMENT)
    if experiment is not None:
        return experiment.experiment_id
    artifact_location = None
    if uri.startswith("sqlite:///"):
        # Without this MLflow puts artifacts under the current directory of whoever created the experiment.
        artifact_location = (Path(uri.removeprefix("sqlite:///")).parent / "artifacts").as_uri()
    return mlflow.create_experiment(EXPERIMENT, artifact_location=artifact_location)


def package_versions() -> dict[str, str]:
    """Installed versions of the packages that shape a model (logged with every run)."""
    versions = {"python": platform.python_version(), "keras_backend": keras.backend.backend()}
    for name in PACKAGES:
        try:
            versions[name] = importlib.metadata.version(name)
        except importlib.metadata.PackageNotFoundError:
            versions[name] = "absent"
    return versions


def metric_name(key: str) -> str:
    """`val_loss` -> `holdout.loss`, `auc` -> `train.auc`, `learning_rate` stays."""
    if key in ("learning_rate", "lr"):
        return "learning_rate"
    for prefix, replacement in _PREFIXES:
        if key.startswith(prefix):
            return replacement + key.removeprefix(prefix)
    return key


class EpochLogger(keras.callbacks.Callback):
    """Logs every epoch's metrics to the run with a global epoch step (phases continue the count)."""

    def __init__(self, run_id: str, first_step: int):
        super().__init__()
        self.run_id = run_id
        self.first_step = first_step

    def on_epoch_end(self, epoch, logs=None):
        """Send this epoch's losses and metrics to MLflow."""
        from mlflow.tracking import MlflowClient

        metrics = {metric_name(key): float(value) for key, value in (logs or {}).items()}
        client = MlflowClient()
        for key, value in metrics.items():
            client.log_metric(self.run_id, key, value, step=self.first_step + epoch)


def log_model(run_id: str, model: keras.Model, class_map: dict) -> None:
    """Store `model/model.keras` and `model/class_map.json` on the run (the serving contract)."""
    from mlflow.tracking import MlflowClient

    client = MlflowClient()
    with tempfile.TemporaryDirectory() as folder:
        model_dir = Path(folder) / MODEL_ARTIFACT_DIR
        model_dir.mkdir()
        model.save(model_dir / MODEL_FILE)
        (model_dir / CLASS_MAP_FILE).write_text(json.dumps(class_map, indent=2), encoding="utf-8")
        client.log_artifacts(run_id, str(model_dir), artifact_path=MODEL_ARTIFACT_DIR)


def log_json(run_id: str, data: dict, artifact_file: str) -> None:
    """Store a dict as a JSON artifact of the run."""
    from mlflow.tracking import MlflowClient

    MlflowClient().log_dict(run_id, data, artifact_file)


def log_learning_curves(run_id: str, subject: str) -> None:
    """Plot loss/AUC/accuracy on train and holdout and the learning rate per epoch from the run's metric
    history (complete even after a resume), with the epoch whose weights were kept marked."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from mlflow.tracking import MlflowClient

    client = MlflowClient()
    restored = client.get_run(run_id).data.metrics.get("train.restored_epoch")
    panels = [
        ("loss", ("train", "holdout")),
        ("auc", ("train", "holdout")),
        ("accuracy", ("train", "holdout")),
    ]
    figure, axes = plt.subplots(1, len(panels) + 1, figsize=(4 * (len(panels) + 1), 3.4))
    curves = [
        (axis, f"{split}.{name}", split)
        for axis, (name, splits) in zip(axes, panels, strict=False)
        for split in splits
    ]
    for axis, key, label in [*curves, (axes[-1], "learning_rate", "learning rate")]:
        history = sorted(client.get_metric_history(run_id, key), key=lambda m: m.step)
        if history:
            axis.plot([m.step + 1 for m in history], [m.value for m in history], marker="o", label=label)
    for axis, title in zip(axes, [name for name, _ in panels] + ["learning rate"], strict=True):
        axis.set_title(title)
        axis.set_xlabel("epoch")
        if restored is not None:
            axis.axvline(restored + 1, color="grey", linestyle="--", label=f"kept: epoch {int(restored) + 1}")
        if axis.get_lines():
            axis.legend(fontsize=7)
    axes[-1].set_yscale("log")
    figure.suptitle(f"Learning curves: {subject}")
    figure.tight_layout()
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "learning_curves.png"
        figure.savefig(path, dpi=100)
        client.log_artifact(run_id, str(path), artifact_path="plots")
    plt.close(figure)
