"""Fitting: compile, the two phases (head, then fine-tuning), callbacks and resuming a killed run.

State of an unfinished run lives in its work folder: `state.json` (the MLflow run id and the phases
already finished), one BackupAndRestore folder per phase and the weights at the end of each phase. A
rerun with the same work folder picks up where the killed one stopped.
"""

from __future__ import annotations

import contextlib
import json
import logging
from dataclasses import dataclass
from pathlib import Path

import keras

from pipelines.contracts import Task
from pipelines.training.presets import TrainConfig
from pipelines.training.zoo import set_backbone_trainable

LOGGER = logging.getLogger(__name__)
STATE_FILE = "state.json"


@dataclass(frozen=True)
class Phase:
    """One call of model.fit: which backbone layers train, for how long, at which learning rate."""

    name: str
    epochs: int
    learning_rate: float
    trainable_layers: int  # backbone layers unfrozen from the top; -1 = all, 0 = frozen
    first_step: int  # global epoch index of this phase's first epoch (for metric steps)


def plan_phases(config: TrainConfig, pretrained: bool) -> list[Phase]:
    """The MURA recipe: head on a frozen pretrained backbone, then fine-tune its top layers.

    A backbone without pretrained weights has nothing worth freezing, so it trains whole in one phase.
    """
    if not pretrained:
        return [Phase("full", config.epochs + config.fine_tune_epochs, config.learning_rate, -1, 0)]
    phases = [Phase("head", config.epochs, config.learning_rate, 0, 0)]
    if config.fine_tune_epochs > 0 and config.fine_tune_layers != 0:
        fine_tune_rate = config.fine_tune_learning_rate or config.learning_rate / 10
        phases.append(
            Phase(
                "fine_tune", config.fine_tune_epochs, fine_tune_rate, config.fine_tune_layers, config.epochs
            )
        )
    return phases


def compile_model(model: keras.Model, task: Task, learning_rate: float) -> None:
    """Adam with the task's loss and metrics (AUC/accuracy for binary, accuracy for 14cls)."""
    if task.is_multiclass:
        loss = keras.losses.SparseCategoricalCrossentropy()
        metrics = [keras.metrics.SparseCategoricalAccuracy(name="accuracy")]
    else:
        loss = keras.losses.BinaryCrossentropy()
        metrics = [keras.metrics.AUC(name="auc"), keras.metrics.BinaryAccuracy(name="accuracy")]
    model.compile(
        optimizer=keras.optimizers.Adam(learning_rate), loss=loss, metrics=metrics, weighted_metrics=[]
    )


def read_state(work_dir: Path) -> dict:
    """The saved progress of a run in `work_dir` ({} for a fresh one)."""
    path = work_dir / STATE_FILE
    return json.loads(path.read_text(encoding="utf-8")) if path.is_file() else {}


def write_state(work_dir: Path, state: dict) -> None:
    """Save progress atomically (a kill mid-write leaves the previous state)."""
    work_dir.mkdir(parents=True, exist_ok=True)
    temporary = work_dir / (STATE_FILE + ".tmp")
    temporary.write_text(json.dumps(state, indent=2), encoding="utf-8")
    temporary.replace(work_dir / STATE_FILE)


def phase_callbacks(config: TrainConfig, phase: Phase, work_dir: Path) -> list[keras.callbacks.Callback]:
    """BackupAndRestore first (so a later callback that stops the run finds the epoch saved), then the rest."""
    return [
        keras.callbacks.BackupAndRestore(str(work_dir / f"backup_{phase.name}")),
        keras.callbacks.EarlyStopping(
            monitor="val_loss", patience=config.early_stopping_patience, restore_best_weights=True, verbose=1
        ),
        keras.callbacks.ReduceLROnPlateau(
            monitor="val_loss",
            factor=config.reduce_lr_factor,
            patience=config.reduce_lr_patience,
            min_lr=1e-7,
            verbose=1,
        ),
    ]


def run_phases(
    model: keras.Model,
    task: Task,
    config: TrainConfig,
    phases: list[Phase],
    train_data,
    holdout_data,
    work_dir: Path,
    make_logger,
    extra_callbacks=(),
    scope=contextlib.nullcontext,
) -> dict:
    """Fit each phase not finished yet; returns {phase name: last epoch logs}. Resumes from `work_dir`."""
    state = read_state(work_dir)
    done = state.setdefault("phases_done", {})
    results: dict[str, dict] = {}
    for phase in phases:
        weights_file = work_dir / f"phase_{phase.name}.weights.h5"
        if phase.name in done and weights_file.is_file():
            model.load_weights(str(weights_file))
            results[phase.name] = done[phase.name]
            continue
        with scope():
            set_backbone_trainable(model, phase.trainable_layers)
            compile_model(model, task, phase.learning_rate)
        LOGGER.info(
            "phase %s: %d epoch(s), learning rate %g, backbone layers training: %s",
            phase.name,
            phase.epochs,
            phase.learning_rate,
            "all" if phase.trainable_layers < 0 else phase.trainable_layers,
        )
        callbacks = [*phase_callbacks(config, phase, work_dir), make_logger(phase), *extra_callbacks]
        history = model.fit(
            train_data,
            validation_data=holdout_data,
            epochs=phase.epochs,
            callbacks=callbacks,
            verbose=2,
            shuffle=False,
        )
        last = {key: float(values[-1]) for key, values in history.history.items() if values}
        model.save_weights(str(weights_file))
        done[phase.name] = last
        write_state(work_dir, state)
        results[phase.name] = last
    return results
