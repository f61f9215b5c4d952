"""`train()`: one tracked training run from a config and a manifest (the DAG task and `mura train` call it)."""

from __future__ import annotations

import contextlib
import hashlib
import json
import logging
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import keras
import pandas as pd

from mura_core.contracts import class_map, parse_task
from mura_core.errors import ConfigError, DataError
from mura_core.settings import get_settings
from mura_core.stages import TrainedRun
from pipelines.data import code_state, data_lineage, manifest_hash
from pipelines.training import fit, inputs, tracking
from pipelines.training.presets import TrainConfig, check_config, resolve_config
from pipelines.training.tasks import check_task_rows, select_rows
from pipelines.training.zoo import build_model, resolve_weights

LOGGER = logging.getLogger(__name__)


def as_config(config: TrainConfig | dict | None) -> TrainConfig:
    """A TrainConfig from a TrainConfig or a dict {preset, **overrides}."""
    if isinstance(config, TrainConfig):
        check_config(config)
        return config
    values = dict(config or {})
    return resolve_config(values.pop("preset", None), values)


def load_manifest(manifest: str | Path | pd.DataFrame) -> pd.DataFrame:
    """The manifest as a DataFrame from a frame or a parquet path; DataError when it cannot be read."""
    if isinstance(manifest, pd.DataFrame):
        return manifest
    path = Path(manifest)
    if not path.is_file():
        raise DataError(f"manifest {path} not found; build it with `mura data manifest`")
    return pd.read_parquet(path)


def prepare_rows(task_name: str, frame: pd.DataFrame) -> pd.DataFrame:
    """The usable rows of the task, checked: DataError when a split or class is missing."""
    missing = {"image_path", "split", "body_part", "label"} - set(frame.columns)
    if missing:
        raise DataError(
            f"the manifest lacks column(s) {sorted(missing)}; rebuild it with `mura data manifest`"
        )
    task = parse_task(task_name)
    rows = inputs.usable_rows(select_rows(task, frame)).reset_index(drop=True)
    check_task_rows(task, rows)
    return rows


@dataclass(frozen=True)
class Devices:
    """Where and how a run computes: float16 compute on GPUs, MirroredStrategy over several."""

    mixed: bool
    scope: Any  # context manager factory: variables created inside are mirrored
    replicas: int

    @contextlib.contextmanager
    def precision(self):
        """The mixed_float16 policy while building and fitting (when on), the previous one after."""
        previous = keras.config.dtype_policy()
        try:
            if self.mixed:
                keras.config.set_dtype_policy("mixed_float16")
            yield
        finally:
            keras.config.set_dtype_policy(previous)


def devices(config: TrainConfig) -> Devices:
    """The run's devices: mixed precision per `config.mixed_precision`, a strategy over every GPU."""
    gpus = []
    if keras.backend.backend() == "tensorflow":
        import tensorflow as tf

        gpus = tf.config.list_physical_devices("GPU")
    mixed = config.mixed_precision == "on" or (config.mixed_precision == "auto" and bool(gpus))
    if len(gpus) > 1:
        import tensorflow as tf

        strategy = tf.distribute.MirroredStrategy()
        return Devices(mixed, strategy.scope, strategy.num_replicas_in_sync)
    return Devices(mixed, contextlib.nullcontext, 1)


def make_datasets(config: TrainConfig, rows: pd.DataFrame, root: Path, replicas: int = 1):
    """(train, holdout) tf.data datasets of the checked rows, with the MURA per-part loss weights.

    `batch_size` is per replica (the paper's 8 per GPU): the global batch grows with the replicas,
    so each GPU keeps the batch the recipe was tuned for.
    """
    task = parse_task(config.task)
    train_rows = rows[rows["split"] == "train"]
    weights = inputs.part_class_weights(train_rows) if config.class_weighting else None
    common: dict[str, Any] = {
        "task": task,
        "image_size": config.image_size,
        "batch_size": config.batch_size * replicas,
        "weights": weights,
        "seed": config.seed,
        "cache": config.cache,
    }
    strength = config.augment_strength if config.augment else 0.0
    train_data = inputs.make_dataset(
        train_rows, root, training=True, augment_ops=config.augment_ops, augment_strength=strength, **common
    )
    holdout_data = inputs.make_dataset(rows[rows["split"] == "holdout"], root, **common)
    return train_data, holdout_data


def default_work_dir(config: TrainConfig, manifest_digest: str) -> Path:
    """Where an unfinished run keeps its state: same config + same data = same folder, so a rerun resumes."""
    key = hashlib.sha256(json.dumps([config.to_dict(), manifest_digest], sort_keys=True).encode()).hexdigest()
    return get_settings().mura_home / "training" / key[:16]


def _start_or_resume_run(client, experiment_id: str, work_dir: Path, config: TrainConfig, tags: dict) -> str:
    state = fit.read_state(work_dir)
    if state.get("run_id"):
        client.update_run(state["run_id"], status="RUNNING")
        LOGGER.info("resuming MLflow run %s from %s", state["run_id"], work_dir)
        return state["run_id"]
    from mlflow.entities import Param

    run = client.create_run(experiment_id, run_name=f"{config.arch}-{config.task}", tags=tags)
    params = [
        Param(key, json.dumps(value) if isinstance(value, list | dict) else str(value))
        for key, value in config.to_dict().items()
    ]
    client.log_batch(run.info.run_id, params=params)
    fit.write_state(work_dir, {"run_id": run.info.run_id, "phases_done": {}})
    return run.info.run_id


