"""The gate's verdict, signed: only the pipeline can write a verdict that a promotion or a deploy trusts.

The deployer account may tag versions (it records what it deployed), so a `gate.status=passed` tag
alone proves nothing. The gate signs its verdict (model, version, run, status, reason, the champion
it was compared with) with an Ed25519 key only the pipeline's processes hold; `mura promote` and the
approval step check it with the public half, and a verdict that does not verify counts as not passed:
only `--force`, recorded on the version, promotes it then. The verdict covers the SavedModel's content
hash too, so the deploy publishes only bytes the pipeline registered and gated, whatever the version's
tags or aliases say (a login that made a version of its own has no signature to show).

Keys (base64 of the raw 32-byte keys): MURA_GATE_SIGNING_KEY (secret: the pipeline only) and
MURA_GATE_VERIFY_KEY (public). Without them (the embedded stack) the signing key is
$MURA_HOME/secrets/gate_signing_key (0600, made at first use) and the verifying key is derived from it
or read from $MURA_HOME/gate_verify_key. `mura gate-key` makes a pair for compose's .env.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import json
import os
from dataclasses import dataclass
from pathlib import Path

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat

from mura_core.contracts import (
    GATE_CHAMPION_TAG,
    GATE_REASON_TAG,
    GATE_SIGNATURE_TAG,
    GATE_STATUS_TAG,
    PASSED,
    parse_version,
)
from mura_core.errors import ConfigError
from mura_core.private_files import read_private, write_private
from mura_core.settings import Settings, get_settings
from pipelines.registry.hashing import HASH_TAG

SIGNING_KEY_ENV = "MURA_GATE_SIGNING_KEY"
VERIFY_KEY_ENV = "MURA_GATE_VERIFY_KEY"
# Domain separation: a signature over a verdict can never be replayed as a signature over anything else.
# Version 2 added the content hash: a version-1 signature vouches for no bytes and verifies no more.
_CONTEXT = b"mura-gate-verdict/2\n"
UNVERIFIED = "unverified"  # what a `passed` tag counts as when its signature does not verify


@dataclass(frozen=True)
class Verdict:
    """What the gate decided about one registered version (the signed part of its tags)."""

    model: str
    version: int
    run_id: str
    status: str
    reason: str
    champion_version: int | None
    sha256: str = ""  # the SavedModel's content hash as registered (its HASH_TAG)

    def tags(self) -> dict[str, str]:
        """The version tags that record it (the signature apart)."""
        return {
            GATE_STATUS_TAG: self.status,
            GATE_REASON_TAG: self.reason,
            GATE_CHAMPION_TAG: str(self.champion_version or ""),
        }

    def message(self) -> bytes:
        """The canonical bytes that are signed."""
        body = {
            "model": self.model,
            "version": int(self.version),
            "run_id": self.run_id,
            "status": self.status,
            "reason": self.reason,
            "champion_version": str(self.champion_version or ""),
            "sha256": self.sha256,
        }
        return _CONTEXT + json.dumps(body, sort_keys=True, separators=(",", ":")).encode()

    @classmethod
    def of(cls, model: str, entry) -> Verdict:
        """The verdict an MLflow model version's tags state (signed or not)."""
        tags = entry.tags
        return cls(
            model=model,
            version=int(entry.version),
            run_id=entry.run_id or "",
            status=tags.get(GATE_STATUS_TAG, "unknown"),
            reason=tags.get(GATE_REASON_TAG, ""),
            champion_version=parse_version(tags.get(GATE_CHAMPION_TAG)),
            sha256=tags.get(HASH_TAG, ""),
        )


def _raw_public(key: Ed25519PublicKey) -> bytes:
    return key.public_bytes(Encoding.Raw, PublicFormat.Raw)


def key_id(key: Ed25519PublicKey) -> str:
    """A short name of a verifying key (in the signature tag: which key signed)."""
    return hashlib.sha256(_raw_public(key)).hexdigest()[:16]


def _decode(text: str, name: str) -> bytes:
    try:
        raw = base64.b64decode(text.strip(), validate=True)
    except (binascii.Error, ValueError):
        raw = b""
    if len(raw) != 32:
        raise ConfigError(f"{name} is not a base64 Ed25519 key of 32 bytes; make a pair with `mura gate-key`")
    return raw


def _encode(raw: bytes) -> str:
    return base64.b64encode(raw).decode()


def _signing_key_file(settings: Settings) -> Path:
    return settings.mura_home / "secrets" / "gate_signing_key"


def _verify_key_file(settings: Settings) -> Path:
    return settings.mura_home / "gate_verify_key"


def new_key_pair() -> tuple[str, str]:
    """(signing key, verifying key), each base64 of its raw 32 bytes."""
    private = Ed25519PrivateKey.generate()
    return _encode(private.private_bytes_raw()), _encode(_raw_public(private.public_key()))


