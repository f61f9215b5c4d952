"""Training configuration: a preset from params.yaml (or a tuned one) plus overrides, checked up front."""

from __future__ import annotations

import dataclasses
import re
import typing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from mura_core.config import load_config
from mura_core.contracts import parse_task
from mura_core.errors import ConfigError
from mura_core.settings import get_settings
from pipelines.training.architectures import ARCHITECTURES, check_input_size

AUGMENT_OPS = ("flip", "rotate", "zoom", "contrast")
CACHE_MODES = ("memory", "none")
SELECT_BY = ("loss", "score")
TUNED_PRESETS_FILE = "presets.yaml"  # under MURA_HOME; written by `mura tune`


@dataclass(frozen=True)
class TrainConfig:
    """Everything one training run needs; `architectures` lists candidates, `arch` is the one trained.
    No field has a default here: a preset of params.yaml sets each (resolve_config refuses one that
    does not), so params.yaml is their one home."""

    preset: str
    task: str
    architectures: tuple[str, ...]
    weights: str | None
    image_size: tuple[int, int]
    batch_size: int
    epochs: int  # first phase: the head (frozen pretrained backbone) or the whole net from scratch
    fine_tune_epochs: int  # second phase: top `fine_tune_layers` of a pretrained backbone unfrozen
    fine_tune_layers: int  # -1 = every backbone layer
    head_warmup: bool  # pretrained backbone: train the head on the frozen backbone first
    train_batch_norm: bool  # pretrained backbone: BatchNorm statistics adapt (paper) or stay frozen
    learning_rate: float
    fine_tune_learning_rate: float | None  # None = learning_rate / 10
    dropout: float
    augment: bool
    augment_strength: float  # 1.0 = flips, rotation up to 30 degrees, zoom/contrast 10 %
    augment_ops: tuple[str, ...]
    class_weighting: bool
    # The holdout quantity that picks the best epoch, lowers the learning rate and stops: `loss` (the
    # paper) or `score` (AUC for binary, accuracy for 14cls: separation alone, the operating point is
    # fitted on the same holdout afterwards, so a miscalibrated but better-separating epoch wins).
    select_by: str
    early_stopping_patience: int
    reduce_lr_patience: int
    reduce_lr_factor: float
    mixed_precision: str  # auto = on when a GPU is present
    cache: str
    seed: int
    ensemble: int  # members (seeds seed, seed+1, ...) whose probabilities one model averages
    flip_tta: bool  # an ensemble also averages each member's output on the mirrored image
    extra: dict = field(default_factory=dict, compare=False)

    @property
    def arch(self) -> str:
        """The architecture this config trains (the first candidate)."""
        return self.architectures[0]

    def for_arch(self, arch: str) -> TrainConfig:
        """The same config training only `arch`."""
        return dataclasses.replace(self, architectures=(arch,))

    def to_dict(self) -> dict[str, Any]:
        """Plain JSON-friendly dict (the resolved config logged with every run)."""
        data = dataclasses.asdict(self)
        data.pop("extra")
        data["arch"] = self.arch
        for key, value in data.items():
            if isinstance(value, tuple):
                data[key] = list(value)
        return data


FIELDS = {item.name for item in dataclasses.fields(TrainConfig)} - {"extra"}
FIELD_TYPES = typing.get_type_hints(TrainConfig)


def _image_size(value: Any) -> tuple[int, int]:
    if isinstance(value, str):
        parts = [part for part in re.split(r"[x,\s]+", value.strip()) if part]
        value = parts[0] if len(parts) == 1 else parts
    if (
        isinstance(value, int | float)
        and not isinstance(value, bool)
        or (isinstance(value, str) and value.isdigit())
    ):
        value = [value, value]
    try:
        height, width = (int(item) for item in value)
    except (TypeError, ValueError):
        raise ConfigError(f"image_size {value!r} is not a size; use 320, '320x320' or [320, 320]") from None
    return height, width


def _architectures(value: Any) -> tuple[str, ...]:
    names = [part.strip() for part in value.split(",")] if isinstance(value, str) else list(value)
    if not names:
        raise ConfigError("architectures is empty; name at least one of: " + ", ".join(ARCHITECTURES))
    return tuple(str(name) for name in names)


