"""`mura lineage`: one answer across MLflow, DVC, GX and Airflow to "where does this model come from,
and where is it now?", and the reverse: which versions were trained on a data revision.
"""

from __future__ import annotations

import re
from pathlib import Path

from mura_core.contracts import (
    APPROVAL_AT_TAG,
    APPROVAL_BY_TAG,
    APPROVAL_DECISION_TAG,
    APPROVAL_NOTE_TAG,
    APPROVAL_RUN_TAG,
    CHAMPION,
    GATE_CHAMPION_TAG,
    GATE_REASON_TAG,
    GATE_STATUS_TAG,
    STUDY_AUROC,
    STUDY_KAPPA,
    VALIDATION_SUCCESS_TAG,
    check_model_name,
    interval_names,
)
from mura_core.errors import ConfigError, RegistryError
from pipelines.deployment import registered_models
from pipelines.registry import HASH_TAG, UnreadableTag, alias_events, saved_model_digest, trusted_status
from pipelines.tracking import connect, get_registered, get_version, tracking_errors

SPEC = re.compile(r"^(?P<model>[^@/]+)(?:@(?P<alias>[A-Za-z0-9_-]+)|/(?P<version>\d+))?$")
PART_METRIC = re.compile(r"^eval\.(?P<part>[a-z]+)\.study_(?P<metric>kappa|auroc)$")


def parse_spec(spec: str) -> tuple[str, str | None, int | None]:
    """`MODEL`, `MODEL@alias` or `MODEL/version` -> (model, alias, version); MODEL alone means @champion."""
    match = SPEC.match(spec or "")
    if match is None:
        raise ConfigError(f"{spec!r}: write MODEL, MODEL@alias or MODEL/VERSION (e.g. mura_binary@champion)")
    model = check_model_name(match["model"])
    version = int(match["version"]) if match["version"] else None
    alias = match["alias"] or (None if version is not None else CHAMPION)
    return model, alias, version


def resolve_spec(client, spec: str) -> tuple[str, int]:
    """(model, version) that `MODEL`, `MODEL@alias` or `MODEL/version` names in the registry now."""
    model, alias, version = parse_spec(spec)
    if version is None:
        registered = get_registered(client, model)
        if alias not in registered.aliases:
            raise RegistryError(
                f"{model} has no alias {alias!r} (aliases: {dict(registered.aliases) or 'none'})"
            )
        version = int(registered.aliases[alias])
    get_version(client, model, version)  # a clear error when it does not exist
    return model, version


def _served(model: str, version: int, expected_hash: str | None) -> dict:
    """Labels of `version` in models.config and whether the files served hash to the registered hash."""
    from mura_core.settings import get_settings
    from serving import served_versions

    settings = get_settings()
    versions, labels = served_versions(model, settings.models_config_path)
    folder = settings.model_base_path / model / str(version)
    served = {
        "in_models_config": version in versions,
        "labels": sorted(label for label, number in labels.items() if number == version),
        "path": str(folder),
        "hash_matches": None,
    }
    if (folder / "saved_model.pb").is_file():
        served["hash_matches"] = saved_model_digest(folder) == expected_hash
    return served


def _per_part(metrics: dict[str, float]) -> dict[str, dict[str, float]]:
    table: dict[str, dict[str, float]] = {}
    for key, value in metrics.items():
        match = PART_METRIC.match(key)
        if match:
            table.setdefault(match["part"], {})[f"study_{match['metric']}"] = value
    return dict(sorted(table.items()))


def _evaluation(metrics: dict[str, float]) -> dict:
    """The version's evaluation: study kappa and AUROC with intervals, threshold, ECE, each part."""
    return {
        "study_kappa": metrics.get(STUDY_KAPPA),
        "study_kappa_ci": [metrics.get(name) for name in interval_names(STUDY_KAPPA)],
        "study_auroc": metrics.get(STUDY_AUROC),
        "study_auroc_ci": [metrics.get(name) for name in interval_names(STUDY_AUROC)],
        "threshold": metrics.get("eval.threshold"),
        "study_ece": metrics.get("eval.study_ece"),
        "holdout_study_kappa": metrics.get("holdout.study_kappa"),
        "per_part": _per_part(metrics),
    }


def _approval(tags: dict[str, str]) -> dict:
    """A reviewer's decision on the version (the approval step's tags)."""
    return {
        "decision": tags.get(APPROVAL_DECISION_TAG),
        "by": tags.get(APPROVAL_BY_TAG),
        "dag_run_id": tags.get(APPROVAL_RUN_TAG),
        "at": tags.get(APPROVAL_AT_TAG),
        "note": tags.get(APPROVAL_NOTE_TAG) or None,
    }


