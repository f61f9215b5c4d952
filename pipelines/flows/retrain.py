"""The retrain flow (DAG mura_retrain; `mura train` composes the same steps): data -> manifest ->
validation -> candidates -> training -> evaluation -> selection and registration -> gate -> approval
-> deployment.

Each step takes and returns the typed results of mura_core.stages (dicts only at the XCom boundary,
in the DAG file). Importing this module is cheap (no TensorFlow, MLflow, GX or DVC): the DAG file
imports it at parse time.
"""

from __future__ import annotations

import dataclasses
import datetime
import json
import logging
from pathlib import Path
from typing import Any

from mura_core.contracts import (
    APPROVE_TASK,
    CHALLENGER,
    CHAMPION,
    DATA_ASSET_URI,
    DVC_POOL,
    GPU_QUEUE,
    RETRAIN_DAG,
    RETRAIN_NEEDED_URI,
    TASK_CHOICES,
    VALIDATION_SUCCESS_TAG,
    Approval,
)
from mura_core.errors import ConfigError
from mura_core.logs import configure_logging
from mura_core.settings import get_settings
from mura_core.stages import (
    Candidate,
    DataVersion,
    Deployment,
    Evaluation,
    Export,
    GateVerdict,
    Manifest,
    Registration,
    TrainResult,
    Validation,
)
from pipelines.flows.data import build_manifest, local_manifest, pull_data, validate_data
from pipelines.flows.deploy import reconcile_serving
from pipelines.retrain_form import retrain_form  # the DAG's form

LOGGER = logging.getLogger(__name__)
ASSET_TRIGGERED_RUN = "asset_triggered"  # Airflow 3's run type of a run an Asset event started
OVERRIDE_KEYS = (
    "task",
    "architectures",
    "epochs",
    "image_size",
    "batch_size",
    "learning_rate",
    "fine_tune_layers",
    "augment",
    "ensemble",
)
# The flow's front door: what the DAG file, its approval step and `mura train` use.
__all__ = [
    "APPROVE_TASK",
    "DATA_ASSET_URI",
    "DVC_POOL",
    "GPU_QUEUE",
    "RETRAIN_DAG",
    "RETRAIN_NEEDED_URI",
    "TASK_CHOICES",
    "DataVersion",
    "Evaluation",
    "GateVerdict",
    "Manifest",
    "Registration",
    "TrainResult",
    "Validation",
    "build_manifest",
    "pull_data",
    "validate_data",
    "retrain_form",
    "default_preset",
    "approval_default",
    "approval_choices",
    "approval_chooser",
    "approval_mode",
    "approval_timeout",
    "preset_choices",
    "train_evaluate_export",
]


def default_preset() -> str:
    """MURA_DEFAULT_PRESET (the DAG form's default preset)."""
    return get_settings().default_preset


def approval_default() -> str:
    """params.yaml gate.approval: the retrain form's default, so a DAG run follows it unless the form
    (or the conf) says otherwise."""
    from mura_core.config import load_config

    return load_config().gate.approval


def approval_choices() -> tuple[str, ...]:
    """The approvals the retrain form offers (auto only where params.yaml allows it)."""
    from mura_core.config import load_config

    return load_config().gate.approval_choices


def approval_chooser(conf: dict[str, Any], triggering_user: str | None) -> str:
    """Who chose the run's approval: the user who triggered it when the run's conf says (the form
    sends every field), else params.yaml's default."""
    if "approval" in conf or "auto_promote" in conf:
        return f"{triggering_user or 'an unnamed user'} (the run's approval field)"
    return "params.yaml gate.approval"


def approval_timeout() -> datetime.timedelta:
    """params.yaml gate.approval_timeout: how long the approval step waits for a reviewer."""
    from mura_core.config import duration_seconds, load_config

    text = load_config().gate.approval_timeout
    return datetime.timedelta(seconds=duration_seconds(text, "params.yaml gate.approval_timeout"))


