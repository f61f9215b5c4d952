"""The one place that assembles the pipeline: data -> manifest -> validation -> candidates -> training
-> evaluation -> selection and registration -> gate -> deployment.

The DAG tasks, the `mura train` command and the demo call these functions; each takes and returns
the typed results of pipelines.stages (dicts only at the XCom boundary, in the DAG files). Importing
this module is cheap (no TensorFlow, MLflow, GX or DVC): DAG files import it at parse time.
"""

from __future__ import annotations

import dataclasses
import datetime
import json
import logging
from pathlib import Path
from typing import Any

from pipelines.contracts import (
    APPROVE_TASK,
    CHALLENGER,
    CHAMPION,
    DATA_ASSET_URI,
    DEFAULT_CHAMPION,
    DEFAULT_MODEL,
    DEPLOY_DAG,
    DVC_POOL,
    EXTERNAL_DAG,
    GPU_QUEUE,
    MONITOR_DAG,
    PACS_DAG,
    RETRAIN_DAG,
    RETRAIN_NEEDED_URI,
    TASK_CHOICES,
    VALIDATION_SUCCESS_TAG,
)
from pipelines.errors import ConfigError, MuraError, NothingToMonitor
from pipelines.logs import configure_logging
from pipelines.retrain_form import retrain_form  # the DAG's form, for dags/
from pipelines.settings import get_settings
from pipelines.stages import (
    Candidate,
    DataVersion,
    Deployment,
    Evaluation,
    Export,
    GateVerdict,
    Manifest,
    MonitorCheck,
    Reconciliation,
    Registration,
    TrainResult,
    Validation,
)
from pipelines.training.architectures import ARCHITECTURE_CHOICES

LOGGER = logging.getLogger(__name__)
SITE_PATTERN = (
    "^[a-z0-9][a-z0-9_-]{0,47}$"  # the external validation form's site (pipelines/external/site.py)
)
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
# What the DAG files use: they import this module and nothing else of the platform.
__all__ = [
    "ARCHITECTURE_CHOICES",
    "DATA_ASSET_URI",
    "DEPLOY_DAG",
    "MONITOR_DAG",
    "NothingToMonitor",
    "RETRAIN_NEEDED_URI",
    "MonitorCheck",
    "DVC_POOL",
    "GPU_QUEUE",
    "RETRAIN_DAG",
    "APPROVE_TASK",
    "TASK_CHOICES",
    "Candidate",
    "DataVersion",
    "Evaluation",
    "GateVerdict",
    "Manifest",
    "Registration",
    "TrainResult",
    "Validation",
    "PACS_DAG",
    "EXTERNAL_DAG",
    "DEFAULT_CHAMPION",
    "SITE_PATTERN",
    "default_preset",
    "approval_default",
    "approval_choices",
    "approval_chooser",
    "preset_choices",
    "retrain_form",
]


def default_preset() -> str:
    """MURA_DEFAULT_PRESET (the DAG form's default preset)."""
    return get_settings().default_preset


def approval_default() -> str:
    """params.yaml gate.approval: the retrain form's default, so a DAG run follows it unless the form
    (or the conf) says otherwise."""
    from pipelines.config import load_config

    return load_config().gate.approval


def approval_choices() -> tuple[str, ...]:
    """The approvals the retrain form offers (auto only where params.yaml allows it)."""
    from pipelines.config import load_config

    return load_config().gate.approval_choices


def approval_chooser(conf: dict[str, Any], triggering_user: str | None) -> str:
    """Who chose the run's approval: the user who triggered it when the run's conf says (the form
    sends every field), else params.yaml's default."""
    if "approval" in conf or "auto_promote" in conf:
        return f"{triggering_user or 'an unnamed user'} (the run's approval field)"
    return "params.yaml gate.approval"


def approval_timeout() -> datetime.timedelta:
    """params.yaml gate.approval_timeout: how long the approval step waits for a reviewer."""
    from pipelines.config import duration_seconds, load_config

    text = load_config().gate.approval_timeout
    return datetime.timedelta(seconds=duration_seconds(text, "params.yaml gate.approval_timeout"))


def approval_mode(params: dict[str, Any], conf: dict[str, Any] | None = None) -> str:
    """The run's approval: the form's field (in `params`, its default filled in); a `conf` of an older
    client saying `auto_promote: true` and no approval means auto, `false` means off."""
    conf = conf or {}
    legacy = conf.get("auto_promote")
    if "approval" not in conf and legacy is not None:
        LOGGER.warning("conf auto_promote=%s is an old spelling: use approval=auto|off|required", legacy)
        return "auto" if legacy else "off"
    return str(params.get("approval") or approval_default())


def preset_choices() -> list[str]:
    """Preset names of params.yaml (the DAG form's choices)."""
    from pipelines.config import load_config

    return sorted(load_config().presets)


def pull_data(data_rev: str | None = None) -> DataVersion:
    """DVC pull of `data/` (at git revision `data_rev` of data.dvc when given); the data version."""
    from pipelines.data import dvc

    configure_logging()
    return dvc.pull(rev=data_rev or None)