def _data(tags: dict[str, str], run_tags: dict[str, str]) -> dict:
    """The data the version was trained on (its lineage tags; the data root from the run)."""
    return {
        "md5": tags.get("data.md5", "unknown"),
        "versioned": tags.get("data.versioned", "unknown"),
        "dvc_md5": tags.get("data.dvc_md5", "unknown"),
        "data_dvc_commit": tags.get("data.rev", "unknown"),
        "manifest_hash": tags.get("data.manifest_hash", "unknown"),
        "root": run_tags.get("data.root", "unknown"),
    }


def _training(run_id: str, tags: dict[str, str], run) -> dict:
    """The training run: what it trained, from which preset and config, on which code."""
    run_tags = run.data.tags
    return {
        "run_id": run_id,
        "arch": tags.get("train.arch"),
        "task": tags.get("train.task"),
        "preset": run_tags.get("train.preset"),
        "overrides": run_tags.get("train.overrides"),
        "config": dict(run.data.params),
        "code_sha": tags.get("code.git_sha"),
        "code_dirty": tags.get("code.dirty", "unknown"),
    }


def version_lineage(spec: str, client=None) -> dict:
    """Everything recorded about one model version, from the data it read to where it serves now."""
    from mura_core.settings import get_settings

    client = client or connect()
    with tracking_errors(client, f"reading the lineage of {spec}"):
        model, version = resolve_spec(client, spec)
        registered = get_registered(client, model)
        found = get_version(client, model, version)
        tags, run = found.tags, client.get_run(found.run_id)
        run_tags, metrics = run.data.tags, run.data.metrics
        try:
            events = [event for event in alias_events(client, model) if event.get("version") == version]
        except UnreadableTag as error:  # the lineage still answers; the audit log's fault is shown
            events = [{"at": "?", "by": "?", "alias": "?", "version": version, "action": str(error)}]
    airflow_run = tags.get("airflow.dag_run_id") or run_tags.get("airflow.dag_run_id")
    settings = get_settings()
    gate_status, untrusted = trusted_status(model, found)
    return {
        "model": model,
        "version": version,
        "aliases": sorted(name for name, number in registered.aliases.items() if int(number) == version),
        "data": _data(tags, run_tags),
        "validation": {
            "success": tags.get(VALIDATION_SUCCESS_TAG, "unknown"),
            "docs": tags.get("validation.docs"),
        },
        "airflow": {
            "dag_run_id": airflow_run,
            "url": f"{settings.airflow_url.rstrip('/')}/dags/mura_retrain/runs/{airflow_run}"
            if airflow_run
            else None,
        },
        "training": _training(found.run_id, tags, run),
        "evaluation": _evaluation(metrics),
        "gate": {
            "status": gate_status,  # `unverified`: a `passed` the gate did not sign
            "reason": tags.get(GATE_REASON_TAG),
            "signature_problem": untrusted,
            "champion_version": tags.get(GATE_CHAMPION_TAG) or None,
            "forced_by": tags.get("promotion.forced_by"),
            "forced_reason": tags.get("promotion.forced_reason"),
        },
        "approval": _approval(tags),
        "alias_history": events,
        "serving": {
            "label": tags.get("serving.label"),
            "deployed_at": tags.get("serving.deployed_at"),
            "registered_hash": tags.get(HASH_TAG),
            **_served(model, version, tags.get(HASH_TAG)),
        },
    }


def data_md5_of(rev_or_md5: str, repo_root: Path | None = None) -> str:
    """A DVC folder md5 as given (`...dir`), or the one data.dvc named at git revision `rev`."""
    if rev_or_md5.endswith(".dir"):
        return rev_or_md5
    from mura_core.settings import get_settings
    from pipelines.data import pointer_at

    return str(pointer_at(Path(repo_root or get_settings().repo_root), rev_or_md5)[1]["md5"])


def versions_trained_on(rev_or_md5: str, client=None) -> dict:
    """Every registered `mura_*` version whose run read the data of `rev_or_md5`, and where each serves."""
    md5 = data_md5_of(rev_or_md5)
    client = client or connect()
    found = []
    with tracking_errors(client, f"searching versions trained on {md5}"):
        for registered in registered_models(client):  # every page, platform names only
            for version in client.search_model_versions(f"name='{registered.name}'"):
                if version.tags.get("data.md5") != md5:
                    continue
                number = int(version.version)
                found.append(
                    {
                        "model": registered.name,
                        "version": number,
                        "aliases": sorted(a for a, v in registered.aliases.items() if int(v) == number),
                        "served_label": version.tags.get("serving.label"),
                        "gate": version.tags.get(GATE_STATUS_TAG),
                        "run_id": version.run_id,
                    }
                )
    found.sort(key=lambda item: (item["model"], item["version"]))
    return {"data_md5": md5, "versions": found, "served": any(item["served_label"] for item in found)}