def approval_mode(params: dict[str, Any], conf: dict[str, Any] | None = None) -> Approval:
    """The run's approval: the form's field (in `params`, its default filled in); a `conf` of an older
    client saying `auto_promote: true` and no approval means auto, `false` means off."""
    conf = conf or {}
    legacy = conf.get("auto_promote")
    if "approval" not in conf and legacy is not None:
        LOGGER.warning("conf auto_promote=%s is an old spelling: use approval=auto|off|required", legacy)
        return Approval.AUTO if legacy else Approval.OFF
    return Approval(params.get("approval") or approval_default())


def preset_choices() -> list[str]:
    """Preset names of params.yaml (the DAG form's choices)."""
    from mura_core.config import load_config

    return sorted(load_config().presets)


def retrain_preset(
    params: dict[str, Any], run_type: str | None = None, conf: dict[str, Any] | None = None
) -> str:
    """The preset a mura_retrain run trains.

    A preset named in the run's conf wins. A run the monitor started (its Asset: run type
    `asset_triggered`) with none trains params.yaml `monitor.retrain_preset`: its params hold only the
    form's default, which nobody chose for an automatic run (compose's is the five-DenseNet mura_paper).
    Any other run keeps the form's preset, else MURA_DEFAULT_PRESET.
    """
    chosen = (conf or {}).get("preset")
    if chosen:
        return str(chosen)
    if getattr(run_type, "value", run_type) == ASSET_TRIGGERED_RUN:  # a DagRunType enum or its value
        from mura_core.config import load_config

        preset = load_config().monitor.retrain_preset
        LOGGER.info(
            "this run was asked by the monitor (Asset %s) and names no preset: it trains preset %s "
            "(params.yaml monitor.retrain_preset)",
            RETRAIN_NEEDED_URI,
            preset,
        )
        return preset
    return str(params.get("preset") or get_settings().default_preset)


def plan_candidates(
    params: dict[str, Any],
    manifest: Manifest,
    validation: Validation,
    dag_run_id: str | None = None,
    run_type: str | None = None,
    conf: dict[str, Any] | None = None,
) -> list[Candidate]:
    """One training candidate per architecture, with the resolved config checked before any training.

    `run_type` and `conf` are the DAG run's: they decide the preset (`retrain_preset`).
    """
    configure_logging()
    overrides = {key: params[key] for key in OVERRIDE_KEYS if params.get(key) not in (None, "", [])}
    if isinstance(overrides.get("image_size"), int):
        overrides["image_size"] = [overrides["image_size"]] * 2
    return candidates_for(retrain_preset(params, run_type, conf), overrides, manifest, validation, dag_run_id)


def candidates_for(
    preset: str | None,
    overrides: dict[str, Any],
    manifest: Manifest,
    validation: Validation,
    dag_run_id: str | None = None,
) -> list[Candidate]:
    """One candidate per architecture (and per ensemble member) of the resolved config, checked
    before any training: the DAG's plan and `mura train`'s."""
    from pipelines.training import resolve_config

    config = resolve_config(preset, overrides)
    if not config.architectures:
        raise ConfigError("no architecture to train")
    return [
        Candidate(
            preset=config.preset,
            arch=arch,
            overrides=member_overrides(overrides, arch, config.seed, member, config.ensemble),
            manifest=manifest,
            validation=validation,
            dag_run_id=dag_run_id,
            member=member,
            ensemble=config.ensemble,
        )
        for arch in config.architectures
        for member in range(config.ensemble)
    ]


def member_overrides(overrides: dict[str, Any], arch: str, seed: int, member: int, members: int) -> dict:
    """The overrides training one architecture; an ensemble member gets its own seed (seed + member)."""
    if members == 1:
        return {**overrides, "architectures": [arch]}
    return {**overrides, "architectures": [arch], "seed": seed + member, "ensemble": 1}