def build_manifest(data_version: DataVersion, data_root: Path | None = None) -> Manifest:
    """Build and store the manifest of the data under `data_root` (default: the settings' data dir)."""
    from pipelines.data.manifest import build_manifest as build
    from pipelines.data.manifest import write_manifest

    configure_logging()
    settings = get_settings()
    root = Path(data_root) if data_root is not None else settings.data_dir
    result = build(root)
    name = data_version.dvc_md5.replace(".dir", "")
    path = write_manifest(result.frame, settings.mura_home / "manifests" / f"{name}.parquet")
    return Manifest(
        path=str(path),
        data_root=str(root),
        rows=len(result.frame),
        problems=result.problem_counts(),
        data_version=data_version,
    )


def validate_data(manifest: Manifest) -> Validation:
    """The GX gate on the manifest: raises DataValidationError (the summary) when the data is bad."""
    from pipelines.validation import validate_manifest_file

    configure_logging()
    version = manifest.data_version
    report = validate_manifest_file(
        Path(manifest.path),
        Path(manifest.data_root),
        data_version=f"dvc-{version.dvc_md5.removesuffix('.dir')}" if version and version.dvc_md5 else None,
    )
    LOGGER.info("%s", report.summary)
    return report


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
        from pipelines.config import load_config

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
    from pipelines.training.presets import resolve_config

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
    from pipelines.training.presets import resolve_config

    configure_logging()
    combined = []
    for arch in dict.fromkeys(result.candidate.arch for result in trained):
        members = sorted((r for r in trained if r.candidate.arch == arch), key=lambda r: r.candidate.member)
        if len(members) == 1:
            combined.extend(members)
            continue
        from pipelines.training.ensemble import combine_runs

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
    from pipelines.training.run import train

    configure_logging()
    config = {"preset": candidate.preset, **candidate.overrides}
    tags = {"train.overrides": json.dumps(candidate.overrides, sort_keys=True)}
    if candidate.dag_run_id:
        tags["airflow.dag_run_id"] = candidate.dag_run_id
    run = train(config, candidate.manifest.path, candidate.manifest.data_root, extra_tags=tags)
    _tag_validation(run.run_id, candidate.validation)
    return TrainResult(candidate=candidate, run=run)


def _tag_validation(run_id: str, validation: Validation) -> None:
    from pipelines.registry.tracking import connect

    client = connect()
    client.set_tag(run_id, VALIDATION_SUCCESS_TAG, str(validation.success))
    client.set_tag(run_id, "validation.docs", validation.data_docs or "unknown")


def evaluate_candidate(trained: TrainResult) -> Evaluation:
    """Study-level evaluation of one trained run on `valid`; its eval.* metrics."""
    from pipelines.evaluation import evaluate_run
    from pipelines.monitoring.reference import record_reference

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
    from pipelines.registry.registration import register_version, registered_version

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


def gate(registration: Registration, approval: str, dag_run_id: str = "", chooser: str = "") -> GateVerdict:
    """Decide: judge the version against the floors and the champion, apply the promotion rule
    (`approval` auto: a passing version becomes champion, recorded as chosen by `chooser`; required:
    challenger, a reviewer decides). Auto where params.yaml does not allow it is a ConfigError."""
    from pipelines.registry.approval import record_auto
    from pipelines.registry.registration import gate_version

    configure_logging()
    verdict = gate_version(
        registration.model,
        registration.version,
        auto_promote=approval == "auto",
        for_review=approval == "required",
    )
    if approval == "auto" and verdict.passed and CHAMPION in verdict.aliases:
        record_auto(verdict.model, verdict.version, chooser or "unknown", dag_run_id)
    return verdict


