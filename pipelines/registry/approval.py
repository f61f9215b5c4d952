"""A reviewer's decision on a passing challenger, inside the retrain (mura_retrain's task `approve`).

`question` gathers the evidence a reviewer decides on (the paired comparison with the champion, each
body part that moved, the data version and its validation, links to the card, the version and the
Data Docs) as Markdown for the Airflow UI; `decide` acts on the answer through the same promotion code
as `mura promote` and records who decided, in which DAG run, on the version's tags. An answer to a
question gone stale (the champion moved in MLflow or by `mura promote` while it waited) is not acted
on: the step says what happened instead.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

from pipelines.contracts import (
    APPROVAL_AT_TAG,
    APPROVAL_BY_TAG,
    APPROVAL_DECISION_TAG,
    APPROVAL_NOTE_TAG,
    APPROVAL_RUN_TAG,
    APPROVAL_SIGNATURE_TAG,
    CHALLENGER,
    CHAMPION,
    PROMOTE_OPTION,
)
from pipelines.registry.promotion import now_utc, promote
from pipelines.registry.tracking import connect, tracking_errors
from pipelines.registry.verdict import record_trusted, sign_record

LOGGER = logging.getLogger(__name__)
PART_MOVE = 0.05  # a body part's study kappa that moved at least this much is named in the question


@dataclass(frozen=True)
class ApprovalQuestion:
    """What the approval step asks, and the champion it was asked against."""

    subject: str
    body: str
    champion: int | None  # an answer is acted on only while this is still the champion


def _interval(section: dict, name: str) -> str:
    value, (low, high) = section.get(name), section.get(f"{name}_ci") or (None, None)
    if value is None:
        return "n/a"
    return f"{value:.3f} [{low:.3f}, {high:.3f}]" if low is not None and high is not None else f"{value:.3f}"


def _moved_parts(challenger: dict, champion: dict | None) -> list[str]:
    """Body parts whose study kappa moved by PART_MOVE or more against the champion."""
    if champion is None:
        return []
    lines = []
    ours, theirs = challenger["evaluation"]["per_part"], champion["evaluation"]["per_part"]
    for part in sorted(set(ours) & set(theirs)):
        new, old = ours[part].get("study_kappa"), theirs[part].get("study_kappa")
        if new is not None and old is not None and abs(new - old) >= PART_MOVE:
            lines.append(f"- {part}: study kappa {old:.3f} -> {new:.3f} ({new - old:+.3f})")
    return lines


def question(model: str, version: int, dag_run_id: str, client=None) -> ApprovalQuestion:
    """The question about `version` (a passing challenger): subject, Markdown body, current champion."""
    from pipelines.registry.lineage import version_lineage
    from pipelines.settings import get_settings

    client = client or connect()
    with tracking_errors(client, f"asking about {model} v{version}"):
        aliases = client.get_registered_model(model).aliases
        champion = int(aliases[CHAMPION]) if CHAMPION in aliases else None
    ours = version_lineage(f"{model}/{version}", client)
    theirs = version_lineage(f"{model}/{champion}", client) if champion is not None else None
    ui = get_settings().mlflow_tracking_uri.rstrip("/")
    rows = [
        "| | study kappa [95 % CI] | study AUROC [95 % CI] |",
        "|---|---|---|",
        f"| **v{version}** (this version) | {_interval(ours['evaluation'], 'study_kappa')} | "
        f"{_interval(ours['evaluation'], 'study_auroc')} |",
    ]
    if theirs is not None:
        rows.append(
            f"| v{champion} (champion) | {_interval(theirs['evaluation'], 'study_kappa')} | "
            f"{_interval(theirs['evaluation'], 'study_auroc')} |"
        )
    moved = _moved_parts(ours, theirs) or ["- none by 0.05 or more" if theirs else "- no champion to compare"]
    docs = ours["validation"]["docs"]
    body = "\n".join(
        [
            f"### {model} v{version} passed the gate; promote it to champion?",
            "",
            *rows,
            "",
            f"**Gate:** {ours['gate']['reason']}",  # the reason starts with the verdict
            "",
            "**Body parts that moved:**",
            *moved,
            "",
            f"**Data:** version {ours['data']['md5']} (data.dvc at {ours['data']['data_dvc_commit']}); "
            f"Great Expectations: {ours['validation']['success']}",
            "",
            f"**Links:** [MLflow version]({ui}/#/models/{model}/versions/{version}) · model card: "
            f"`mura card {model}/{version}` · Data Docs: {docs or 'not recorded'}",
            "",
            f"*{PROMOTE_OPTION}* moves `champion` to v{version} (serving follows); *Keep as challenger* "
            "changes nothing. Either answer is recorded on the version with your name and this run.",
        ]
    )
    subject = f"Promote {model} v{version} to champion?"
    if champion is not None:
        subject += f" (champion now v{champion})"
    return ApprovalQuestion(subject=subject, body=body, champion=champion)


def settled(model: str, version: int, dag_run_id: str, client=None) -> str | None:
    """Why no question is asked (again): this run recorded a decision already (a retried step), or
    `version` is champion already (someone promoted it meanwhile), which is then recorded."""
    client = client or connect()
    with tracking_errors(client, f"reading {model} v{version}"):
        tags = client.get_model_version(model, str(version)).tags
        if tags.get(APPROVAL_RUN_TAG) == dag_run_id and tags.get(APPROVAL_DECISION_TAG):
            if record_trusted(APPROVAL_RECORD, _approval_fields(tags), tags.get(APPROVAL_SIGNATURE_TAG)):
                return (
                    f"this run decided already: {tags[APPROVAL_DECISION_TAG]} by {tags.get(APPROVAL_BY_TAG)}"
                )
            # Another account may write version tags (the deployer): a decision the pipeline did not
            # sign is no decision, and the question is asked.
            LOGGER.warning("%s v%s: an approval record not signed by the pipeline is ignored", model, version)
        if client.get_registered_model(model).aliases.get(CHAMPION) != str(version):
            return None
        reason = f"v{version} is champion already"
        record(client, model, version, "promote", "nobody (asked)", dag_run_id, f"not asked: {reason}")
    return reason


APPROVAL_RECORD = "approval"  # the signed record's kind (pipelines.registry.verdict.sign_record)
APPROVAL_FIELDS = (
    APPROVAL_DECISION_TAG,
    APPROVAL_BY_TAG,
    APPROVAL_RUN_TAG,
    APPROVAL_AT_TAG,
    APPROVAL_NOTE_TAG,
)


def _approval_fields(tags: dict[str, str]) -> dict[str, str]:
    return {name: tags.get(name, "") for name in APPROVAL_FIELDS}


def record(client, model: str, version: int, decision: str, by: str, dag_run_id: str, note: str = "") -> None:
    """The decision on the version's tags (what `mura lineage` and the model card show), signed last
    with the pipeline's key: the record is as trustworthy as the gate's verdict."""
    fields = {
        APPROVAL_DECISION_TAG: decision,
        APPROVAL_BY_TAG: by,
        APPROVAL_RUN_TAG: dag_run_id,
        APPROVAL_AT_TAG: now_utc(),
        APPROVAL_NOTE_TAG: note,
    }
    for key, value in fields.items():
        client.set_model_version_tag(model, str(version), key, value)
    client.set_model_version_tag(
        model, str(version), APPROVAL_SIGNATURE_TAG, sign_record(APPROVAL_RECORD, fields)
    )


def record_auto(model: str, version: int, chooser: str, dag_run_id: str, client=None) -> None:
    """Record that `version` became champion with approval auto (no reviewer asked) and who chose it."""
    client = client or connect()
    note = "approval auto: no reviewer was asked (params.yaml gate.allow_auto_approval)"
    with tracking_errors(client, f"recording the approval of {model} v{version}"):
        record(client, model, version, "promote", chooser, dag_run_id, note)
    LOGGER.info(
        "%s v%s: champion with approval auto, chosen by %s in %s", model, version, chooser, dag_run_id
    )


def stale(model: str, version: int, asked_champion: int | None, client=None) -> str | None:
    """Why a question about `version` no longer stands (the champion moved since it was asked), or None."""
    client = client or connect()
    with tracking_errors(client, f"reading the aliases of {model}"):
        aliases = client.get_registered_model(model).aliases
    champion = int(aliases[CHAMPION]) if CHAMPION in aliases else None
    if champion == int(version):
        return f"v{version} became champion outside the approval (MLflow UI or `mura promote`)"
    if champion != asked_champion:
        now = f"moved to v{champion}" if champion is not None else "alias was removed"
        return f"the champion {now} while the question waited (asked against v{asked_champion})"
    if aliases.get(CHALLENGER) not in (None, str(version)):
        return f"v{aliases[CHALLENGER]} became challenger while the question waited"
    return None


def decide(
    model: str,
    version: int,
    chosen: str | None,
    by: str | None,
    dag_run_id: str,
    asked_champion: int | None,
    client=None,
) -> dict:
    """Act on an answer (`chosen` None: the question timed out): promote through `mura promote`'s code,
    or keep; a stale question is not acted on. The decision is recorded on the version either way."""
    client = client or connect()
    reason = stale(model, version, asked_champion, client)
    if reason is not None:
        decision = "promote" if reason.startswith(f"v{version} became champion") else "keep"
        note = f"not acted on: {reason}"
    elif chosen is None:
        decision, note = "timeout", "no answer in time: the version stays challenger"
    elif chosen == PROMOTE_OPTION:
        decision, note = "promote", ""
        promote(model, version, client=client, action=f"approved by {by} (Airflow run {dag_run_id})")
    else:
        decision, note = "keep", ""
    who = by or "nobody (timeout)"
    with tracking_errors(client, f"recording the approval of {model} v{version}"):
        record(client, model, version, decision, who, dag_run_id, note)
    LOGGER.info("%s v%s: approval %s by %s in %s %s", model, version, decision, who, dag_run_id, note)
    return {"decision": decision, "by": who, "note": note}