def combine_members(trained: list[TrainResult]) -> list[TrainResult]:
    """One result per architecture: an ensemble's members averaged into one model (its own run)."""
    from pipelines.training import resolve_config

    configure_logging()
    combined = []
    for arch in dict.fromkeys(result.candidate.arch for result in trained):
        members = sorted((r for r in trained if r.candidate.arch == arch), key=lambda r: r.candidate.member)
        if len(members) == 1:
            combined.extend(members)
            continue
        from pipelines.training import combine_runs

        first = members[0].candidate
        config = resolve_config(first.preset, {k: v for k, v in first.overrides.items() if k != "seed"})
        run_id = combine_runs([member.run_id for member in members], config.flip_tta)
        combined.append(
            dataclasses.replace(
                members[0], run=dataclasses.replace(members[0].run, run_id=run_id, metrics={})
            )
        )
    return combined


def train_candidate(candidate: Candidate) -> TrainResult:
    """Train one candidate (one MLflow run) and record its data-validation result on the run."""
    from pipelines.training import train

    configure_logging()
    config = {"preset": candidate.preset, **candidate.overrides}
    tags = {"train.overrides": json.dumps(candidate.overrides, sort_keys=True)}
    if candidate.dag_run_id:
        tags["airflow.dag_run_id"] = candidate.dag_run_id
    run = train(config, candidate.manifest.path, candidate.manifest.data_root, extra_tags=tags)
    _tag_validation(run.run_id, candidate.validation)
    return TrainResult(candidate=candidate, run=run)


def _tag_validation(run_id: str, validation: Validation) -> None:
    from pipelines.tracking import connect

    client = connect()
    client.set_tag(run_id, VALIDATION_SUCCESS_TAG, str(validation.success))
    client.set_tag(run_id, "validation.docs", validation.data_docs or "unknown")


def evaluate_candidate(trained: TrainResult) -> Evaluation:
    """Study-level evaluation of one trained run on `valid`; its eval.* metrics."""
    from pipelines.evaluation import evaluate_run
    from pipelines.monitoring import record_reference

    configure_logging()
    manifest = trained.candidate.manifest
    result = evaluate_run(trained.run_id, data_root=manifest.data_root)
    record_reference(trained.run_id, manifest.data_root)  # what mura_monitor compares new releases with
    return Evaluation(
        trained=trained,
        metrics={
            key: value for key, value in result.metrics.items() if key.startswith(("eval.", "holdout.study_"))
        },
        table=result.table,
    )


def best_candidate(evaluated: list[Evaluation]) -> Evaluation:
    """The candidate with the highest holdout study kappa (a missing or undefined kappa ranks last)."""
    if not evaluated:
        raise ConfigError("no evaluated candidate to register")
    return max(evaluated, key=lambda candidate: candidate.selection_kappa)


def export_candidate(trained: TrainResult) -> Export:
    """Export the run's model as a TF Serving SavedModel under the run's `tf_serving/` artifacts."""
    from pipelines.export import export_run

    return export_run(trained.run_id)


def select_and_register(evaluated: list[Evaluation]) -> Registration:
    """Export the candidate with the best study-level kappa and register it (no alias yet).

    Safe to run twice (an Airflow retry): a run already registered keeps its version and its exported
    files (exporting again would change the bytes the version's hash was taken of).
    """
    from pipelines.registry import register_version, registered_version

    configure_logging()
    best = best_candidate(evaluated)
    if registered_version(best.trained.run_id, best.trained.model_name) is None:
        export_candidate(best.trained)
    registered = register_version(best.trained.run_id)
    ranking = {  # holdout study kappa per architecture; None where undefined (XCom is JSON)
        candidate.trained.candidate.arch: candidate.selection_kappa
        if candidate.selection_kappa > float("-inf")
        else None
        for candidate in evaluated
    }
    return dataclasses.replace(registered, candidates=ranking)


