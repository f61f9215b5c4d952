"""The gate's signed verdict: only the key's holder can write one that a promotion trusts."""

from __future__ import annotations

import json
from types import SimpleNamespace

import pytest

from mura_core.errors import ConfigError
from pipelines.registry.verdict import (
    SIGNING_KEY_ENV,
    UNVERIFIED,
    VERIFY_KEY_ENV,
    Verdict,
    new_key_pair,
    signature_of,
    signing_key,
    trusted_status,
    verify_key,
)

VERDICT = Verdict("mura_binary", 3, "run-3", "passed", "passed vs champion v2: study kappa change +0.02", 2)


def _entry(verdict: Verdict, signature: str | None, **changed: str) -> SimpleNamespace:
    """An MLflow model version as MLflow returns it: the verdict's tags (some changed) and a signature."""
    tags = {**verdict.tags(), **changed}
    if signature is not None:
        tags["gate.signature"] = signature
    return SimpleNamespace(version=str(verdict.version), run_id=verdict.run_id, tags=tags)


@pytest.fixture
def keys():
    private, public = new_key_pair()
    env = {SIGNING_KEY_ENV: private}
    return signing_key(environ=env), verify_key(environ={VERIFY_KEY_ENV: public})


def test_the_gate_s_own_verdict_is_trusted(keys):
    private, public = keys
    assert trusted_status("mura_binary", _entry(VERDICT, signature_of(VERDICT, private)), public) == (
        "passed",
        None,
    )


@pytest.mark.parametrize(
    "changed",
    [
        {"gate.reason": "passed: looks fine"},
        {"gate.champion_version": "1"},
        # Passes str.isdigit() but not int(): read strictly, it is no number, so not the one signed.
        {"gate.champion_version": "\u00b2"},
        {"serving.sha256": "0" * 64},  # the signature covers the bytes' hash too
    ],
)
def test_a_changed_tag_is_not_trusted(keys, changed):
    private, public = keys
    entry = _entry(VERDICT, signature_of(VERDICT, private), **changed)
    status, problem = trusted_status("mura_binary", entry, public)
    assert status == UNVERIFIED and "changed after the gate signed them" in problem


def test_a_failed_verdict_turned_passed_is_not_trusted(keys):
    private, public = keys
    failed = Verdict(VERDICT.model, 3, "run-3", "failed", "failed: study kappa 0.1 below the floor", None)
    entry = _entry(failed, signature_of(failed, private), **{"gate.status": "passed"})
    assert trusted_status("mura_binary", entry, public)[0] == UNVERIFIED
    # Untouched, it is what it says: failed, and nothing to distrust.
    assert trusted_status("mura_binary", _entry(failed, signature_of(failed, private)), public) == (
        "failed",
        None,
    )


def test_a_signature_is_bound_to_its_model_version_and_run(keys):
    """A valid signature copied from another version does not vouch for this one."""
    private, public = keys
    signature = signature_of(VERDICT, private)
    for other in (
        Verdict("mura_other", 3, "run-3", "passed", VERDICT.reason, 2),
        Verdict("mura_binary", 4, "run-3", "passed", VERDICT.reason, 2),
        Verdict("mura_binary", 3, "run-4", "passed", VERDICT.reason, 2),
    ):
        status, problem = trusted_status(other.model, _entry(other, signature), public)
        assert status == UNVERIFIED and "changed after" in problem


def test_a_verdict_signed_with_another_key_names_both_keys(keys):
    _, public = keys
    forger = signing_key(environ={SIGNING_KEY_ENV: new_key_pair()[0]})
    status, problem = trusted_status("mura_binary", _entry(VERDICT, signature_of(VERDICT, forger)), public)
    assert status == UNVERIFIED and "signed with key" in problem and VERIFY_KEY_ENV in problem


def test_an_unsigned_passed_and_a_missing_key_are_not_trusted(keys):
    private, _ = keys
    assert "no signature" in trusted_status("mura_binary", _entry(VERDICT, None), keys[1])[1]
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr("pipelines.registry.verdict.verify_key", lambda: None)
        status, problem = trusted_status("mura_binary", _entry(VERDICT, signature_of(VERDICT, private)))
    assert status == UNVERIFIED and VERIFY_KEY_ENV in problem


@pytest.mark.parametrize("value", ["not base64!", "c2hvcnQ=", ""])
def test_a_malformed_key_names_its_variable_and_how_to_make_one(value):
    with pytest.raises(ConfigError, match=f"{VERIFY_KEY_ENV} is not a base64 Ed25519 key.*mura gate-key"):
        verify_key(environ={VERIFY_KEY_ENV: value or " "})


def test_the_embedded_stack_makes_its_key_once_private_and_derives_the_public_half(tmp_path):
    env = {"MURA_HOME": str(tmp_path)}
    assert verify_key(environ=env) is None  # nothing signed yet: nothing verifies
    first = signing_key(environ=env)
    assert (tmp_path / "secrets" / "gate_signing_key").stat().st_mode & 0o777 == 0o600
    assert signing_key(environ=env).private_bytes_raw() == first.private_bytes_raw()
    public = verify_key(environ=env)
    signature = signature_of(VERDICT, first)
    assert trusted_status("mura_binary", _entry(VERDICT, signature), public) == ("passed", None)
    # The pipeline's own processes, given only the signing key, check with its public half.
    private_text = (tmp_path / "secrets" / "gate_signing_key").read_text()
    derived = verify_key(environ={SIGNING_KEY_ENV: private_text})
    assert trusted_status("mura_binary", _entry(VERDICT, signature), derived) == ("passed", None)


def test_mura_gate_key_prints_a_pair_that_signs_and_verifies(capsys):
    from pipelines.cli import main

    assert main(["gate-key", "--json"]) == 0
    pair = json.loads(capsys.readouterr().out)
    private = signing_key(environ={SIGNING_KEY_ENV: pair[SIGNING_KEY_ENV]})
    public = verify_key(environ={VERIFY_KEY_ENV: pair[VERIFY_KEY_ENV]})
    assert (
        trusted_status("mura_binary", _entry(VERDICT, signature_of(VERDICT, private)), public)[0] == "passed"
    )
