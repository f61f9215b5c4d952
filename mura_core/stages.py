"""Typed results of the pipeline's stages; turned into JSON dicts only at the XCom boundary.

Each stage takes the previous stage's dataclass, so a misspelt key is an AttributeError where it is
written, not a silently missing value three tasks later. `to_xcom()` / `from_xcom()` are the only
places where they become or stop being plain dicts.
"""

from __future__ import annotations

import dataclasses
import enum
import math
import types
import typing
from dataclasses import dataclass, field
from typing import Any, TypeVar

from mura_core.contracts import PASSED, STUDY_KAPPA, Approval

T = TypeVar("T", bound="Stage")


def json_safe(value: Any) -> Any:
    """NaN (an undefined kappa, say) -> None, recursively: XCom and JSON files refuse NaN."""
    if isinstance(value, dict):
        return {key: json_safe(item) for key, item in value.items()}
    if isinstance(value, list | tuple):
        return [json_safe(item) for item in value]
    return None if isinstance(value, float) and math.isnan(value) else value


class Stage:
    """Mixin: JSON-friendly round trip of a (nested) stage dataclass."""

    def to_xcom(self) -> dict[str, Any]:
        """A plain dict (nested stages become dicts) for XCom or `--json`."""
        return dataclasses.asdict(self, dict_factory=_plain_dict)  # type: ignore[call-overload]

    @classmethod
    def from_xcom(cls: type[T], values: dict[str, Any] | T) -> T:
        """The stage from the dict `to_xcom()` made; unknown or missing keys are a TypeError."""
        if isinstance(values, cls):
            return values
        hints = typing.get_type_hints(cls)
        converted = {}
        for name, value in typing.cast(dict[str, Any], values).items():
            kind = hints.get(name)
            kind = _stage_of_optional(kind)
            if isinstance(kind, type) and issubclass(kind, Stage) and isinstance(value, dict):
                value = kind.from_xcom(value)
            elif isinstance(kind, type) and issubclass(kind, enum.Enum):
                value = kind(value)
            elif typing.get_origin(kind) is list:
                (item,) = typing.get_args(kind)
                if isinstance(item, type) and issubclass(item, Stage):
                    value = [item.from_xcom(one) for one in value]
            converted[name] = value
        return cls(**converted)


def _plain_dict(items: list[tuple[str, Any]]) -> dict[str, Any]:
    """asdict's dict, an enum member as its value (XCom and JSON carry plain strings)."""
    return {key: value.value if isinstance(value, enum.Enum) else value for key, value in items}


def _stage_of_optional(kind: Any) -> Any:
    """`SomeStage | None` -> SomeStage (so an optional nested stage is rebuilt too); else `kind`."""
    if isinstance(kind, types.UnionType) or typing.get_origin(kind) is typing.Union:
        stages = [arg for arg in typing.get_args(kind) if isinstance(arg, type) and issubclass(arg, Stage)]
        if len(stages) == 1:
            return stages[0]
    return kind


@dataclass(frozen=True)
class DataVersion(Stage):
    """The data a run reads: its DVC hash and the git revisions of the repo and of data.dvc."""

    dvc_md5: str
    rev: str
    data_rev: str
    nfiles: int | None = None


@dataclass(frozen=True)
class Manifest(Stage):
    """The stored manifest of one data version."""

    path: str
    data_root: str
    rows: int
    problems: dict[str, int]
    data_version: DataVersion


@dataclass(frozen=True)
class Validation(Stage):
    """The GX data gate's report (pipelines.validation builds it; the pipeline's gate raises
    DataValidationError carrying it when the data failed)."""

    success: bool
    summary: str  # a few readable lines: the verdict, each failed rule, where the Data Docs are
    rows: int
    studies: int
    rules_checked: int
    rules_failed: int
    failed_rules: list[str]
    failures: list[dict[str, Any]]  # each failed rule: counts, example paths, message
    data_docs: str | None
    data_version: str  # what the Data Docs call the data (the run name)
    timings_s: dict[str, float] = field(default_factory=dict)


@dataclass(frozen=True)
class Candidate(Stage):
    """One architecture to train on one manifest with the resolved preset and overrides."""

    preset: str
    arch: str
    overrides: dict[str, Any]
    manifest: Manifest
    validation: Validation
    dag_run_id: str | None = None  # the Airflow run that trains it (recorded on the run and the version)
    member: int = 0  # index within an ensemble of `ensemble` members (its seed is seed + member)
    ensemble: int = 1


@dataclass(frozen=True)
class TrainedRun(Stage):
    """What a finished training run produced (pipelines.training.train returns it)."""

    run_id: str
    arch: str
    task: str
    model_name: str
    metrics: dict[str, float] = field(default_factory=dict)


@dataclass(frozen=True)
class TrainResult(Stage):
    """A finished training run of a candidate: the candidate and the run it produced."""

    candidate: Candidate
    run: TrainedRun

    @property
    def run_id(self) -> str:
        """The MLflow run."""
        return self.run.run_id

    @property
    def task(self) -> str:
        """The task trained."""
        return self.run.task

    @property
    def model_name(self) -> str:
        """The registered model it would become a version of."""
        return self.run.model_name

    @property
    def metrics(self) -> dict[str, float]:
        """Its training metrics (empty for an ensemble's averaging run)."""
        return self.run.metrics


@dataclass(frozen=True)
class EvaluationReport(Stage):
    """What pipelines.evaluation.evaluate_run measured on one run's model on `valid` (and logged)."""

    run_id: str
    metrics: dict[str, float]  # the flat MLflow metrics: eval.* and the run's holdout.study_*
    table: str  # the MURA-paper table
    report: dict[str, Any]  # the whole metrics document (per study type, intervals, operating point)