def gate(
    registration: Registration, approval: Approval, dag_run_id: str = "", chooser: str = ""
) -> GateVerdict:
    """Decide: judge the version against the floors and the champion, apply the promotion rule
    (`approval` auto: a passing version becomes champion, recorded as chosen by `chooser`; required:
    challenger, a reviewer decides). Auto where params.yaml does not allow it is a ConfigError."""
    from pipelines.registry import gate_version, record_auto

    configure_logging()
    verdict = gate_version(registration.model, registration.version, approval)
    if approval == Approval.AUTO and verdict.passed and CHAMPION in verdict.aliases:
        record_auto(verdict.model, verdict.version, chooser or "unknown", dag_run_id)
    return verdict


def approval_question(verdict: GateVerdict, dag_run_id: str):
    """The question for a reviewer (views.approval_question.ApprovalQuestion), or None when none is asked:
    approval is not required, the version failed the gate, or it holds no challenger alias (already
    champion: a retried gate, or promoted meanwhile)."""
    from pipelines.registry import settled
    from pipelines.views import question

    configure_logging()
    if verdict.approval != Approval.REQUIRED or not verdict.passed or CHALLENGER not in verdict.aliases:
        LOGGER.info(
            "%s v%s: no approval asked (approval %s, gate %s, aliases %s)",
            verdict.model,
            verdict.version,
            verdict.approval,
            verdict.status,
            verdict.aliases or "none",
        )
        return None
    reason = settled(verdict.model, verdict.version, dag_run_id)
    if reason is not None:
        LOGGER.info("%s v%s: no approval asked: %s", verdict.model, verdict.version, reason)
        return None
    return question(verdict.model, verdict.version, dag_run_id)


def approval_answer(
    verdict: GateVerdict, chosen: str | None, by: str | None, dag_run_id: str, asked_champion: int | None
) -> GateVerdict:
    """Act on the reviewer's answer (None: timed out) and record it; the verdict with the aliases the
    version holds now (what deploy then serves). The model card is written again to show the decision."""
    from pipelines.registry import decide, republish_card

    configure_logging()
    decide(verdict.model, verdict.version, chosen, by, dag_run_id, asked_champion)
    aliases, card = republish_card(verdict.model, verdict.version)
    return dataclasses.replace(verdict, aliases=aliases, card=card or verdict.card)


def deploy(verdict: GateVerdict) -> Deployment:
    """Act on the verdict: a passing version is reconciled into TF Serving; a failing one changes nothing."""
    configure_logging()
    if not verdict.passed:
        LOGGER.info(
            "%s v%s failed the gate (%s): serving unchanged", verdict.model, verdict.version, verdict.reason
        )
        return Deployment(
            verdict.model, verdict.version, deployed=False, reason=f"gate failed: {verdict.reason}"
        )
    reconciliation = reconcile_serving([verdict.model])
    aliases = ", ".join(verdict.aliases) or "no alias"
    return Deployment(
        verdict.model, verdict.version, True, f"gate passed ({aliases})", reconciliation=reconciliation
    )


def train_evaluate_export(
    preset: str | None,
    overrides: dict[str, Any],
    data_root: Path,
    manifest_path: Path | None = None,
    evaluate: bool = True,
) -> list[dict]:
    """`mura train`, in-process: the DAG's own steps (manifest, data gate, plan, train, combine an
    ensemble, evaluate) on every architecture, each exported; without selection and registration
    (`mura register RUN_ID`). The result of each architecture, as the CLI prints it."""
    manifest = local_manifest(data_root, manifest_path)
    candidates = candidates_for(preset, overrides, manifest, validate_data(manifest))
    trained = [train_candidate(candidate) for candidate in candidates]
    runs = []
    for result in combine_members(trained):
        members = [one.run_id for one in trained if one.candidate.arch == result.candidate.arch]
        evaluation = evaluate_candidate(result) if evaluate else None
        runs.append(
            {
                "arch": result.candidate.arch,
                "task": result.task,
                "model_name": result.model_name,
                "run_id": result.run_id,
                "members": members if len(members) > 1 else [],
                "metrics": evaluation.metrics if evaluation else result.metrics,
                "table": evaluation.table if evaluation else "",
                "export": export_candidate(result).to_xcom(),
            }
        )
    return runs
