"""Resuming a killed fit keeps EarlyStopping's best epoch and weights and the LR scheduler's counters;
both watch the holdout quantity the config's `select_by` names."""

from __future__ import annotations

import dataclasses

import keras
import numpy as np
import pytest

from mura_core.contracts import parse_task
from pipelines.training.fit import Phase, monitored, phase_callbacks
from pipelines.training.presets import resolve_config

TASK = parse_task("binary")


class Kill(Exception):
    """Stands for a worker killed after an epoch."""


class KillAfter(keras.callbacks.Callback):
    def __init__(self, epochs: int):
        super().__init__()
        self.epochs = epochs

    def on_epoch_end(self, epoch, logs=None):
        if epoch + 1 == self.epochs:
            raise Kill


def _model() -> keras.Model:
    keras.utils.set_random_seed(3)
    inputs = keras.Input((4,))
    model = keras.Model(inputs, keras.layers.Dense(1, activation="sigmoid")(inputs))
    model.compile(optimizer=keras.optimizers.Adam(0.05), loss="binary_crossentropy")
    return model


def test_resumed_fit_restores_best_weights_and_counters(tmp_path):
    rng = np.random.default_rng(0)
    features = rng.normal(size=(64, 4)).astype("float32")
    labels = (features[:, 0] > 0).astype("float32")
    # Holdout labels that fight the training signal: holdout loss is best early, then gets worse.
    holdout = (features[:16], 1.0 - labels[:16])
    config = dataclasses.replace(
        resolve_config("ci_tiny"), select_by="loss", early_stopping_patience=10, reduce_lr_patience=10
    )
    phase = Phase("full", 6, 0.05, -1, 0)

    first = _model()
    callbacks = phase_callbacks(config, TASK, phase, tmp_path)
    try:
        first.fit(
            features,
            labels,
            validation_data=holdout,
            epochs=6,
            callbacks=[*callbacks, KillAfter(3)],
            verbose=0,
        )
    except Kill:
        pass
    stopping, scheduler = callbacks[1], callbacks[2]
    saved = (stopping.best, stopping.best_epoch, stopping.wait, scheduler.wait, scheduler.best)
    assert saved[2] > 0  # holdout loss got worse after the best epoch: patience is being spent

    second = _model()
    resumed = phase_callbacks(config, TASK, phase, tmp_path)
    recorder = keras.callbacks.LambdaCallback(
        on_train_begin=lambda logs: seen.append(
            (resumed[1].best, resumed[1].best_epoch, resumed[1].wait, resumed[2].wait, resumed[2].best)
        )
    )
    seen: list = []
    second.fit(features, labels, validation_data=holdout, epochs=3, callbacks=[*resumed, recorder], verbose=0)
    assert seen == [saved]
    for restored, best in zip(resumed[1].best_weights, stopping.best_weights, strict=True):
        np.testing.assert_array_equal(restored, best)


@pytest.mark.parametrize(
    ("select_by", "task", "expected"),
    [
        ("loss", "binary", ("val_loss", "min")),
        ("score", "binary", ("val_auc", "max")),
        ("score", "14cls", ("val_accuracy", "max")),
        ("loss", "14cls", ("val_loss", "min")),
    ],
)
def test_select_by_names_the_monitored_holdout_quantity(select_by, task, expected, tmp_path, monkeypatch):
    monkeypatch.setenv("MURA_HOME", str(tmp_path))
    config = resolve_config("cpu_smoke", {"select_by": select_by, "task": task})
    assert monitored(config, parse_task(task)) == expected
    _, stopping, scheduler, _ = phase_callbacks(
        config, parse_task(task), Phase("full", 1, 0.1, -1, 0), tmp_path
    )
    assert (stopping.monitor, scheduler.monitor) == (expected[0], expected[0])
