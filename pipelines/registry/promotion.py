"""Moving aliases: the promotion rule after the gate, `mura promote`, `mura rollback`, champion history.

`champion` is what serves under `stable`; moving it (here, in the MLflow UI or through the API) is how
a model goes live. The registered model's `champion.history` tag lists past champions, newest last.
"""

from __future__ import annotations

import getpass
import json
import logging
import os
from datetime import UTC, datetime
from typing import NoReturn

from mura_core.contracts import CHALLENGER, CHAMPION, GATE_REASON_TAG, PASSED, Approval
from mura_core.errors import RegistryError
from pipelines.registry.verdict import trusted_status
from pipelines.tracking import (
    check_alias_name,
    connect,
    get_registered,
    get_version,
    tracking_errors,
)

HISTORY_TAG = "champion.history"
EVENTS_TAG = "alias.events"  # JSON list of {alias, version, action, by, at}, newest last
MAX_EVENTS = 40  # MLflow caps tag values; older events move to archive tags
LOGGER = logging.getLogger(__name__)


def actor() -> str:
    """Who is acting: the MLflow account when one is configured, else the operating-system user."""
    return os.environ.get("MLFLOW_TRACKING_USERNAME") or getpass.getuser()


class UnreadableTag(RegistryError):
    """A registered-model tag that should hold a JSON list holds something else."""


def read_list(client, model_name: str, tag: str) -> list:
    """The JSON list in a registered model's tag ([] when unset); UnreadableTag when it is not one."""
    raw = client.get_registered_model(model_name).tags.get(tag)
    if raw is None:
        return []
    try:
        value = json.loads(raw)
    except ValueError:
        value = None
    if not isinstance(value, list):
        raise UnreadableTag(
            f"{model_name}: tag {tag}={raw[:80]!r} is not a JSON list (edited by hand?); "
            "the next alias move keeps it under a tag of its own and starts a new list"
        )
    return value


def _writable_list(client, model_name: str, tag: str, item=None) -> tuple[list, str | None]:
    """The tag's list before appending to it. An unreadable value (or a list whose items `item` refuses)
    is never overwritten: it is kept under `<tag>.unreadable.<UTC time>` and the list starts again;
    returns (list, that tag or None)."""
    try:
        values = read_list(client, model_name, tag)
        if item is None:
            return values, None
        try:
            return [item(value) for value in values], None
        except (ValueError, TypeError):
            raise UnreadableTag(f"{model_name}: tag {tag} holds a list of something else") from None
    except UnreadableTag as error:
        kept = f"{tag}.unreadable.{datetime.now(UTC):%Y%m%dT%H%M%S%fZ}"
        raw = client.get_registered_model(model_name).tags[tag]
        client.set_registered_model_tag(model_name, kept, raw)
        LOGGER.warning("%s; kept it in tag %s", error, kept)
        return [], kept


def alias_events(client, model_name: str) -> list[dict]:
    """The recorded alias moves of a model (who moved which alias to which version, when), oldest first
    (the newest MAX_EVENTS; older ones are in `alias.events.archive.<UTC time>` tags)."""
    return read_list(client, model_name, EVENTS_TAG)


