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
import numpy as np

from mura_core.atomic_files import replaced_atomically
from mura_core.contracts import Task
from mura_core.progress import keras_verbosity
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
    train_batch_norm: bool = True  # False: a pretrained backbone's BatchNorm statistics stay as loaded


def plan_phases(config: TrainConfig, pretrained: bool) -> list[Phase]:
    """Head on a frozen pretrained backbone, then fine-tune its top layers; or, without `head_warmup`
    (the MURA paper: end to end from the first step), the whole network in one phase.

    A backbone without pretrained weights has nothing worth freezing, so it trains whole in one phase.
    """
    epochs = config.epochs + config.fine_tune_epochs
    if not pretrained:
        return [Phase("full", epochs, config.learning_rate, -1, 0)]
    batch_norm = config.train_batch_norm
    if not config.head_warmup:
        return [Phase("full", epochs, config.learning_rate, -1, 0, batch_norm)]
    phases = [Phase("head", config.epochs, config.learning_rate, 0, 0, batch_norm)]
    if config.fine_tune_epochs > 0 and config.fine_tune_layers != 0:
        fine_tune_rate = config.fine_tune_learning_rate or config.learning_rate / 10
        phases.append(
            Phase(
                "fine_tune",
                config.fine_tune_epochs,
                fine_tune_rate,
                config.fine_tune_layers,
                config.epochs,
                batch_norm,
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
    with replaced_atomically(work_dir / STATE_FILE) as temporary:
        temporary.write_text(json.dumps(state, indent=2), encoding="utf-8")


class CallbackState(keras.callbacks.Callback):
    """Keeps EarlyStopping's best weights and counters and ReduceLROnPlateau's counters across a kill.

    BackupAndRestore brings back the weights, the optimizer and the epoch, but the other callbacks
    start afresh: a resumed run would forget its best epoch (and restore a worse one at the end) and
    wait anew before lowering the learning rate. This callback saves their state after every epoch
    and puts it back after their own on_train_begin has reset it (it comes after them in the list).
    """

    def __init__(self, folder: Path, stopping, scheduler):
        super().__init__()
        self.folder, self.stopping, self.scheduler = Path(folder), stopping, scheduler
        self.state_file = self.folder / "callbacks.json"
        self.weights_file = self.folder / "best_weights.npz"

    def on_train_begin(self, logs=None):
        """Restore the saved state, if a killed attempt left one."""
        if not self.state_file.is_file():
            return
        state = json.loads(self.state_file.read_text(encoding="utf-8"))
        for name, value in state["stopping"].items():
            setattr(self.stopping, name, value)
        for name, value in state["scheduler"].items():
            setattr(self.scheduler, name, value)
        if self.weights_file.is_file():
            with np.load(self.weights_file) as saved:
                self.stopping.best_weights = [saved[f"w{index}"] for index in range(len(saved.files))]
        LOGGER.info(
            "resumed callback state: best %s %s at epoch %s",
            self.stopping.monitor,
            self.stopping.best,
            self.stopping.best_epoch,
        )

    def on_epoch_end(self, epoch, logs=None):
        """Save both callbacks' state (atomically, so a kill mid-write keeps the previous one)."""
        self.folder.mkdir(parents=True, exist_ok=True)
        if self.stopping.best_weights is not None and self.stopping.best_epoch == epoch:
            temporary = self.folder / "best_weights.tmp.npz"
            np.savez(temporary, **{f"w{i}": np.asarray(w) for i, w in enumerate(self.stopping.best_weights)})
            temporary.replace(self.weights_file)
        state = {
            "stopping": {
                name: _plain(getattr(self.stopping, name)) for name in ("wait", "best", "best_epoch")
            },
            "scheduler": {
                name: _plain(getattr(self.scheduler, name)) for name in ("wait", "best", "cooldown_counter")
            },
        }
        with replaced_atomically(self.state_file) as temporary:
            temporary.write_text(json.dumps(state), encoding="utf-8")


def _plain(value):
    """A JSON-ready number (None stays: EarlyStopping has no best before its first epoch)."""
    if value is None:
        return None
    return float(value) if isinstance(value, float | np.floating) else int(value)


def monitored(config: TrainConfig, task: Task) -> tuple[str, str]:
    """(Keras log key, mode) of the holdout quantity `config.select_by` names for this task."""
    if config.select_by == "loss":
        return "val_loss", "min"
    return ("val_accuracy" if task.is_multiclass else "val_auc"), "max"


def phase_callbacks(
    config: TrainConfig, task: Task, phase: Phase, work_dir: Path
) -> list[keras.callbacks.Callback]:
    """BackupAndRestore first (so a later callback that stops the run finds the epoch saved), then the
    rest, then the keeper of their state (after them: it restores what their on_train_begin resets)."""
    monitor, mode = monitored(config, task)
    stopping = keras.callbacks.EarlyStopping(
        monitor=monitor,
        mode=mode,
        patience=config.early_stopping_patience,
        restore_best_weights=True,
        verbose=1,
    )
    scheduler = keras.callbacks.ReduceLROnPlateau(
        monitor=monitor,
        mode=mode,
        factor=config.reduce_lr_factor,
        patience=config.reduce_lr_patience,
        min_lr=1e-7,
        verbose=1,
    )
    return [
        keras.callbacks.BackupAndRestore(str(work_dir / f"backup_{phase.name}")),
        stopping,
        scheduler,
        CallbackState(work_dir / f"callbacks_{phase.name}", stopping, scheduler),
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
            set_backbone_trainable(model, phase.trainable_layers, phase.train_batch_norm)
            compile_model(model, task, phase.learning_rate)
        LOGGER.info(
            "phase %s: %d epoch(s), learning rate %g, backbone layers training: %s",
            phase.name,
            phase.epochs,
            phase.learning_rate,
            "all" if phase.trainable_layers < 0 else phase.trainable_layers,
        )
        callbacks = [*phase_callbacks(config, task, phase, work_dir), make_logger(phase), *extra_callbacks]
        history = model.fit(
            train_data,
            validation_data=holdout_data,
            epochs=phase.epochs,
            callbacks=callbacks,
            verbose=keras_verbosity(),  # a bar per batch at a terminal, a line per epoch in logs
            shuffle=False,
        )
        last = {key: float(values[-1]) for key, values in history.history.items() if values}
        stopping = next(c for c in callbacks if isinstance(c, keras.callbacks.EarlyStopping))
        if stopping.best_weights is not None:  # restore_best_weights put these back at the end
            last["restored_epoch"] = float(phase.first_step + stopping.best_epoch)
        model.save_weights(str(weights_file))
        done[phase.name] = last
        write_state(work_dir, state)
        results[phase.name] = last
    return results
