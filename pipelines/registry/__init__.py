"""Registry decisions: register a run's SavedModel as a version, gate it against the floors and the
champion (the signed verdict), apply the promotion rule, move aliases (`mura promote`, rollback) and
act on a reviewer's approval. The tracking server lives in `pipelines.tracking`, serving in
`pipelines.deployment`, what people read in `pipelines.views` and `pipelines.cards`."""

from __future__ import annotations

from typing import TYPE_CHECKING

from mura_core.doors import open_door

if TYPE_CHECKING:
    from pipelines.registry.approval import decide as decide
    from pipelines.registry.approval import record_auto as record_auto
    from pipelines.registry.approval import settled as settled
    from pipelines.registry.approval import stale as stale
    from pipelines.registry.hashing import HASH_TAG as HASH_TAG
    from pipelines.registry.hashing import saved_model_digest as saved_model_digest
    from pipelines.registry.hashing import verify_digest as verify_digest
    from pipelines.registry.promotion import UnreadableTag as UnreadableTag
    from pipelines.registry.promotion import alias_events as alias_events
    from pipelines.registry.promotion import now_utc as now_utc
    from pipelines.registry.promotion import promote as promote
    from pipelines.registry.promotion import rollback as rollback
    from pipelines.registry.promotion import sync_history as sync_history
    from pipelines.registry.registration import gate_version as gate_version
    from pipelines.registry.registration import register_run as register_run
    from pipelines.registry.registration import register_version as register_version
    from pipelines.registry.registration import registered_version as registered_version
    from pipelines.registry.registration import republish_card as republish_card
    from pipelines.registry.verdict import SIGNING_KEY_ENV as SIGNING_KEY_ENV
    from pipelines.registry.verdict import VERIFY_KEY_ENV as VERIFY_KEY_ENV
    from pipelines.registry.verdict import Verdict as Verdict
    from pipelines.registry.verdict import new_key_pair as new_key_pair
    from pipelines.registry.verdict import trusted_status as trusted_status
    from pipelines.registry.verdict import verify_key as verify_key
    from pipelines.registry.verdict import why_untrusted as why_untrusted

# The front door: what other rooms may use, by the module of the room that defines it (loaded on
# first use, so importing the room stays cheap).
__all__, __getattr__ = open_door(
    __name__,
    {
        "HASH_TAG": "hashing",
        "SIGNING_KEY_ENV": "verdict",
        "UnreadableTag": "promotion",
        "VERIFY_KEY_ENV": "verdict",
        "Verdict": "verdict",
        "alias_events": "promotion",
        "decide": "approval",
        "gate_version": "registration",
        "new_key_pair": "verdict",
        "now_utc": "promotion",
        "promote": "promotion",
        "record_auto": "approval",
        "register_run": "registration",
        "register_version": "registration",
        "registered_version": "registration",
        "republish_card": "registration",
        "rollback": "promotion",
        "saved_model_digest": "hashing",
        "settled": "approval",
        "stale": "approval",
        "sync_history": "promotion",
        "trusted_status": "verdict",
        "verify_digest": "hashing",
        "verify_key": "verdict",
        "why_untrusted": "verdict",
    },
)