def _coerce(key: str, value: Any) -> Any:
    """Convert a YAML/CLI/DAG value to the field's type; ConfigError with the key on failure."""
    if key == "image_size":
        return _image_size(value)
    if key == "architectures":
        return _architectures(value)
    if key == "augment_ops":
        return tuple(value.split(",")) if isinstance(value, str) else tuple(value)
    if key in ("weights", "fine_tune_learning_rate") and value in (None, "null", "none", "None", ""):
        return None
    if key == "mixed_precision" and isinstance(value, bool):  # YAML 1.1 reads on/off as booleans
        return "on" if value else "off"
    kind = FIELD_TYPES[key]
    try:
        if kind is bool:
            if isinstance(value, str):
                if value.lower() not in ("true", "false", "1", "0", "yes", "no"):
                    raise ValueError(value)
                return value.lower() in ("true", "1", "yes")
            return bool(value)
        if kind is int:
            if isinstance(value, float) and not value.is_integer():
                raise ValueError(value)
            return int(value)
        if kind is float or key == "fine_tune_learning_rate":
            return float(value)
    except (TypeError, ValueError):
        raise ConfigError(f"{key}={value!r} is not a valid {getattr(kind, '__name__', kind)}") from None
    return str(value) if value is not None else None


def available_presets() -> dict[str, dict]:
    """Presets of params.yaml, plus tuned ones from $MURA_HOME/presets.yaml (those win on a name clash)."""
    presets = dict(load_config().presets)
    tuned_file = get_settings().mura_home / TUNED_PRESETS_FILE
    if tuned_file.is_file():
        presets.update(yaml.safe_load(tuned_file.read_text(encoding="utf-8")) or {})
    return presets


def resolve_config(preset: str | None = None, overrides: dict[str, Any] | None = None) -> TrainConfig:
    """Preset + overrides -> a checked TrainConfig; ConfigError for unknown keys or values."""
    preset = preset or get_settings().default_preset
    presets = available_presets()
    if preset not in presets:
        raise ConfigError(f"unknown preset {preset!r}; params.yaml defines: {', '.join(presets) or 'none'}")
    values: dict[str, Any] = dict(presets[preset] or {})
    overrides = dict(overrides or {})
    if "arch" in overrides:  # `arch` is the one-candidate spelling of `architectures`
        overrides["architectures"] = overrides.pop("arch")
    if (
        "augment" in overrides
        and isinstance(overrides["augment"], float)
        and not isinstance(overrides["augment"], bool)
    ):
        overrides["augment_strength"] = overrides["augment"]  # a number = augmentation strength
        overrides["augment"] = overrides["augment_strength"] > 0
    values.update({key: value for key, value in overrides.items() if value is not None})
    values.pop("preset", None)
    unknown = sorted(set(values) - FIELDS)
    if unknown:
        raise ConfigError(
            f"unknown training setting(s) {', '.join(unknown)}; known: {', '.join(sorted(FIELDS))}"
        )
    missing = sorted(FIELDS - {"preset"} - set(values))
    if missing:
        raise ConfigError(
            f"preset {preset!r} does not set {', '.join(missing)}: a preset sets every training field "
            "(see cpu_smoke in params.yaml)"
        )
    config = TrainConfig(preset=preset, **{key: _coerce(key, value) for key, value in values.items()})
    check_config(config)
    return config


def check_config(config: TrainConfig) -> None:
    """Raise ConfigError when a value cannot be used (before any data is read or model built)."""
    parse_task(config.task)
    for arch in config.architectures:
        if arch not in ARCHITECTURES:
            raise ConfigError(f"unknown architecture {arch!r}; choose one of: {', '.join(ARCHITECTURES)}")
        check_input_size(arch, config.image_size)
    positive = {"batch_size": config.batch_size, "learning_rate": config.learning_rate}
    for key, value in positive.items():
        if value <= 0:
            raise ConfigError(f"{key} must be positive, got {value}")
    if not 1 <= config.ensemble <= 20:
        raise ConfigError(f"ensemble must be between 1 and 20 members, got {config.ensemble}")
    if config.epochs < 1 or config.fine_tune_epochs < 0:
        raise ConfigError("epochs must be >= 1 and fine_tune_epochs >= 0")
    if not 0.0 <= config.dropout < 1.0:
        raise ConfigError(f"dropout must be in [0, 1), got {config.dropout}")
    if not 0.0 <= config.augment_strength <= 3.0:
        raise ConfigError(f"augment_strength must be in [0, 3], got {config.augment_strength}")
    bad_ops = sorted(set(config.augment_ops) - set(AUGMENT_OPS))
    if bad_ops:
        raise ConfigError(f"unknown augment_ops {bad_ops}; choose from {list(AUGMENT_OPS)}")
    if config.cache not in CACHE_MODES:
        raise ConfigError(f"cache must be one of {CACHE_MODES}, got {config.cache!r}")
    if config.select_by not in SELECT_BY:
        raise ConfigError(f"select_by must be one of {SELECT_BY}, got {config.select_by!r}")
    if config.mixed_precision not in ("auto", "on", "off"):
        raise ConfigError(f"mixed_precision must be auto, on or off, got {config.mixed_precision!r}")
    if (
        isinstance(config.weights, str)
        and config.weights not in ("imagenet",)
        and not Path(config.weights).suffix
    ):
        raise ConfigError(f"weights {config.weights!r}: use imagenet, null or a path to a weights file")