def approval_question(verdict: GateVerdict, approval: str, dag_run_id: str):
    """The question for a reviewer (registry.approval.ApprovalQuestion), or None when none is asked:
    approval is not required, the version failed the gate, or it holds no challenger alias (already
    champion: a retried gate, or promoted meanwhile)."""
    from pipelines.registry.approval import question, settled

    configure_logging()
    if approval != "required" or not verdict.passed or CHALLENGER not in verdict.aliases:
        LOGGER.info(
            "%s v%s: no approval asked (approval %s, gate %s, aliases %s)",
            verdict.model,
            verdict.version,
            approval,
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
    from pipelines.registry.approval import decide
    from pipelines.registry.registration import republish_card

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


def monitor(manifest: Manifest) -> MonitorCheck:
    """The monitor's checks on the pulled release (drift, live and shadow scoring, the retrain ask)."""
    import pandas as pd

    from pipelines.monitoring.check import run_monitor

    configure_logging()
    return run_monitor(
        Path(manifest.data_root), pd.read_parquet(manifest.path), data_md5=manifest.data_version.dvc_md5
    )


def reconcile_serving(models: list[str] | None = None) -> Reconciliation:
    """Make TF Serving equal to the registry aliases (champion -> stable, challenger -> canary)."""
    from pipelines.registry.reconciler import reconcile

    configure_logging()
    return reconcile(models=models)


def pacs_new_studies(model: str = DEFAULT_MODEL) -> list[str]:
    """StudyInstanceUIDs of the PACS without a report of the served champion ([] before any champion)."""
    from pipelines.config import load_config
    from pipelines.pacs.client import PacsClient
    from pipelines.pacs.inference import new_studies, read_refusals, served_version
    from serving.client import ServingClient
    from serving.errors import ServingClientError

    configure_logging()
    settings = get_settings()
    with ServingClient() as serving:
        try:
            version = served_version(serving, model)
            refused = read_refusals(settings.mura_home, model, version)
            overlays = load_config().pacs.overlays
            return new_studies(PacsClient(settings), model, version, frozenset(refused), overlays)
        except ServingClientError as error:
            if error.code not in ("NOT_FOUND", "UNAVAILABLE"):
                raise
            LOGGER.info("no champion of %s serves yet (%s): nothing to answer", model, error)
            return []


def pacs_answer_studies(study_uids: list[str], model: str = DEFAULT_MODEL) -> dict:
    """Each study answered and its report stored (once per model version). A study that fails is
    logged with its UID and the others go on; the task then fails naming them (a retry redoes only
    those: the others hold their report)."""
    from pipelines.config import load_config
    from pipelines.dicom.pixels import limit_decode_memory
    from pipelines.pacs.client import PacsClient
    from pipelines.pacs.inference import answer_study
    from serving.client import ServingClient

    configure_logging()
    limit_decode_memory()  # a file that makes a decoder allocate gigabytes is refused, not the batch killed
    settings = get_settings()
    pacs, outcome, failed = PacsClient(settings), {"answered": 0, "already": 0, "refused": 0}, []
    overlays = load_config().pacs.overlays
    refused: dict[str, str] = {}
    with ServingClient() as serving:
        for uid in study_uids:
            try:
                result = answer_study(pacs, serving, uid, model, skip_reported=True, overlays=overlays)
            except MuraError as error:  # ServingClientError and PacsError among them: tried again
                LOGGER.error("study %s failed: %s", uid, error)
                failed.append(uid)
                continue
            except (Exception, RecursionError) as error:  # noqa: BLE001 - the study's content: its own
                # Named by kind only: the message of an error met inside a file may quote its values.
                LOGGER.error("study %s refused: %s while reading it", uid, type(error).__name__)
                result = {"status": "refused", "reason": f"{type(error).__name__} while reading the study"}
            outcome[result["status"]] += 1
            if result["status"] == "refused":
                refused[uid] = result["reason"]
        if refused:
            from pipelines.pacs.inference import record_refusals, served_version

            record_refusals(settings.mura_home, model, served_version(serving, model), refused)
    if failed:
        raise MuraError(
            f"{len(failed)} of {len(study_uids)} studies failed (their UIDs are in the log above): {', '.join(failed)}"
        )
    return {**outcome, "studies": len(study_uids)}


def local_manifest(data_root: Path, manifest_path: Path | None = None) -> Manifest:
    """`mura train`'s manifest step: the manifest given, or one built from `data_root` and stored as the
    DAG stores its own (under MURA_HOME/manifests, named by its content). A local folder has no DVC
    version: training tags the data's own lineage."""
    from pipelines.data.manifest import build_manifest as build
    from pipelines.data.manifest import manifest_hash, read_manifest, write_manifest

    configure_logging()
    if manifest_path is not None:
        frame, problems, path = read_manifest(manifest_path), {}, Path(manifest_path)
    else:
        result = build(data_root)
        frame, problems = result.frame, result.problem_counts()
        path = write_manifest(
            frame, get_settings().mura_home / "manifests" / f"local-{manifest_hash(frame)}.parquet"
        )
    unversioned = DataVersion(dvc_md5="", rev="", data_rev="")
    return Manifest(str(path), str(data_root), len(frame), problems, unversioned)


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


def external_gate(site: str) -> dict:
    """The data gate's verdict on the site's release as it is now (run when not recorded); fails the
    task when it failed, so the site is not evaluated."""
    from pipelines.external.site import site as site_of
    from pipelines.external.validate import gated_release

    configure_logging()
    found = site_of(site)
    data, gate = gated_release(found)
    return {
        "site": found.name,
        "data_md5": data["md5"],
        "images": gate.get("rows"),
        "studies": gate.get("studies"),
    }


def external_validate(site: str, model: str, recalibrate: bool, register: bool = False) -> dict:
    """Measure `model` on the site's release; the headline numbers and where the report is (no study
    of the site is named in XCom)."""
    from pipelines.external.validate import validate_site

    configure_logging()
    result = validate_site(site, model, recalibrate, register)
    overall = result["comparison"][-1]
    return {
        "site": result["site"],
        "model": result["model"],
        "version": result["version"],
        "data_md5": result["data"]["md5"],
        "study_kappa": overall["kappa"]["site"],
        "study_kappa_ci": overall["kappa"]["site_ci"],
        "valid_study_kappa": overall["kappa"]["valid"],
        "drop_significant": result["drop_significant"],
        "drift": result["drift"]["detected"],
        "mlflow_run_id": result["mlflow_run_id"],
        "report": result["report"],
        "registered_version": (result.get("registered") or {}).get("version"),
    }
