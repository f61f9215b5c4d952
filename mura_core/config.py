"""One typed config: params.yaml read once into frozen dataclasses, each setting with one default.

The defaults live in the repository's params.yaml and nowhere else: a section or key missing there
is a ConfigError naming it, and an unknown key is one too (a typo must not fall back silently).
Runners (CLI, DAG tasks, the server) call `load_config()` once and pass the sections they use;
library functions take the section as an argument.
"""

from __future__ import annotations

import dataclasses
import types
import typing
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Any

import yaml

from mura_core.contracts import APPROVAL_MODES, check_model_name
from mura_core.errors import ConfigError

DURATION_UNITS = {"d": 86400, "h": 3600, "m": 60, "s": 1}


def duration_seconds(text: str, where: str = "duration") -> float:
    """`3d`, `12h`, `30m` or `45s` in seconds; ConfigError naming `where` for anything else."""
    value = str(text).strip()
    try:
        seconds = float(value[:-1]) * DURATION_UNITS[value[-1:]]
    except (KeyError, ValueError):
        raise ConfigError(f"{where}={text!r}: give a number and a unit, e.g. 3d, 12h, 30m or 45s") from None
    if not 0 < seconds <= 366 * 86400:  # NaN fails this too
        raise ConfigError(f"{where}={text!r}: give more than zero and at most a year")
    return seconds


@dataclass(frozen=True)
class SynthParams:
    """The default synthetic sample (`mura data synth`, `make demo`)."""

    seed: int
    train_patients: int
    valid_patients: int
    md5: str  # the sample's DVC hash (the committed data.dvc)


@dataclass(frozen=True)
class DataParams:
    """Manifest building: the patient-level holdout carved out of MURA train."""

    holdout_fraction: float
    holdout_seed: int
    synth: SynthParams


@dataclass(frozen=True)
class EvaluationParams:
    """Study-level evaluation: the operating point (fitted on holdout, or the fixed `threshold`) and
    the bootstrap intervals."""

    threshold: float
    operating_point: str
    calibration_bins: int
    bootstrap_replicates: int
    confidence: float
    bootstrap_seed: int
    batch_size: int


@dataclass(frozen=True)
class GateParams:
    """Floors and allowed drops of the champion/challenger gate (pipelines/registry/gate.py), the
    paired comparison's resamples and confidence, and who decides on a passing version."""

    min_study_kappa: float
    min_study_auroc: float
    max_overall_drop: float
    max_part_kappa_drop: float
    approval: str  # required | auto | off (APPROVAL_MODES)
    allow_auto_approval: bool  # whether a run may ask for auto (skip the reviewer) when approval is not
    approval_timeout: str  # a duration: 3d, 12h, 30m, 45s
    paired_replicates: int
    confidence: float

    @property
    def approval_choices(self) -> tuple[str, ...]:
        """The approvals a run may ask for: auto (no reviewer) only where params.yaml allows it or makes
        it the default, so skipping the reviewer is a reviewed change to params.yaml, not a form field."""
        if self.allow_auto_approval or self.approval == "auto":
            return APPROVAL_MODES
        return tuple(mode for mode in APPROVAL_MODES if mode != "auto")


@dataclass(frozen=True)
class DeployParams:
    """The reconciler (`mura deploy`, DAG mura_deploy)."""

    available_timeout_seconds: float
    reload: str
    smoke_images: int
    request_timeout_seconds: float
    models: tuple[str, ...]  # the registered models it serves; any other is never loaded


@dataclass(frozen=True)
class ServingParams:
    """Export checks, version keeping and the local server's limits and poll intervals."""

    max_image_pixels: int
    max_image_side: int
    max_request_bytes: int
    max_request_batch_size: int
    warmup_images: int
    reload_tolerance: float
    keep_versions: int
    grpc_workers: int
    file_system_poll_wait_seconds: float
    model_config_file_poll_wait_seconds: float
    gateway_answer_seconds: float  # the gateway gives up on a replica after this, and tries the other once


@dataclass(frozen=True)
class TuningParams:
    """Keras Tuner search (`mura tune`)."""

    max_trials: int


