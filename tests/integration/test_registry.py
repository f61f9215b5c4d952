"""Registry, gate, promotion and the deploy reconciler against a real `mlflow server` and the local TF Serving.

One MLflow server and one serving process for the module; each test uses its own model name
(mura_binary_<part>) so the tests do not depend on each other's state.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from serving.errors import ServingClientError

pytestmark = [pytest.mark.integration, pytest.mark.slow]

GOOD = {
    "eval.study_kappa": 0.60,
    "eval.study_auroc": 0.80,
    "eval.elbow.study_kappa": 0.55,
    "eval.hand.study_kappa": 0.50,
}
BETTER = {
    "eval.study_kappa": 0.66,
    "eval.study_auroc": 0.84,
    "eval.elbow.study_kappa": 0.60,
    "eval.hand.study_kappa": 0.52,
}
WORSE = {
    "eval.study_kappa": 0.50,
    "eval.study_auroc": 0.79,
    "eval.elbow.study_kappa": 0.56,
    "eval.hand.study_kappa": 0.50,
}


from tests.integration.registry_world import (  # noqa: E402
    WEBHOOK_CACHE_TTL_S,
    holdout_table,
    make_run,
    run_cli,
    run_cli_alone,
    stable_version,
    unlabelled_version,
)


def out_of_range_model(image_size=(16, 16)):
    """A model with the binary contract whose 'probability' is 5.0: it loads, but smoke checks must catch it."""
    import keras

    inputs = keras.Input(shape=(*image_size, 3), name="pixels")
    pooled = keras.layers.GlobalAveragePooling2D()(inputs)
    outputs = keras.layers.Dense(
        1, kernel_initializer="zeros", bias_initializer=keras.initializers.Constant(5.0)
    )(pooled)
    return keras.Model(inputs, outputs)


def test_register_gate_pass_champion_then_challenger(world):
    from pipelines.registry.hashing import saved_model_digest
    from pipelines.registry.registration import register_run

    first = register_run(make_run(world, "elbow", GOOD, seed=1))
    assert (first["model"], first["version"], first["aliases"]) == ("mura_binary_elbow", 1, ["champion"])
    assert first["gate"]["status"] == "passed" and "floors only" in first["gate"]["reason"]
    second = register_run(make_run(world, "elbow", BETTER, seed=2))
    assert (second["version"], second["aliases"]) == (2, ["challenger"])
    assert "vs champion v1" in second["gate"]["reason"]
    version = world["client"].get_model_version("mura_binary_elbow", "2")
    assert version.tags["gate.status"] == "passed" and version.tags["data.dvc_md5"] == "abc123.dir"
    assert float(version.tags["eval.elbow.study_kappa"]) == pytest.approx(0.60)
    assert (
        version.tags["train.run_id"] == second["run_id"]
        and "image_bytes: string[-1]" in version.tags["serving.signature"]
    )
    local = world["client"].download_artifacts(second["run_id"], "tf_serving", str(world["home"] / "check"))
    assert version.tags["serving.sha256"] == saved_model_digest(Path(local))
    assert world["client"].get_registered_model("mura_binary_elbow").aliases == {
        "champion": "1",
        "challenger": "2",
    }


def test_gate_compares_paired_holdout_predictions_with_intervals(world):
    from pipelines.registry.registration import register_run

    register_run(make_run(world, None, GOOD, seed=11, holdout=holdout_table(1), task="14cls"))
    # Lower valid numbers but retrain noise on the same holdout studies: passes, with the interval.
    noisy = register_run(make_run(world, None, WORSE, seed=12, holdout=holdout_table(2), task="14cls"))
    assert noisy["gate"]["status"] == "passed", noisy["gate"]["reason"]
    assert "120 paired holdout studies" in noisy["gate"]["reason"]
    assert "study kappa change" in noisy["gate"]["reason"] and "[" in noisy["gate"]["reason"]
    # A third of the abnormal studies missed: a regression whose interval lies below zero.
    worse = register_run(
        make_run(world, None, GOOD, seed=13, holdout=holdout_table(3, missed=0.35), task="14cls")
    )
    assert worse["gate"]["status"] == "failed"
    assert "a regression larger than 0.020 at 95% family-wise" in worse["gate"]["reason"]


def test_worse_model_fails_gate_and_is_not_promoted(world, capsys):
    from mura_core.errors import RegistryError
    from pipelines.registry.promotion import promote
    from pipelines.registry.registration import register_run

    register_run(make_run(world, "forearm", GOOD, seed=3))
    worse = register_run(make_run(world, "forearm", WORSE, seed=4))
    assert worse["gate"]["status"] == "failed" and worse["aliases"] == []
    assert "study kappa 0.5000 is 0.1000 below the champion's 0.6000" in worse["gate"]["reason"]
    assert world["client"].get_registered_model("mura_binary_forearm").aliases == {"champion": "1"}
    with pytest.raises(RegistryError, match="did not pass the gate.*--force"):
        promote("mura_binary_forearm", 2)
    code, error = run_cli(["promote", "mura_binary_forearm", "7"], capsys)
    assert code == 1 and "has no version 7 (versions: [1, 2])" in error
    code, error = run_cli(["promote", "mura_binary_forearm", "1", "--alias", "latest"], capsys)
    assert code == 1 and "reserved" in error
    code, result = run_cli(["promote", "mura_binary_forearm", "2", "--force", "--json"], capsys)
    assert code == 0 and result["forced"] is True
    assert world["client"].get_model_version("mura_binary_forearm", "2").tags["promotion.forced"] == "true"


def test_promote_deploy_rollback_and_idempotent_reconcile(world, capsys):
    from pipelines.registry.registration import register_run

    model = "mura_binary_hand"
    register_run(make_run(world, "hand", GOOD, seed=5))
    register_run(make_run(world, "hand", BETTER, seed=6))
    # The first deploy, alone in its process as the DAG's deploy task is: it reloads both servers and
    # smoke-predicts the warm-up file's images without importing TensorFlow or Keras (seconds to a minute).
    code, report, heavy = run_cli_alone(["deploy", "--model", model, "--json"])
    assert code == 0 and report["models"][0]["labels"] == {"stable": 1, "canary": 2}, report
    assert heavy == set()
    assert report["models"][0]["served"] == {model: {"stable": 1}, f"{model}_challenger": {"canary": 2}}
    for server in ("serving", "replica"):  # each replica the gateway may pick answers alike
        assert (
            stable_version(world, model, server=server),
            stable_version(world, model, "canary", server),
        ) == (1, 2)
    # The most common call, official stubs naming no version, gets the champion, not the newest version.
    assert (unlabelled_version(world, model), unlabelled_version(world, f"{model}_challenger")) == (1, 2)

    assert run_cli(["promote", model, "2", "--json"], capsys)[0] == 0
    # Moved, not served yet: `mura models` says when serving follows and what to run now.
    code, listed = run_cli(["models"], capsys)
    waiting = next(line for line in listed.splitlines() if line.startswith("not served yet: "))
    assert code == 0 and f"{model} v2" in waiting.split(": ")[1] and "`mura deploy` does it now" in waiting
    code, report = run_cli(["deploy", "--model", model, "--json"], capsys)
    assert code == 0 and report["models"][0]["labels"] == {"stable": 2}
    assert stable_version(world, model) == 2 == unlabelled_version(world, model)
    assert stable_version(world, model, server="replica") == 2
    with pytest.raises(ServingClientError, match="no challenger of mura_binary_hand is served") as gone:
        stable_version(world, model, "canary")  # the challenger became champion: its name is gone
    assert gone.value.code == "NOT_FOUND" and "serves as mura_binary_hand (label stable)" in str(gone.value)
    version = world["client"].get_model_version(model, "2")
    assert version.tags["serving.label"] == "stable" and version.tags["serving.deployed_at"]

    before = (world["config"].read_bytes(), world["config"].stat().st_mtime_ns)
    code, report = run_cli(["deploy", "--model", model, "--json"], capsys)
    assert code == 0 and report["changed"] is False
    assert run_cli(["deploy", "--model", model], capsys) == (0, f"{model}: stable=v2 (unchanged)\n")
    assert (world["config"].read_bytes(), world["config"].stat().st_mtime_ns) == before

    # A soak of unlabelled requests while a new challenger (v3, not approved) goes live beside the
    # champion and the champion is rolled back: no request fails, none is answered by v3.
    with UnlabelledLoad(world, model) as load:
        register_run(make_run(world, "hand", BETTER, seed=12))
        assert run_cli(["deploy", "--model", model, "--json"], capsys)[0] == 0
        code, result = run_cli(["rollback", model, "--json"], capsys)
        assert code == 0 and (result["champion"], result["rolled_back_from"]) == (1, 2)
        assert run_cli(["deploy", "--model", model, "--json"], capsys)[0] == 0
    assert load.failures == [] and load.answers, load.failures[:3]
    assert set(load.answers) <= {1, 2}, sorted(set(load.answers))
    assert stable_version(world, model) == 1 == unlabelled_version(world, model)
    assert stable_version(world, model, "canary") == 3
    assert (
        stable_version(world, model, server="replica"),
        stable_version(world, model, "canary", "replica"),
    ) == (1, 3)
    code, error = run_cli(["rollback", model], capsys)
    assert code == 1 and "no earlier champion" in error


class UnlabelledLoad:
    """A background loop of predictions naming no version (bounded: 5000 requests or until the block ends)."""

    def __init__(self, world, model: str):
        import threading

        self.world, self.model = world, model
        self.answers: list[int] = []
        self.failures: list[str] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        from serving.client import ServingClient
        from serving.samples import sample_png

        image = sample_png(30, 30)
        with ServingClient(self.world["serving"].grpc_target) as client:
            for _ in range(5000):
                if self._stop.is_set():
                    return
                try:
                    self.answers.append(client.predict_images([image], model=self.model)[0]["version"])
                except ServingClientError as error:
                    self.failures.append(str(error))

    def __enter__(self):
        self._thread.start()
        return self

    def __exit__(self, *exc_info):
        self._stop.set()
        self._thread.join(timeout=60)


def test_tampered_artifact_is_refused_and_old_version_keeps_serving(world):
    from mura_core.errors import DeployError
    from pipelines.deployment.reconciler import reconcile
    from pipelines.registry.promotion import promote
    from pipelines.registry.registration import register_run

    model = "mura_binary_wrist"
    register_run(make_run(world, "wrist", GOOD, seed=7))
    reconcile(models=[model])
    second = register_run(make_run(world, "wrist", BETTER, seed=8))
    stored = Path(world["tracking"].artifacts_destination.removeprefix("file://"))
    (target,) = stored.glob(f"*/{second['run_id']}/artifacts/tf_serving/saved_model.pb")
    target.write_bytes(target.read_bytes() + b"tampered")
    promote(model, 2)
    config_before = world["config"].read_bytes()
    with pytest.raises(DeployError, match="mura_binary_wrist v2 .*does not match the registered") as refused:
        reconcile(models=[model])
    assert "exported again, or tampered with" in str(refused.value) and "register the run" not in str(
        refused.value
    )
    assert world["config"].read_bytes() == config_before
    assert not (world["base"] / model / "2").exists()
    assert stable_version(world, model) == 1

    # A foreign folder where the registry's next version goes (copied by hand, broken): the reconciler
    # owns the base path, so it moves the folder aside, keeps it, and publishes the registered version.
    foreign = world["base"] / model / "3"
    foreign.mkdir()
    (foreign / "saved_model.pb").write_bytes(b"not a SavedModel")
    third = register_run(make_run(world, "wrist", BETTER, seed=9))
    assert third["version"] == 3 and third["reused"] is False
    promote(model, 3)
    report = reconcile(models=[model])
    (moved,) = report.models[0].quarantined
    assert Path(moved).parent == world["home"] / "serving" / "quarantine" / model
    assert (Path(moved) / "saved_model.pb").read_bytes() == b"not a SavedModel"
    assert stable_version(world, model) == 3


def test_failed_smoke_prediction_restores_the_previous_config(world):
    from mura_core.errors import DeployError
    from pipelines.deployment.reconciler import reconcile
    from pipelines.registry.promotion import promote
    from pipelines.registry.registration import register_run

    model = "mura_binary_finger"
    register_run(make_run(world, "finger", GOOD, seed=10))
    reconcile(models=[model])
    register_run(make_run(world, "finger", BETTER, seed=11, model=out_of_range_model()))
    promote(model, 2)
    config_before = world["config"].read_bytes()
    with pytest.raises(DeployError, match=r"previous models.config restored.*v2: probabilities \[5\.0"):
        reconcile(models=[model])
    assert world["config"].read_bytes() == config_before
    assert stable_version(world, model) == 1
    from serving.client import ServingClient

    with ServingClient(world["serving"].grpc_target) as client:
        states = {status["version"]: status["state"] for status in client.model_status(model)}
    assert states[1] == "AVAILABLE" and states.get(2, "END") == "END"  # v2 was loaded, then unloaded again


def test_serving_down_is_a_clear_error_and_config_is_kept(world, monkeypatch):
    from mura_core.errors import DeployError
    from mura_core.ports import free_port
    from pipelines.deployment.reconciler import reconcile
    from pipelines.registry.registration import register_run

    register_run(make_run(world, "shoulder", GOOD, seed=12))
    dead = f"127.0.0.1:{free_port()}"
    monkeypatch.setenv("MURA_SERVING_GRPC", dead)
    config_before = world["config"].read_bytes()
    with pytest.raises(DeployError, match=f"mura_binary_shoulder: deploy failed.*TF Serving at {dead}"):
        reconcile(models=["mura_binary_shoulder"])
    assert world["config"].read_bytes() == config_before


def test_a_replica_that_is_down_is_left_out_and_named(world, monkeypatch, caplog):
    """The replica is restarting (or `mura serve` runs without the stack's replica): the deploy goes
    on with the first process, says which replica it left out, and the config file it writes is what
    that replica loads when it starts."""
    from mura_core.ports import free_port
    from pipelines.deployment.reconciler import reconcile

    dead = f"127.0.0.1:{free_port()}"
    monkeypatch.setenv("MURA_SERVING_REPLICA_GRPC", dead)
    report = reconcile(models=["mura_binary_shoulder"])  # registered by the test above, never served
    assert report.models[0].served == {"mura_binary_shoulder": {"stable": 1}}
    assert f"serving replica {dead} does not answer: skipped" in caplog.text
    assert stable_version(world, "mura_binary_shoulder") == 1
    assert "mura_binary_shoulder" in world["config"].read_text()


def test_mlflow_down_names_the_tracking_uri(world, capsys, monkeypatch):
    from mura_core.ports import free_port

    dead = f"http://127.0.0.1:{free_port()}"
    monkeypatch.setenv("MLFLOW_TRACKING_URI", dead)
    config_before = world["config"].read_bytes()
    for argv in (["deploy"], ["register", "0123456789abcdef"], ["rollback", "mura_binary"]):
        code, error = run_cli(argv, capsys)
        assert code == 1 and f"MLflow tracking server {dead} is not reachable" in error
    assert world["config"].read_bytes() == config_before


def test_mlflow_alias_webhook_reaches_the_receiver(world):
    import threading
    import time

    from mlflow.entities.webhook import WebhookEvent

    from pipelines.deployment.webhook import WebhookReceiver
    from pipelines.registry.registration import register_run

    delivered, arrived = [], threading.Event()
    receiver = WebhookReceiver(
        "s3cret", action=lambda payload: (delivered.append(payload), arrived.set())
    ).start()
    try:
        webhook = world["client"].create_webhook(
            name="deploy",
            url=receiver.url,
            secret="s3cret",
            events=[WebhookEvent("model_version_alias", "created")],
        )
        time.sleep(WEBHOOK_CACHE_TTL_S + 0.5)  # let the server's cached (empty) webhook list expire
        register_run(make_run(world, "humerus", GOOD, seed=9))  # v1 becomes champion: an alias event
        assert arrived.wait(30), "MLflow did not deliver the alias webhook"
        assert (
            delivered[0]["data"]["name"] == "mura_binary_humerus"
            and delivered[0]["data"]["alias"] == "champion"
        )
        world["client"].delete_webhook(webhook.webhook_id)
    finally:
        receiver.stop()


def test_only_bytes_a_signed_gate_verdict_vouches_for_are_served(world):
    """A login with MANAGE (the reviewer's) made a version of its own: the registered run's source and
    hash tag copied, `gate.status=passed` written, champion pointed at it. The deploy refuses it (no
    signature covers that version), as it refuses a hash tag rewritten after the gate signed it, and
    the champion before keeps serving."""
    from mura_core.errors import DeployError
    from pipelines.deployment.reconciler import reconcile
    from pipelines.registry.registration import register_run

    client, model = world["client"], "mura_binary_humerus"  # after the webhook test's registration
    register_run(make_run(world, "humerus", GOOD, seed=21))
    champion = client.get_registered_model(model).aliases["champion"]
    reconcile(models=[model])
    signed = client.get_model_version(model, champion)
    own = client.create_model_version(model, signed.source, signed.run_id).version
    for name in ("serving.sha256", "gate.status", "gate.reason"):
        client.set_model_version_tag(model, own, name, signed.tags[name])
    client.set_registered_model_alias(model, "champion", own)
    with pytest.raises(DeployError, match=f"{model} v{own} is not published: no gate verdict signed"):
        reconcile(models=[model])
    client.set_registered_model_alias(model, "champion", champion)
    client.set_model_version_tag(model, champion, "serving.sha256", "0" * 64)
    (world["base"] / model / champion / "saved_model.pb").unlink()  # the deploy must publish it again
    with pytest.raises(DeployError, match="changed after the gate signed them"):
        reconcile(models=[model])
    client.set_model_version_tag(model, champion, "serving.sha256", signed.tags["serving.sha256"])
    reconcile(models=[model])
    assert stable_version(world, model) == int(champion)


def test_a_registered_model_outside_the_configured_list_is_never_served(world, caplog):
    from mura_core.errors import DeployError
    from pipelines.deployment.reconciler import reconcile

    with pytest.raises(DeployError, match="mura_intruder is not served: params.yaml deploy.models"):
        reconcile(models=["mura_intruder"])
    world["client"].create_registered_model("mura_intruder")
    reconcile(models=["mura_binary_humerus"])  # the pass looks at every model: it skips it, saying why
    assert "mura_intruder is not in params.yaml deploy.models: not served" in caplog.text
    assert "mura_intruder" not in world["config"].read_text()


def test_unversioned_data_fails_the_gate_forcing_is_recorded_and_lineage_tells_it_all(
    world, capsys, monkeypatch
):
    from pipelines.registry.registration import register_run

    model = "mura_binary"
    first = register_run(make_run(world, None, GOOD, seed=11))
    unversioned = {"data.md5": "def456.dir", "data.versioned": "false", "data.dvc_md5": "unversioned"}
    second = register_run(make_run(world, None, BETTER, seed=12, lineage=unversioned))
    assert first["aliases"] == ["champion"] and second["aliases"] == []
    assert (
        second["gate"]["status"] == "failed"
        and "def456.dir is not a pushed DVC version" in second["gate"]["reason"]
    )
    monkeypatch.setenv("MLFLOW_TRACKING_USERNAME", "reviewer-ann")
    code, result = run_cli(["promote", model, "2", "--force", "--reason", "hotfix", "--json"], capsys)
    assert code == 0 and result["forced"] is True
    assert run_cli(["deploy", "--model", model, "--json"], capsys)[0] == 0

    code, report = run_cli(["lineage", f"{model}@champion", "--json"], capsys)
    assert code == 0 and report["version"] == 2 and report["aliases"] == ["champion"]
    assert report["data"]["md5"] == "def456.dir" and report["data"]["versioned"] == "false"
    assert report["gate"]["status"] == "failed" and report["gate"]["forced_by"] == "reviewer-ann"
    assert report["gate"]["forced_reason"] == "hotfix"
    assert [(event["alias"], event["by"], event["action"]) for event in report["alias_history"]] == [
        ("champion", "reviewer-ann", "promote --force")
    ]
    assert report["serving"]["labels"] == ["stable"] and report["serving"]["hash_matches"] is True
    assert report["evaluation"]["per_part"]["elbow"]["study_kappa"] == pytest.approx(0.60)
    served = Path(report["serving"]["path"]) / "assets.extra" / "mura_class_map.json"
    served.write_text(served.read_text() + " ")  # someone edits a served file by hand
    assert run_cli(["lineage", f"{model}/2", "--json"], capsys)[1]["serving"]["hash_matches"] is False
    code, text = run_cli(["lineage", f"{model}/1"], capsys)
    assert code == 0 and "gate: first passing version" in text and "not served" in text

    code, reverse = run_cli(["lineage", "--data", "def456.dir", "--json"], capsys)
    assert code == 0 and [(item["model"], item["version"]) for item in reverse["versions"]] == [(model, 2)]
    assert reverse["served"] is True
    code, error = run_cli(["lineage", "mura_binary@nosuch"], capsys)
    assert code == 1 and "has no alias 'nosuch'" in error
    code, error = run_cli(["lineage", "Mura..x@champion"], capsys)
    assert code == 1 and "^mura_[a-z0-9_]+$" in error


def _bare_versions(client, model: str, count: int) -> None:
    """A registered model with `count` versions (no artifacts: the alias bookkeeping needs none)."""
    client.create_registered_model(model)
    for _ in range(count):
        client.create_model_version(model, source="s3://mura-test/none")


def test_an_unreadable_alias_log_is_kept_never_overwritten_and_no_event_falls_off(world, caplog):
    """A hand-edited `alias.events` used to read as [] and the next move replaced the whole log; and
    past 40 events the oldest fell off. An audit log keeps everything."""
    import json

    from pipelines.registry.promotion import (
        EVENTS_TAG,
        MAX_EVENTS,
        UnreadableTag,
        alias_events,
        apply_promotion_rule,
        record_alias_event,
    )

    client, model = world["client"], "mura_audit_events"
    _bare_versions(client, model, 2)
    client.set_registered_model_tag(model, EVENTS_TAG, "[{'edited': by hand")
    with pytest.raises(UnreadableTag, match="alias.events"):
        alias_events(client, model)

    assert apply_promotion_rule(client, model, 1, passed=True) == ["champion"]
    tags = client.get_registered_model(model).tags
    (kept,) = [name for name in tags if name.startswith(f"{EVENTS_TAG}.unreadable.")]
    assert tags[kept] == "[{'edited': by hand" and kept in caplog.text
    events = alias_events(client, model)
    assert kept in events[0]["action"] and events[-1]["action"] == "gate: first passing version"

    for index in range(MAX_EVENTS + 5):
        record_alias_event(client, model, "challenger", 2, f"move {index}")
    tags = client.get_registered_model(model).tags
    archives = sorted(name for name in tags if name.startswith(f"{EVENTS_TAG}.archive."))
    everything = [event for name in archives for event in json.loads(tags[name])] + alias_events(
        client, model
    )
    assert [event["action"] for event in everything[2:]] == [f"move {i}" for i in range(MAX_EVENTS + 5)]


def test_an_unreadable_champion_history_stops_only_the_rollback_and_says_what_to_do(world):
    """Promotions and the reconciler go on (the old value is kept under a tag of its own); a rollback,
    which needs the history, is refused with the way out."""
    from mura_core.errors import RegistryError
    from pipelines.registry.promotion import (
        HISTORY_TAG,
        apply_promotion_rule,
        champion_history,
        promote,
        rollback,
    )

    client, model = world["client"], "mura_audit_history"
    _bare_versions(client, model, 2)
    apply_promotion_rule(client, model, 1, passed=True)
    client.set_registered_model_tag(model, HISTORY_TAG, '[{"version": 1}]')  # a list, of something else
    with pytest.raises(RegistryError, match="champion.history.*mura promote MODEL VERSION"):
        rollback(model, client)

    promote(model, 2, client=client, force=True, reason="audit test")
    tags = client.get_registered_model(model).tags
    (kept,) = [name for name in tags if name.startswith(f"{HISTORY_TAG}.unreadable.")]
    assert tags[kept] == '[{"version": 1}]' and champion_history(client, model) == [1, 2]
    assert rollback(model, client)["champion"] == 1


def _reviewed_model(world, name: str, *metrics: dict) -> list[int]:
    """Versions of a model `name` with the given valid metrics, each passed by the gate (no files:
    deciding is about aliases and tags)."""
    from pipelines.registry.verdict import Verdict, record_verdict

    client = world["client"]
    client.create_registered_model(name)
    versions = []
    for values in metrics:
        run_id = client.create_run(world["experiment"], tags={"data.md5": "abc123.dir"}).info.run_id
        for key, value in values.items():
            client.log_metric(run_id, key, value)
        version = client.create_model_version(name, f"runs:/{run_id}/tf_serving", run_id=run_id).version
        reason = "passed: study kappa change +0.06 [+0.01, +0.11]"
        record_verdict(client, Verdict(name, int(version), run_id, "passed", reason, None))
        versions.append(int(version))
    return versions


INTERVALS = {"eval.study_kappa_ci_low": 0.5, "eval.study_kappa_ci_high": 0.7}


def test_an_approval_record_the_pipeline_did_not_sign_decides_nothing(world):
    """The deployer may write version tags: approval.* written for a run before its question was asked
    made the step believe the run had decided (and never ask). Unsigned, it is ignored; the
    pipeline's own record, signed, is believed."""
    from pipelines.registry.approval import record, settled

    client, model = world["client"], "mura_prewritten"
    (version,) = _reviewed_model(world, model, GOOD)
    for name, value in {
        "decision": "keep",
        "by": "reviewer",
        "dag_run_id": "run-7",
        "at": "x",
        "note": "",
    }.items():
        client.set_model_version_tag(model, str(version), f"approval.{name}", value)
    assert settled(model, version, "run-7", client) is None  # asked after all
    record(client, model, version, "keep", "reviewer", "run-7")
    assert settled(model, version, "run-7", client) == "this run decided already: keep by reviewer"
    client.set_model_version_tag(model, str(version), "approval.by", "admin")  # edited after signing
    assert settled(model, version, "run-7", client) is None


def test_a_run_s_model_comes_down_once_per_process_and_its_operating_point_afresh(world, tmp_path):
    """One evaluate task downloaded model.keras, its class map and the manifest twice (the evaluation,
    then the monitoring reference): the second ask gets the first copy. The operating point, which an
    evaluation writes after training, is never taken from that copy."""
    import json

    from mura_core.artifacts import forget
    from pipelines.evaluation import download_model

    forget()
    run_id = make_run(world, "shoulder", GOOD, seed=41)
    first, class_map, point = download_model(run_id, tmp_path / "a")
    assert point is None and class_map["task"]
    (tmp_path / "operating_point.json").write_text(json.dumps({"method": "fixed", "threshold": 0.4}))
    world["client"].log_artifact(run_id, str(tmp_path / "operating_point.json"), "model")
    again, _, point = download_model(run_id, tmp_path / "b")
    assert again == first and first.is_file()  # the same local copy: not downloaded again
    assert point == {"method": "fixed", "threshold": 0.4}  # written after the first ask, read now
    first.unlink()  # a copy removed under the process (a cleaned temporary folder) is fetched again
    assert download_model(run_id, tmp_path / "c")[0].is_file()


def test_approval_auto_needs_params_yaml_and_records_who_chose_it(world):
    """The Airflow admin may not answer the question but could skip the reviewer with approval=auto:
    auto is refused unless params.yaml allows it, and a version promoted by it records, signed, who
    chose it in which run."""
    import dataclasses

    from mura_core.config import load_config
    from mura_core.contracts import Approval
    from mura_core.errors import ConfigError
    from pipelines.registry.approval import record_auto, settled
    from pipelines.registry.registration import gate_version

    client, model = world["client"], "mura_auto"
    (version,) = _reviewed_model(world, model, GOOD)
    shipped = load_config().gate
    assert shipped.allow_auto_approval is False and "auto" not in shipped.approval_choices
    with pytest.raises(ConfigError, match="gate.allow_auto_approval"):
        gate_version(model, version, Approval.AUTO, client=client, policy=shipped)
    assert client.get_registered_model(model).aliases == {}  # nothing moved
    allowed = dataclasses.replace(shipped, allow_auto_approval=True)
    assert "auto" in allowed.approval_choices

    record_auto(model, version, "admin (the run's approval field)", "manual__auto", client)
    tags = client.get_model_version(model, str(version)).tags
    assert (
        tags["approval.by"] == "admin (the run's approval field)" and "no reviewer" in tags["approval.note"]
    )
    assert settled(model, version, "manual__auto", client) == (
        "this run decided already: promote by admin (the run's approval field)"
    )


def test_a_reviewer_s_answer_moves_the_champion_through_promote_and_is_recorded(world):
    """The question shows both versions' intervals and the part that moved; keep moves nothing,
    promote moves champion with the reviewer and the run in the audit log, an answer to a question
    gone stale (the champion moved meanwhile) is not acted on, no answer is a timeout; each is tagged."""
    from mura_core.contracts import KEEP_OPTION, PROMOTE_OPTION
    from pipelines.registry.approval import decide, settled
    from pipelines.registry.promotion import alias_events
    from pipelines.views.approval_question import question

    client, model = world["client"], "mura_reviewed"
    moved = {**BETTER, **INTERVALS, "eval.elbow.study_kappa": 0.65}
    v1, v2, v3 = _reviewed_model(world, model, {**GOOD, **INTERVALS}, moved, BETTER)
    client.set_registered_model_alias(model, "champion", str(v1))
    client.set_registered_model_alias(model, "challenger", str(v2))
    asked = question(model, v2, "manual__a", client)
    assert (
        asked.champion == v1 and asked.subject == f"Promote {model} v{v2} to champion? (champion now v{v1})"
    )
    assert "| **v2** (this version) | 0.660 [0.500, 0.700] |" in asked.body
    assert "| v1 (champion) | 0.600 [0.500, 0.700] |" in asked.body
    assert "elbow: study kappa 0.550 -> 0.650 (+0.100)" in asked.body and "hand:" not in asked.body
    assert "study kappa change +0.06 [+0.01, +0.11]" in asked.body

    def tags(version):
        return {
            k: v
            for k, v in client.get_model_version(model, str(version)).tags.items()
            if k.startswith("approval.")
        }

    kept = decide(model, v2, KEEP_OPTION, "reviewer", "manual__a", v1, client)
    assert kept["decision"] == "keep" and client.get_registered_model(model).aliases == {
        "champion": "1",
        "challenger": "2",
    }
    assert tags(v2)["approval.by"] == "reviewer" and tags(v2)["approval.dag_run_id"] == "manual__a"

    decide(model, v2, PROMOTE_OPTION, "reviewer", "manual__b", v1, client)
    assert client.get_registered_model(model).aliases == {"champion": "2"}
    assert alias_events(client, model)[-1]["action"] == "approved by reviewer (Airflow run manual__b)"
    assert tags(v2)["approval.decision"] == "promote" and tags(v2)["approval.note"] == ""
    # A retried step: no second question, the first decision kept; a champion promoted by someone else
    # meanwhile is not asked about either (and that is recorded).
    assert settled(model, v2, "manual__b", client) == "this run decided already: promote by reviewer"
    assert tags(v2)["approval.by"] == "reviewer" and settled(model, v3, "manual__b", client) is None
    assert settled(model, v2, "manual__z", client) == "v2 is champion already"
    assert tags(v2)["approval.dag_run_id"] == "manual__z" and tags(v2)["approval.by"] == "nobody (asked)"

    client.set_registered_model_alias(model, "challenger", str(v3))
    stale = decide(model, v3, PROMOTE_OPTION, "reviewer", "manual__c", v1, client)  # asked against v1
    assert stale["decision"] == "keep" and "champion moved to v2" in stale["note"]
    assert client.get_registered_model(model).aliases == {"champion": "2", "challenger": "3"}
    timeout = decide(model, v3, None, None, "manual__d", v2, client)
    assert timeout["decision"] == "timeout" and tags(v3)["approval.by"] == "nobody (timeout)"


def test_a_waiting_question_closes_itself_when_the_champion_moves(world, monkeypatch, tmp_path):
    """The approval step's trigger: while the champion stays it waits; once someone moves champion
    (MLflow UI, `mura promote`), it answers the question with its default (Airflow's call stubbed:
    there is no Airflow database here) and resumes the step with the reason."""
    import asyncio
    import uuid
    from types import SimpleNamespace

    monkeypatch.setenv("AIRFLOW_HOME", str(tmp_path / "airflow"))
    import airflow.sdk.execution_time.hitl as hitl

    from mura_core.contracts import KEEP_OPTION, PROMOTE_OPTION
    from pipelines.flows.retrain_approval import ChampionWatchingTrigger
    from pipelines.registry.promotion import promote

    client, model = world["client"], "mura_watched"
    v1, v2, v3 = _reviewed_model(world, model, GOOD, BETTER, BETTER)
    client.set_registered_model_alias(model, "champion", str(v1))
    client.set_registered_model_alias(model, "challenger", str(v2))
    answered = []
    monkeypatch.setattr(
        hitl,
        "update_hitl_detail_response",
        lambda **kwargs: answered.append(kwargs) or SimpleNamespace(responded_at="2026-12-02T00:00:00Z"),
    )

    async def nobody_answered(self):
        return False

    monkeypatch.setattr(ChampionWatchingTrigger, "_answered", nobody_answered)
    trigger = ChampionWatchingTrigger(
        ti_id=uuid.uuid4(),
        options=[PROMOTE_OPTION, KEEP_OPTION],
        defaults=[KEEP_OPTION],
        params={},
        timeout_datetime=None,
        poke_interval=0.05,
        model=model,
        version=v2,
        asked_champion=v1,
        check_seconds=0.3,
    )
    _, arguments = trigger.serialize()
    assert ChampionWatchingTrigger(**arguments).asked_champion == v1  # what the triggerer rebuilds

    async def wait_then_move():
        waiting = asyncio.ensure_future(trigger.run().__anext__())
        await asyncio.sleep(1.0)
        assert not waiting.done()  # nothing moved: the question stands
        await asyncio.to_thread(promote, model, v3, client=client)  # someone promotes another version
        return await asyncio.wait_for(waiting, 10)

    event = asyncio.run(wait_then_move())
    assert "champion moved to v3" in event.payload["stale"]

    async def a_person_answered(self):
        return True  # a person answered: the API resumed the step, the trigger must not resume it again

    monkeypatch.setattr(ChampionWatchingTrigger, "_answered", a_person_answered)

    async def no_second_resume():
        waiting = asyncio.ensure_future(trigger.run().__anext__())
        await asyncio.sleep(1.5)
        assert not waiting.done()
        waiting.cancel()

    asyncio.run(no_second_resume())
    assert event.payload["chosen_options"] == [KEEP_OPTION] and event.payload["responded_by_user"] is None
    assert answered == [{"ti_id": trigger.ti_id, "chosen_options": [KEEP_OPTION], "params_input": {}}]


def test_a_verdict_written_or_edited_by_another_account_promotes_nothing(world):
    """The deployer may set version tags (the account matrix of test_mlflow_auth shows it), so a
    `gate.status=passed` it writes over a failure, an edited reason, or a verdict it signs with a key of
    its own must not promote: `mura promote` refuses each, naming what is wrong, and only --force
    (recorded) promotes it. The gate writing its verdict again makes it promotable."""
    from mura_core.errors import RegistryError
    from pipelines.registry.promotion import promote
    from pipelines.registry.verdict import (
        SIGNING_KEY_ENV,
        Verdict,
        new_key_pair,
        record_verdict,
        signature_of,
        signing_key,
    )

    client, model = world["client"], "mura_verdicts"
    client.create_registered_model(model)
    verdicts = {}
    for version, status in ((1, "failed"), (2, "passed")):
        run_id = client.create_run(world["experiment"]).info.run_id
        client.create_model_version(model, f"runs:/{run_id}/tf_serving", run_id)
        verdicts[version] = Verdict(model, version, run_id, status, f"{status}: study kappa 0.6", None)
        record_verdict(client, verdicts[version])
    # As the deployer could: passed over a failure; then a passing verdict re-signed with its own key.
    client.set_model_version_tag(model, "1", "gate.status", "passed")
    with pytest.raises(
        RegistryError, match="v1: its gate.status says passed, but .*changed after the gate signed"
    ):
        promote(model, 1, client=client)
    client.set_model_version_tag(model, "2", "gate.reason", "passed: reviewed by hand")
    with pytest.raises(RegistryError, match="v2: .*changed after the gate signed them"):
        promote(model, 2, client=client)
    forged = Verdict(model, 2, verdicts[2].run_id, "passed", "passed: reviewed by hand", None)
    own_key = signing_key(environ={SIGNING_KEY_ENV: new_key_pair()[0]})
    client.set_model_version_tag(model, "2", "gate.signature", signature_of(forged, own_key))
    with pytest.raises(RegistryError, match="v2: .*signed with key [0-9a-f]+, not with the trusted key"):
        promote(model, 2, client=client)
    assert client.get_registered_model(model).aliases == {}
    record_verdict(client, verdicts[2])
    assert promote(model, 2, client=client)["forced"] is False
    assert promote(model, 1, client=client, force=True, reason="checked")["forced"] is True
    assert client.get_model_version(model, "1").tags["promotion.forced_reason"] == "checked"