def record_alias_event(client, model_name: str, alias: str, version: int, action: str) -> None:
    """Append one alias move to the model's event log; nothing already in it is ever lost."""
    events, kept = _writable_list(client, model_name, EVENTS_TAG)
    if kept:
        events.append(
            {"alias": alias, "version": int(version), "by": actor(), "at": now_utc(),
             "action": f"log restarted: the earlier {EVENTS_TAG} was unreadable and is kept in tag {kept}"}
        )  # fmt: skip
    events.append({"alias": alias, "version": int(version), "action": action, "by": actor(), "at": now_utc()})
    if len(events) > MAX_EVENTS:  # MLflow caps a tag's length: the oldest half moves to an archive tag
        archived, events = events[: MAX_EVENTS // 2], events[MAX_EVENTS // 2 :]
        stamp = f"{datetime.now(UTC):%Y%m%dT%H%M%S%fZ}"  # sorts by time; no count to collide on
        client.set_registered_model_tag(model_name, f"{EVENTS_TAG}.archive.{stamp}", json.dumps(archived))
    client.set_registered_model_tag(model_name, EVENTS_TAG, json.dumps(events))


def now_utc() -> str:
    """The current UTC time in ISO 8601 (seconds), as recorded in tags."""
    return datetime.now(UTC).replace(microsecond=0).isoformat()


def champion_history(client, model_name: str) -> list[int]:
    """Past and present champions of a model, oldest first (the `champion.history` tag)."""
    try:
        return [int(version) for version in read_list(client, model_name, HISTORY_TAG)]
    except (ValueError, TypeError) as error:
        raise UnreadableTag(f"{model_name}: tag {HISTORY_TAG} holds something other than versions") from error


def sync_history(client, model_name: str) -> list[int]:
    """Append the current champion to the history when it was moved elsewhere (e.g. the MLflow UI).
    An unreadable history is kept under a tag of its own and a new one starts (promotions and the
    reconciler go on; only a rollback needs the old one)."""
    history, kept = _writable_list(client, model_name, HISTORY_TAG, item=int)
    if kept:
        client.set_registered_model_tag(model_name, HISTORY_TAG, json.dumps(history))
    current = client.get_registered_model(model_name).aliases.get(CHAMPION)
    if current is not None and (not history or history[-1] != int(current)):
        history.append(int(current))
        client.set_registered_model_tag(model_name, HISTORY_TAG, json.dumps(history))
    return history


def _make_champion(client, model_name: str, version: int, action: str = "promote") -> None:
    sync_history(client, model_name)
    client.set_registered_model_alias(model_name, CHAMPION, str(version))
    aliases = client.get_registered_model(model_name).aliases
    if aliases.get(CHALLENGER) == str(version):
        # The challenger went live: serving it also as canary would only duplicate stable.
        client.delete_registered_model_alias(model_name, CHALLENGER)
    sync_history(client, model_name)
    client.set_model_version_tag(model_name, str(version), "promotion.champion_at", now_utc())
    record_alias_event(client, model_name, CHAMPION, version, action)


def apply_promotion_rule(
    client, model_name: str, version: int, passed: bool, approval: Approval = Approval.OFF
) -> list[str]:
    """The promotion rule: first passing version -> champion; later ones -> challenger (champion with
    approval auto). Approval required (a reviewer decides next): challenger, the first passing too."""
    auto_promote, for_review = approval == Approval.AUTO, approval == Approval.REQUIRED
    if not passed:
        return []
    aliases = client.get_registered_model(model_name).aliases
    if aliases.get(CHAMPION) == str(version):  # applied already (a retried gate): the champion stays
        return [CHAMPION]
    if aliases.get(CHALLENGER) == str(version) and not auto_promote:
        return [CHALLENGER]
    if aliases.get(CHAMPION) is None and not for_review:
        _make_champion(client, model_name, version, "gate: first passing version")
        return [CHAMPION]
    if auto_promote:
        _make_champion(client, model_name, version, "gate: auto-promote")
        return [CHAMPION]
    client.set_registered_model_alias(model_name, CHALLENGER, str(version))
    action = "gate: passing challenger" + (", a reviewer decides" if for_review else "")
    record_alias_event(client, model_name, CHALLENGER, version, action)
    return [CHALLENGER]


def _refuse_ungated(
    model_name: str, version: int, model_version, status: str, untrusted: str | None
) -> NoReturn:
    """RegistryError for promoting a version without a trusted passing verdict (and no --force)."""
    if untrusted:
        raise RegistryError(
            f"{model_name} v{version}: its gate.status says passed, but {untrusted}. Only the "
            "gate writes a verdict a promotion trusts; pass --force to promote it anyway "
            "(recorded on the version)"
        )
    reason = model_version.tags.get(GATE_REASON_TAG, "no gate verdict recorded")
    raise RegistryError(
        f"{model_name} v{version} did not pass the gate ({status}: {reason}); "
        "pass --force to promote it anyway (recorded on the version)"
    )


def _tag_forced(client, model_name: str, version: int, alias: str, reason: str | None) -> None:
    """Record on the version that it was forced under `alias`: when, by whom and why."""
    for key, value in (
        ("promotion.forced", "true"),
        ("promotion.forced_at", now_utc()),
        ("promotion.forced_by", actor()),
        ("promotion.forced_alias", alias),
        ("promotion.forced_reason", reason or "none given"),
    ):
        client.set_model_version_tag(model_name, str(version), key, value)


def promote(
    model_name: str,
    version: int,
    alias: str = CHAMPION,
    force: bool = False,
    client=None,
    reason: str | None = None,
    action: str | None = None,
) -> dict:
    """Point `alias` (default champion) at `version`; a version that failed the gate needs `force`.
    `action`: what the audit log says moved it (default `promote`; the approval step names its reviewer)."""
    check_alias_name(alias)
    client = client or connect()
    with tracking_errors(client, f"promoting {model_name} v{version}"):
        model_version = get_version(client, model_name, version)
        status, untrusted = trusted_status(model_name, model_version)
        previous = client.get_registered_model(model_name).aliases.get(alias)
        if status != PASSED and not force:
            _refuse_ungated(model_name, version, model_version, status, untrusted)
        if previous == str(version):
            return {
                "model": model_name,
                "version": int(version),
                "alias": alias,
                "previous": int(previous),
                "changed": False,
                "forced": False,
            }
        if status != PASSED:
            _tag_forced(client, model_name, version, alias, reason)
        action = (action or "promote") + (" --force" if status != PASSED else "")
        if alias == CHAMPION:
            _make_champion(client, model_name, int(version), action)
        else:
            client.set_registered_model_alias(model_name, alias, str(version))
            record_alias_event(client, model_name, alias, int(version), action)
    return {
        "model": model_name,
        "version": int(version),
        "alias": alias,
        "previous": int(previous) if previous is not None else None,
        "changed": True,
        "forced": status != PASSED,
    }


def rollback(model_name: str, client=None) -> dict:
    """Move `champion` back to the previous champion in the history."""
    client = client or connect()
    with tracking_errors(client, f"rolling back {model_name}"):
        registered = get_registered(client, model_name)
        current = registered.aliases.get(CHAMPION)
        if current is None:
            raise RegistryError(f"{model_name} has no champion to roll back; promote a version first")
        try:
            champion_history(client, model_name)
        except UnreadableTag as error:  # it cannot say where to go back to
            raise RegistryError(
                f"{error}; promote the version to go back to: mura promote MODEL VERSION"
            ) from None
        history = sync_history(client, model_name)
        if len(history) < 2:
            raise RegistryError(f"{model_name}: no earlier champion to roll back to (history {history})")
        history.pop()
        previous = history[-1]
        get_version(client, model_name, previous)
        client.set_registered_model_alias(model_name, CHAMPION, str(previous))
        client.set_registered_model_tag(model_name, HISTORY_TAG, json.dumps(history))
        client.set_model_version_tag(model_name, str(current), "promotion.rolled_back_at", now_utc())
        client.set_model_version_tag(model_name, str(previous), "promotion.champion_at", now_utc())
        record_alias_event(client, model_name, CHAMPION, previous, f"rollback from v{current}")
    return {"model": model_name, "champion": previous, "rolled_back_from": int(current), "history": history}
