"""Exactly once: a retried registration, gate or card step never makes a second version or moves an
alias twice, a verdict is never reached on weaker evidence than the gate's, and exit codes tell the
truth (a real `mlflow server` and the local TF Serving)."""

from __future__ import annotations

import pytest

from tests.integration.registry_world import holdout_table, make_run, run_cli

pytestmark = [pytest.mark.integration, pytest.mark.slow]
GOOD = {"eval.study_kappa": 0.60, "eval.study_auroc": 0.80}
BETTER = {"eval.study_kappa": 0.66, "eval.study_auroc": 0.84}


def test_registration_and_gate_are_idempotent_per_run(world, capsys, monkeypatch):
    """A retried registration (an Airflow retry, `mura register` twice) finds the run's version and never
    creates a second one; a retried gate keeps the verdict and aliases; only a missing card is written."""
    from pipelines.registry import registration

    client = world["client"]
    champion_run, challenger_run = (
        make_run(world, None, GOOD, seed=21),
        make_run(world, None, BETTER, seed=22),
    )
    first = registration.register_run(champion_run)
    assert (first["version"], first["aliases"], first["reused"]) == (1, ["champion"], False)
    again = registration.register_run(champion_run)
    assert (again["version"], again["aliases"], again["reused"]) == (1, ["champion"], True)
    assert again["gate"]["repeated"] and again["gate"]["status"] == "passed"

    # The gate killed after moving the alias but before recording that it finished: run again, the
    # version stays challenger only (not champion too) and gets its card.
    second = registration.register_version(challenger_run)
    monkeypatch.setattr(registration, "_publish_card", lambda *args: None)
    assert registration.gate_version("mura_binary", second.version).aliases == ["challenger"]
    client.delete_model_version_tag("mura_binary", "2", registration.GATE_APPLIED_TAG)
    monkeypatch.undo()
    retried = registration.gate_version("mura_binary", 2)
    assert retried.aliases == ["challenger"] and retried.card
    assert client.get_registered_model("mura_binary").aliases == {"champion": "1", "challenger": "2"}

    code, output = run_cli(["register", challenger_run, "--json"], capsys)
    assert code == 0 and output["reused"] and output["version"] == 2 and output["gate"]["repeated"]
    runs = [entry.run_id for entry in client.search_model_versions("name='mura_binary'")]
    assert sorted(runs) == sorted([champion_run, challenger_run])  # one version per run, ever


def test_a_registration_whose_card_failed_exits_non_zero_and_says_so(world, capsys, monkeypatch):
    from pipelines.registry import registration

    def broken(*args):
        raise OSError("disk full")

    monkeypatch.setattr("pipelines.cards.publish_card", broken)
    run_id = make_run(world, None, GOOD, seed=23, task="14cls")
    code, stderr = run_cli(["register", run_id, "--json"], capsys)
    assert code == 1, stderr
    assert "model card of mura_14cls v1 could not be written" in stderr and "mura card mura_14cls/1" in stderr
    assert registration.registered_version(run_id, "mura_14cls") == 1  # registered and gated all the same


def test_an_unreadable_champion_holdout_fails_the_gate_instead_of_weakening_it(world, caplog, monkeypatch):
    """The champion's stored holdout predictions half-written: the gate used to fall back to single
    numbers with a misleading warning. Now it retries, then fails naming the run and the files, and
    leaves the version without a verdict for the retried task to decide."""
    from pipelines.evaluation import holdout
    from pipelines.evaluation.holdout import HoldoutUnreadable
    from pipelines.registry.registration import register_run

    monkeypatch.setattr(holdout, "READ_WAIT_SECONDS", 0.0)  # the retries themselves, not their pauses

    client = world["client"]
    champion = register_run(make_run(world, "elbow", GOOD, seed=31, holdout=holdout_table(1)))
    assert champion["gate"]["status"] == "passed"
    stored = next(world["home"].rglob(f"{champion['run_id']}/artifacts/model/operating_point.json"))
    stored.write_text('{"temperature": 1.0, "shi')  # a half-written file in the artifact store

    challenger_run = make_run(world, "elbow", BETTER, seed=32, holdout=holdout_table(2))
    with pytest.raises(HoldoutUnreadable, match=f"run {champion['run_id']}.*operating_point.json.*3 tries"):
        register_run(challenger_run)
    assert caplog.text.count(f"reading the holdout predictions of run {champion['run_id']} failed") == 3
    (version,) = client.search_model_versions(f"run_id = '{challenger_run}'")
    assert version.tags["gate.status"] == "pending" and not version.aliases
