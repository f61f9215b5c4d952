"""Keras Tuner search over learning rate, dropout, fine-tune depth and augmentation strength.

Every trial is a nested MLflow run under one parent run; the best values are written back as a
preset (in $MURA_HOME/presets.yaml, which `resolve_config` reads next to params.yaml).
"""

from __future__ import annotations

import dataclasses
import tempfile
from pathlib import Path

import keras_tuner
import yaml

from mura_core.config import load_config
from mura_core.contracts import parse_task
from mura_core.settings import get_settings
from pipelines.data import code_state, manifest_hash
from pipelines.training import fit, tracking
from pipelines.training.presets import TUNED_PRESETS_FILE, TrainConfig
from pipelines.training.run import (
    as_config,
    devices,
    load_manifest,
    make_datasets,
    prepare_rows,
    scoped_model,
)
from pipelines.training.zoo import resolve_weights


def trial_config(config: TrainConfig, hp: keras_tuner.HyperParameters) -> TrainConfig:
    """The base config with this trial's values of the four tuned settings."""
    strength = hp.Float("augment_strength", 0.0, 1.5, step=0.25)
    return dataclasses.replace(
        config,
        learning_rate=hp.Float("learning_rate", 1e-4, 3e-3, sampling="log"),
        dropout=hp.Float("dropout", 0.0, 0.5, step=0.1),
        fine_tune_layers=hp.Choice("fine_tune_layers", [0, 20, 60, -1]),
        augment_strength=strength,
        augment=strength > 0,
    )


class MlflowTuner(keras_tuner.BayesianOptimization):
    """Bayesian search whose trials train through fit.run_phases and log as nested MLflow runs."""

    def __init__(
        self, config: TrainConfig, rows, root: Path, parent_run_id: str, experiment_id: str, **kwargs
    ):
        # Trials are ranked by what picks a run's best epoch (`select_by`), so the two never disagree.
        self.monitor, direction = fit.monitored(config, parse_task(config.task))
        self.holdout_metric = self.monitor.removeprefix("val_")  # its name in model.evaluate()
        super().__init__(hypermodel=None, objective=keras_tuner.Objective(self.monitor, direction), **kwargs)
        self.base_config, self.rows, self.root = config, rows, root
        self.parent_run_id, self.experiment_id = parent_run_id, experiment_id

    def run_trial(self, trial, *args, **kwargs):
        """Train one candidate; its score is the monitored holdout quantity of the epoch EarlyStopping
        restored."""
        from mlflow.tracking import MlflowClient

        config = trial_config(self.base_config, trial.hyperparameters)
        task = parse_task(config.task)
        client = MlflowClient()
        child = client.create_run(
            self.experiment_id,
            run_name=f"trial-{trial.trial_id}",
            tags={
                "mlflow.parentRunId": self.parent_run_id,
                "tune.trial": trial.trial_id,
                "train.arch": config.arch,
                "train.task": task.name,
            },
        )
        run_id = child.info.run_id
        for key, value in trial.hyperparameters.values.items():
            client.log_param(run_id, key, value)
        hardware = devices(config)  # the trial honours the precision policy and the replicas, as train() does
        train_data, holdout_data = make_datasets(config, self.rows, self.root, hardware.replicas)
        phases = fit.plan_phases(config, resolve_weights(config.arch, config.weights) is not None)
        with hardware.precision(), tempfile.TemporaryDirectory() as work_dir:
            model = scoped_model(config, task, hardware)
            fit.run_phases(
                model,
                task,
                config,
                phases,
                train_data,
                holdout_data,
                Path(work_dir),
                make_logger=lambda phase: tracking.EpochLogger(run_id, phase.first_step),
                scope=hardware.scope,
            )
        score = float(model.evaluate(holdout_data, verbose=0, return_dict=True)[self.holdout_metric])
        client.log_metric(run_id, f"tune.holdout_{self.holdout_metric}", score)
        client.set_terminated(run_id, "FINISHED")
        return {self.monitor: score}


def write_preset(name: str, config: TrainConfig) -> Path:
    """Store `config` as preset `name` in $MURA_HOME/presets.yaml (other tuned presets are kept)."""
    path = get_settings().mura_home / TUNED_PRESETS_FILE
    path.parent.mkdir(parents=True, exist_ok=True)
    presets = yaml.safe_load(path.read_text(encoding="utf-8")) if path.is_file() else {}
    values = config.to_dict()
    for key in ("preset", "arch"):
        values.pop(key, None)
    presets = presets or {}
    presets[name] = values
    path.write_text(yaml.safe_dump(presets, sort_keys=True), encoding="utf-8")
    return path


def _search(config: TrainConfig, rows, root: Path, parent_id: str, experiment_id: str, max_trials: int):
    """Run the trials in a scratch folder: (the tuner, its best trial, the config of that trial)."""
    with tempfile.TemporaryDirectory() as tuner_dir:
        tuner = MlflowTuner(
            config,
            rows,
            root,
            parent_id,
            experiment_id,
            max_trials=max_trials,
            seed=config.seed,
            directory=tuner_dir,
            project_name="mura",
            overwrite=True,
        )
        tuner.search()
        best_trial = tuner.oracle.get_best_trials(1)[0]
        return tuner, best_trial, trial_config(config, best_trial.hyperparameters)


def tune(
    config, manifest, data_root=None, *, max_trials: int | None = None, preset_name: str | None = None
) -> dict:
    """Search the four settings for config.arch; returns the best values, the preset name and the parent run."""
    from mlflow.tracking import MlflowClient

    config = as_config(config)
    config = config.for_arch(config.arch)
    settings = get_settings()
    root = Path(data_root) if data_root is not None else settings.data_dir
    rows = prepare_rows(config.task, load_manifest(manifest))
    resolve_weights(config.arch, config.weights)
    max_trials = max_trials or load_config().tuning.max_trials
    experiment_id = tracking.configure_mlflow()
    client = MlflowClient()
    parent = client.create_run(
        experiment_id,
        run_name=f"tune-{config.arch}-{config.task}",
        tags={
            "tune.parent": "true",
            "train.arch": config.arch,
            "train.task": config.task,
            "data.manifest_hash": manifest_hash(rows),
            **code_state(settings.repo_root),
        },
    )
    parent_id = parent.info.run_id
    try:
        tuner, best_trial, best = _search(config, rows, root, parent_id, experiment_id, max_trials)
    except BaseException:
        client.set_terminated(parent_id, "FAILED")
        raise
    name = preset_name or f"tuned_{config.arch}"
    path = write_preset(name, best)
    client.log_dict(parent_id, {name: best.to_dict()}, "tuning/best_preset.json")
    for key, value in best_trial.hyperparameters.values.items():
        client.log_param(parent_id, f"best.{key}", value)
    objective = tuner.holdout_metric
    client.log_metric(parent_id, f"tune.best_holdout_{objective}", float(best_trial.score))
    client.set_terminated(parent_id, "FINISHED")
    return {
        "run_id": parent_id,
        "best_trial": best_trial.trial_id,
        "objective": objective,
        "best_score": float(best_trial.score),
        "best": best_trial.hyperparameters.values,
        "preset": name,
        "preset_file": str(path),
        "trials": max_trials,
    }