def _run_tags(
    config: TrainConfig, task, root: Path, manifest, digest: str, train_images: int, versions
) -> dict:
    """What a training run is tagged with: its data and code lineage, what it trains, the packages."""
    settings = get_settings()
    tags = {
        **data_lineage(root, settings.repo_root),
        **code_state(settings.repo_root),
        "data.manifest_hash": digest,
        "data.root": str(root.resolve()),
        "data.train_images": str(train_images),
        "train.arch": config.arch,
        "train.task": task.name,
        "train.preset": config.preset,
        "model_name": task.model_name,
        **{f"pkg.{name}": version for name, version in versions.items()},
    }
    if isinstance(manifest, str | Path):
        tags["data.manifest_path"] = str(Path(manifest).resolve())
    return tags


def _log_outputs(
    client, run_id: str, model, config: TrainConfig, task, rows, versions, phases, results, mixed
) -> None:
    """The trained model and its class map, the resolved config, the versions, the phases, the manifest
    and the learning curves, on the run."""
    tracking.log_model(run_id, model, class_map(task, config.arch, config.image_size))
    tracking.log_json(run_id, config.to_dict(), "config/resolved_config.json")
    tracking.log_json(run_id, versions, "environment/versions.json")
    tracking.log_json(
        run_id,
        {"phases": [phase.__dict__ for phase in phases], "results": results, "mixed_precision": mixed},
        "training/phases.json",
    )
    _log_manifest(client, run_id, rows)
    restored = results[phases[-1].name].get("restored_epoch") if results else None
    if restored is not None:
        client.log_metric(run_id, "train.restored_epoch", restored)
    tracking.log_learning_curves(run_id, f"{task.model_name}, run {run_id[:8]}")


def _one_architecture(config: TrainConfig | dict | None) -> TrainConfig:
    """The run's config (as_config); ConfigError when it names more than one architecture."""
    config = as_config(config)
    if len(config.architectures) != 1:
        raise ConfigError(
            f"train() fits one architecture, got {list(config.architectures)}; "
            "call it once per architecture (TrainConfig.for_arch)"
        )
    return config


def scoped_model(config: TrainConfig, task, hardware: Devices):
    """The untrained model of config.arch, its variables created in the devices' scope."""
    with hardware.scope():
        return build_model(
            config.arch,
            task,
            config.image_size,
            config.weights,
            config.dropout,
            config.train_batch_norm,
        )


def train(
    config: TrainConfig | dict | None,
    manifest: str | Path | pd.DataFrame,
    data_root: str | Path | None = None,
    *,
    work_dir: Path | None = None,
    extra_callbacks: tuple = (),
    extra_tags: dict[str, str] | None = None,
) -> TrainedRun:
    """Train one model (config.arch) on the manifest's train rows, tracked as an MLflow run in `mura`."""
    from mlflow.tracking import MlflowClient

    config = _one_architecture(config)
    task = parse_task(config.task)
    settings = get_settings()
    root = Path(data_root) if data_root is not None else settings.data_dir
    rows = prepare_rows(config.task, load_manifest(manifest))
    pretrained = resolve_weights(config.arch, config.weights) is not None  # weights errors before any work
    train_rows = rows[rows["split"] == "train"]
    hardware = devices(config)
    train_data, holdout_data = make_datasets(config, rows, root, hardware.replicas)

    digest = manifest_hash(rows)
    work_dir = Path(work_dir) if work_dir is not None else default_work_dir(config, digest)
    versions = tracking.package_versions()
    tags = _run_tags(config, task, root, manifest, digest, len(train_rows), versions) | (extra_tags or {})
    experiment_id = tracking.configure_mlflow()
    client = MlflowClient()
    run_id = _start_or_resume_run(client, experiment_id, work_dir, config, tags)
    try:
        with hardware.precision():
            keras.utils.set_random_seed(config.seed)
            model = scoped_model(config, task, hardware)
            phases = fit.plan_phases(config, pretrained)
            results = fit.run_phases(
                model,
                task,
                config,
                phases,
                train_data,
                holdout_data,
                work_dir,
                make_logger=lambda phase: tracking.EpochLogger(run_id, phase.first_step),
                extra_callbacks=extra_callbacks,
                scope=hardware.scope,
            )
            _log_outputs(client, run_id, model, config, task, rows, versions, phases, results, hardware.mixed)
    except BaseException:
        client.set_terminated(run_id, status="FAILED")
        raise
    client.set_terminated(run_id, status="FINISHED")
    shutil.rmtree(work_dir, ignore_errors=True)
    final = results[phases[-1].name] if results else {}
    metrics = {tracking.metric_name(key): value for key, value in final.items()}
    return TrainedRun(
        run_id=run_id, arch=config.arch, task=task.name, model_name=task.model_name, metrics=metrics
    )


def _log_manifest(client, run_id: str, rows: pd.DataFrame) -> None:
    """Keep the exact rows used with the run, so `evaluate_run` needs nothing else."""
    import tempfile

    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "manifest.parquet"
        rows.to_parquet(path, index=False)
        client.log_artifact(run_id, str(path), artifact_path="data")