@dataclass(frozen=True)
class Evaluation(Stage):
    """Study-level metrics of a trained run: `eval.*` on `valid` (reported) and `holdout.study_*` at
    the operating point fitted there (what selection uses)."""

    trained: TrainResult
    metrics: dict[str, float]
    table: str = ""  # the MURA-paper table of the evaluation (what `mura train` prints)

    @property
    def selection_kappa(self) -> float:
        """Holdout study kappa (valid only reports: choosing by it would make the valid score optimistic);
        a run without one falls back to valid's; -inf when missing or undefined, so it ranks last."""
        value = self.metrics.get("holdout.study_kappa", self.metrics.get(STUDY_KAPPA))
        return float("-inf") if value is None or math.isnan(value) else float(value)


@dataclass(frozen=True)
class Export(Stage):
    """A run's model exported as a TF Serving SavedModel, logged under the run's `tf_serving/`."""

    run_id: str
    model_name: str
    artifact_path: str
    saved_model_dir: str | None = None  # a local copy, when one was asked for


@dataclass(frozen=True)
class Registration(Stage):
    """A new model version in the MLflow registry, before the gate."""

    model: str
    version: int
    run_id: str
    sha256: str
    signature: str
    candidates: dict[str, float | None] = field(default_factory=dict)
    reused: bool = False  # the run was registered already (a retried task): its version, not a new one


@dataclass(frozen=True)
class GateVerdict(Stage):
    """The gate's decision on a registered version and the aliases it then holds."""

    model: str
    version: int
    status: str
    reason: str
    champion_version: int | None
    aliases: list[str]
    card: str | None = None  # where the version's model card is; None when it could not be written
    repeated: bool = False  # gated before (a retried task): the recorded verdict, nothing moved again
    approval: Approval = Approval.OFF  # who decides next: the run's approval, carried to the approval step

    @property
    def passed(self) -> bool:
        """True when the version may serve (as champion or challenger)."""
        return self.status == PASSED


@dataclass(frozen=True)
class ModelServing(Stage):
    """One model after a reconcile pass: what serves under which label, and what the pass changed."""

    model: str
    changed: bool
    skipped: str = ""  # why nothing was done (no champion alias); empty when reconciled
    labels: dict[str, int] = field(default_factory=dict)  # serving label -> version
    served: dict[str, dict[str, int]] = field(default_factory=dict)  # served name -> label -> version
    published: list[int] = field(default_factory=list)  # versions copied into the model base path
    quarantined: list[str] = field(default_factory=list)  # foreign folders moved aside first
    tags: list[str] = field(default_factory=list)  # registry tags written
    pruned: list[int] = field(default_factory=list)  # versions removed from disk


@dataclass(frozen=True)
class Reconciliation(Stage):
    """One reconcile pass: each model brought in line with its aliases (DeployError when one failed)."""

    models: list[ModelServing]
    changed: bool

    def describe(self) -> str:
        """One line per model: its labels and whether this pass changed anything (or why skipped)."""
        lines = []
        for model in self.models:
            if model.skipped:
                lines.append(f"{model.model}: {model.skipped}")
                continue
            labels = ", ".join(f"{label}=v{version}" for label, version in sorted(model.labels.items()))
            lines.append(f"{model.model}: {labels} ({'changed' if model.changed else 'unchanged'})")
        return "\n".join(lines) or "no registered mura_* model"


@dataclass(frozen=True)
class Deployment(Stage):
    """What the reconciler did after a verdict (skipped when the gate failed)."""

    model: str
    version: int
    deployed: bool
    reason: str
    reconciliation: Reconciliation | None = None


@dataclass(frozen=True)
class ShadowComparison(Stage):
    """Challenger minus champion on the same live studies, with paired bootstrap intervals."""

    studies: int
    kappa_change: float
    kappa_change_ci: list[float]
    auroc_change: float
    auroc_change_ci: list[float]
    challenger_better: bool  # the kappa change's interval lies above 0


@dataclass(frozen=True)
class LiveCheck(Stage):
    """The monitor's live check: labelled studies of the release sent to the served models. Scored,
    skipped (`skipped` says why) or failed (`error` says why: the live-kappa trigger could not fire)."""

    studies: int = 0
    champion: dict[str, Any] | None = None  # the evaluation's metrics document of the answers
    challenger: dict[str, Any] | None = None
    comparison: ShadowComparison | None = None
    skipped: str = ""
    error: str = ""

    @property
    def state(self) -> str:
        """`scored`, `skipped: why` or `failed: why`."""
        if self.error:
            return f"failed: {self.error}"
        return f"skipped: {self.skipped}" if self.skipped else "scored"

    @property
    def champion_kappa(self) -> float | None:
        """The champion's live study kappa; None when not scored or undefined."""
        kappa = ((self.champion or {}).get("study") or {}).get("kappa")
        return None if kappa is None or math.isnan(kappa) else float(kappa)


@dataclass(frozen=True)
class MonitorCheck(Stage):
    """One monitor run: drift of a release against the champion's training data, live performance of
    the champion (and the challenger in shadow), and what it asks for."""

    model: str
    champion_version: int
    challenger_version: int | None
    data_md5: str
    drift: bool
    drifted_features: list[str]
    tests: list[dict[str, Any]]
    live: LiveCheck
    retrain_needed: bool
    reasons: list[str]
    recommendation: str
    mlflow_run_id: str
    report: str

    def to_xcom(self) -> dict[str, Any]:
        """A plain dict with NaN as None (metrics of a study type with one class are undefined)."""
        return json_safe(dataclasses.asdict(self))