def signing_key(settings: Settings | None = None, environ: dict[str, str] | None = None) -> Ed25519PrivateKey:
    """The pipeline's signing key: MURA_GATE_SIGNING_KEY, else the embedded stack's file (made once)."""
    env = os.environ if environ is None else environ
    if env.get(SIGNING_KEY_ENV):
        return Ed25519PrivateKey.from_private_bytes(_decode(env[SIGNING_KEY_ENV], SIGNING_KEY_ENV))
    settings = settings or get_settings(environ)
    path = _signing_key_file(settings)
    if not path.is_file():
        private, public = new_key_pair()
        write_private(path, private + "\n")
        _verify_key_file(settings).write_text(public + "\n", encoding="utf-8")
    return Ed25519PrivateKey.from_private_bytes(_decode(read_private(path), str(path)))


def verify_key(
    settings: Settings | None = None, environ: dict[str, str] | None = None
) -> Ed25519PublicKey | None:
    """The key verdicts are checked with: MURA_GATE_VERIFY_KEY, else the public half of
    MURA_GATE_SIGNING_KEY, else the embedded stack's public file or the public half of its signing key
    file; None when there is none (nothing verifies)."""
    env = os.environ if environ is None else environ
    if env.get(VERIFY_KEY_ENV):
        return Ed25519PublicKey.from_public_bytes(_decode(env[VERIFY_KEY_ENV], VERIFY_KEY_ENV))
    if env.get(SIGNING_KEY_ENV):  # the pipeline's own processes (the approval step)
        return signing_key(environ=environ).public_key()
    settings = settings or get_settings(environ)
    public_file, private_file = _verify_key_file(settings), _signing_key_file(settings)
    if public_file.is_file():
        return Ed25519PublicKey.from_public_bytes(_decode(public_file.read_text(), str(public_file)))
    if private_file.is_file():
        return signing_key(settings, environ={}).public_key()
    return None


def signature_of(verdict: Verdict, key: Ed25519PrivateKey) -> str:
    """The value of the signature tag: `<key id>:<base64 signature>`."""
    return f"{key_id(key.public_key())}:{_encode(key.sign(verdict.message()))}"


def record_verdict(client, verdict: Verdict, key: Ed25519PrivateKey | None = None) -> None:
    """Write the verdict's tags on its version, the signature last (a verdict cut short stays unsigned)."""
    key = key or signing_key()
    for name, value in verdict.tags().items():
        client.set_model_version_tag(verdict.model, str(verdict.version), name, value)
    client.set_model_version_tag(
        verdict.model, str(verdict.version), GATE_SIGNATURE_TAG, signature_of(verdict, key)
    )


def why_untrusted(verdict: Verdict, signature: str | None, key: Ed25519PublicKey | None) -> str | None:
    """None when `signature` is the gate's over exactly this verdict, else what is wrong with it."""
    if not signature:
        return "it carries no signature (gated before verdicts were signed, or its tags were written by hand)"
    if key is None:
        return f"this machine has no key to check it with (set {VERIFY_KEY_ENV})"
    signer, _, encoded = signature.partition(":")
    if signer != key_id(key):
        return f"it was signed with key {signer}, not with the trusted key {key_id(key)} ({VERIFY_KEY_ENV})"
    try:
        key.verify(base64.b64decode(encoded, validate=True), verdict.message())
    except (InvalidSignature, binascii.Error, ValueError):
        return "its gate tags were changed after the gate signed them"
    return None


def trusted_status(model: str, entry, key: Ed25519PublicKey | None = None) -> tuple[str, str | None]:
    """(status, why it is not trusted): a `passed` whose signature fails counts as `unverified`."""
    verdict = Verdict.of(model, entry)
    if verdict.status != PASSED:
        return verdict.status, None
    problem = why_untrusted(verdict, entry.tags.get(GATE_SIGNATURE_TAG), key or verify_key())
    return (UNVERIFIED, problem) if problem else (PASSED, None)


def _record_message(kind: str, fields: dict[str, str]) -> bytes:
    """Canonical bytes of another record the pipeline vouches for (its own domain: never a verdict)."""
    return f"mura-{kind}/1\n".encode() + json.dumps(fields, sort_keys=True, separators=(",", ":")).encode()


def sign_record(kind: str, fields: dict[str, str], key: Ed25519PrivateKey | None = None) -> str:
    """`<key id>:<base64 signature>` over `fields` as a record of `kind` (e.g. the approval's tags)."""
    key = key or signing_key()
    return f"{key_id(key.public_key())}:{_encode(key.sign(_record_message(kind, fields)))}"


def record_trusted(kind: str, fields: dict[str, str], signature: str | None) -> bool:
    """True when `signature` is the pipeline's over exactly these fields."""
    key = verify_key()
    signer, _, encoded = (signature or "").partition(":")
    if key is None or signer != key_id(key):
        return False
    try:
        key.verify(base64.b64decode(encoded, validate=True), _record_message(kind, fields))
    except (InvalidSignature, binascii.Error, ValueError):
        return False
    return True