@dataclass(frozen=True)
class MonitorParams:
    """The monitor (`mura monitor`, DAG mura_monitor): samples, test thresholds, what triggers action."""

    model: str  # the served model it watches
    reference_images: int  # training images profiled and embedded per run, at evaluation
    current_images: int  # images of a new release drawn for the drift tests
    live_studies: int  # labelled studies sent to the served models (0: no live check)
    alpha: float  # family-wise error rate of the drift tests (Holm-corrected)
    min_effect: dict  # feature -> smallest effect that counts as drift (KS distance, Cramer's V, MMD^2)
    permutations: int  # patient permutations per test
    min_live_kappa: float  # the champion's live study kappa below this asks for a retrain
    retrain_preset: str  # preset of the retrains it asks for (a manual trigger keeps the form's)
    seed: int


@dataclass(frozen=True)
class PacsParams:
    """The PACS DAG (mura_pacs_inference): what it stores in each study besides the report."""

    overlays: bool  # also one Grad-CAM++ Secondary Capture per image
    max_image_pixels: int  # a DICOM image declaring more (rows x columns x frames) is refused undecoded
    max_decode_memory_bytes: int  # the address space of a process that decodes DICOM (RLIMIT_AS)


@dataclass(frozen=True)
class ExternalParams:
    """External validation on a site's own studies (`mura external`, DAG mura_external_validation)."""

    min_images: int  # the data gate's row_count.min for a site's release
    max_image_side: int  # the gate's largest image width and height for a site
    abnormal_ratio: dict  # the gate's abnormal share per study type for a site (min, max)
    recalibration_fraction: float  # patient-level share of the site's studies --recalibrate fits on
    seed: int  # the patient split of --recalibrate


@dataclass(frozen=True)
class PlatformConfig:
    """Every section of params.yaml. `validation` and `presets` stay mappings: the GX suite and the
    preset resolver check their own keys (each has one home there)."""

    data: DataParams
    validation: dict
    presets: dict
    evaluation: EvaluationParams
    gate: GateParams
    deploy: DeployParams
    serving: ServingParams
    tuning: TuningParams
    monitor: MonitorParams
    pacs: PacsParams
    external: ExternalParams
    source: str = ""


def _convert(value: Any, kind: Any, where: str) -> Any:
    if dataclasses.is_dataclass(kind):
        return _build(kind, value, where)
    origin = typing.get_origin(kind)
    if kind is dict or origin is dict:
        if not isinstance(value, dict):
            raise ConfigError(f"params.yaml {where}: expected a mapping, got {value!r}")
        return value
    if origin is tuple:  # tuple[X, ...]: a YAML list
        if not isinstance(value, list):
            raise ConfigError(f"params.yaml {where}: expected a list, got {value!r}")
        item = typing.get_args(kind)[0]
        return tuple(_convert(entry, item, f"{where}[{index}]") for index, entry in enumerate(value))
    if kind is bool:
        if not isinstance(value, bool):
            raise ConfigError(f"params.yaml {where}={value!r}: expected true or false")
        return value
    if origin in (types.UnionType, typing.Union):
        raise ConfigError(f"params.yaml {where}: unsupported type {kind}")  # pragma: no cover
    if kind in (int, float, str):
        if isinstance(value, bool) or value is None:
            raise ConfigError(f"params.yaml {where}={value!r}: expected a {kind.__name__}")
        try:
            converted = kind(value)
        except (TypeError, ValueError):
            raise ConfigError(f"params.yaml {where}={value!r}: expected a {kind.__name__}") from None
        if kind is int and converted != value:
            raise ConfigError(f"params.yaml {where}={value!r}: expected a whole number")
        return converted
    return value


def _build(cls, mapping: Any, where: str):
    if not isinstance(mapping, dict):
        raise ConfigError(f"params.yaml {where}: expected a mapping, got {mapping!r}")
    hints = typing.get_type_hints(cls)
    fields = {field.name: field for field in dataclasses.fields(cls) if field.name != "source"}
    unknown = sorted(set(mapping) - set(fields))
    if unknown:
        raise ConfigError(f"params.yaml {where}: unknown key(s) {unknown}; known: {sorted(fields)}")
    missing = sorted(name for name in fields if name not in mapping)
    if missing:
        raise ConfigError(f"params.yaml {where}: missing key(s) {missing}")
    return cls(**{name: _convert(mapping[name], hints[name], f"{where}.{name}") for name in fields})


