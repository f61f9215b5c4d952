"""A reviewer's decision on a passing challenger, inside the retrain (mura_retrain's task `approve`).

The question itself is a read view (pipelines.views.approval_question); `decide` acts on the answer
through the same promotion code as `mura promote` and records who decided, in which DAG run, on the
version's tags (signed with the pipeline's key). An answer to a question gone stale (the champion moved in MLflow or by `mura promote` while it waited) is not acted
on: the step says what happened instead.
"""

from __future__ import annotations

import logging

from mura_core.contracts import (
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
from pipelines.registry.verdict import record_trusted, sign_record
from pipelines.tracking import connect, tracking_errors

LOGGER = logging.getLogger(__name__)


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