def parse_config(params: dict, source: str = "") -> PlatformConfig:
    """A checked PlatformConfig from the parsed params.yaml mapping."""
    config = _build(PlatformConfig, params, "(top level)")
    if config.deploy.reload not in ("grpc", "poll"):
        raise ConfigError(f"params.yaml deploy.reload={config.deploy.reload!r}: use grpc or poll")
    for name in config.deploy.models:
        check_model_name(name)
    if not 0.0 < config.evaluation.threshold < 1.0:
        raise ConfigError(f"params.yaml evaluation.threshold={config.evaluation.threshold}: use (0, 1)")
    if config.evaluation.operating_point not in ("fitted", "fixed"):
        raise ConfigError(
            f"params.yaml evaluation.operating_point={config.evaluation.operating_point!r}: use fitted or fixed"
        )
    if not 0.5 <= config.evaluation.confidence < 1.0 or config.evaluation.bootstrap_replicates < 0:
        raise ConfigError(
            "params.yaml evaluation: confidence must lie in [0.5, 1) and bootstrap_replicates >= 0"
        )
    if not 0.0 < config.monitor.alpha < 0.5 or config.monitor.permutations < 19:
        raise ConfigError("params.yaml monitor: alpha must lie in (0, 0.5) and permutations be >= 19")
    if config.gate.approval not in APPROVAL_MODES:
        raise ConfigError(
            f"params.yaml gate.approval={config.gate.approval!r}: use one of {', '.join(APPROVAL_MODES)}"
        )
    duration_seconds(config.gate.approval_timeout, "params.yaml gate.approval_timeout")
    _check_gate(config.gate)
    if config.monitor.retrain_preset not in config.presets:
        raise ConfigError(
            f"params.yaml monitor.retrain_preset={config.monitor.retrain_preset!r}: unknown preset; "
            f"params.yaml presets: {', '.join(sorted(config.presets)) or 'none'}"
        )
    external = config.external
    ratio = external.abnormal_ratio
    if (
        not 0.0 < external.recalibration_fraction < 1.0
        or external.min_images < 1
        or set(ratio) != {"min", "max"}
        or not 0.0 <= ratio["min"] < ratio["max"] <= 1.0
    ):
        raise ConfigError(
            "params.yaml external: recalibration_fraction must lie in (0, 1), min_images be >= 1 and "
            "abnormal_ratio hold min < max in [0, 1]"
        )
    return dataclasses.replace(config, source=source)


def _check_gate(gate: GateParams) -> None:
    for name in ("max_overall_drop", "max_part_kappa_drop"):
        if getattr(gate, name) < 0:
            raise ConfigError(
                f"params.yaml gate.{name}={getattr(gate, name)}: an allowed drop cannot be negative"
            )
    if not -1.0 <= gate.min_study_kappa <= 1.0 or not 0.0 <= gate.min_study_auroc <= 1.0:
        raise ConfigError(
            "params.yaml gate: min_study_kappa must lie in [-1, 1] and min_study_auroc in [0, 1]"
        )
    if gate.paired_replicates < 100 or not 0.5 <= gate.confidence < 1.0:
        raise ConfigError("params.yaml gate: paired_replicates must be >= 100 and confidence in [0.5, 1)")


@lru_cache(maxsize=8)
def _load(path: str, mtime: float) -> PlatformConfig:
    with open(path, encoding="utf-8") as handle:
        loaded = yaml.safe_load(handle) or {}
    return parse_config(loaded, source=path)


def load_config(path: Path | None = None) -> PlatformConfig:
    """The platform config from params.yaml (MURA_PARAMS_FILE; cached until the file changes)."""
    if path is None:
        from mura_core.settings import get_settings

        path = get_settings().params_file
    path = Path(path)
    if not path.is_file():
        raise ConfigError(f"{path}: parameters file not found (set MURA_PARAMS_FILE or restore params.yaml)")
    return _load(str(path), path.stat().st_mtime)
