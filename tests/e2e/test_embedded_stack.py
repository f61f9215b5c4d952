"""The embedded stack as a user runs it: `mura up`, a retrain through Airflow's REST API and through the
real UI in headless Chromium, predictions over gRPC, `mura status`, and `mura down` stopping everything."""

from __future__ import annotations

import json
import os
import re
import shutil
import stat
from pathlib import Path

import pytest
import requests

from pipelines.stack.airflow_api import AirflowClient
from tests.support import mura, platform_env, versioned_synthetic_project

pytestmark = [pytest.mark.e2e, pytest.mark.slow]
CHROMIUM = "/usr/bin/chromium"
SCREENSHOTS = Path(os.environ.get("MURA_TEST_ARTIFACTS", "test-artifacts"))
RUN_TIMEOUT = 900


@pytest.fixture(scope="module")
def stack(tmp_path_factory):
    """A project copy with versioned synthetic data and its embedded stack up; stopped afterwards."""
    project, home = versioned_synthetic_project(
        tmp_path_factory.mktemp("e2e"), train_patients=200, valid_patients=60
    )
    # The form's default preset is the suite's tiny one: the module tests the flow, tests/model learning.
    env = platform_env(project, home, MURA_DEFAULT_PRESET="ci_tiny")
    pids: list[int] = []
    try:
        report = json.loads(mura(env, "up", "--json", timeout=400).stdout)
        pids = [entry["pid"] for entry in report["services"].values()]
        yield env, report
    finally:
        down = mura(env, "down", "--json", check=False)
        assert down.returncode == 0, down.stderr
        for pid in pids:
            assert (
                not Path(f"/proc/{pid}").exists() or "Z" in Path(f"/proc/{pid}/stat").read_text().split()[2]
            ), f"pid {pid} still runs after mura down"


def _client(report) -> AirflowClient:
    return AirflowClient(report["urls"]["airflow"], report["airflow_user"], report["airflow_password"])


def test_status_reports_every_service_healthy_and_up_is_idempotent(stack):
    env, report = stack
    assert report["healthy"] and report["airflow_password"]
    assert set(report["services"]) == {
        "mlflow",
        "serving",
        "gateway",  # nginx is installed (.ci/run): TLS in front of the serving process
        "airflow-api-server",
        "airflow-scheduler",
        "airflow-dag-processor",
        "airflow-triggerer",
    }
    again = json.loads(mura(env, "up", "--json").stdout)
    assert {name: entry["pid"] for name, entry in again["services"].items()} == {
        name: entry["pid"] for name, entry in report["services"].items()
    }
    status = json.loads(mura(env, "status", "--json").stdout)
    assert status["healthy"] and status["urls"]["airflow"] == env["AIRFLOW_URL"]
    # MLflow runs its basic-auth app: no answer without a login; the accounts file is the owner's only.
    search = f"{env['MLFLOW_TRACKING_URI']}/api/2.0/mlflow/experiments/search?max_results=1"
    assert requests.get(search, timeout=10).status_code == 401
    assert requests.get(search, auth=("reviewer", status["mlflow_password"]), timeout=10).ok
    assert stat.S_IMODE(Path(status["mlflow_accounts"]).stat().st_mode) == 0o600


def test_up_names_a_port_that_is_already_taken(stack, tmp_path):
    env, _ = stack
    other = {**env, "MURA_HOME": str(tmp_path / "other_home")}  # a second stack wanting the same ports
    result = mura(other, "up", check=False, timeout=120)
    assert result.returncode == 1
    port = env["MLFLOW_TRACKING_URI"].rsplit(":", 1)[1]
    assert f"port {port}" in result.stderr and "already in use" in result.stderr


def test_invalid_params_are_refused_with_the_reason(stack):
    _, report = stack
    with pytest.raises(Exception, match="epochs"):
        _client(report).trigger("mura_retrain", {"epochs": 0})


def test_retrain_command_trains_registers_deploys_and_serves_over_grpc(stack):
    env, report = stack
    # `mura retrain --wait` triggers through Airflow's REST API, shows task states live, and exits
    # with the run's state.
    done = mura(
        env, "retrain", "--preset", "ci_tiny", "--epochs", "10", "--wait", "--json", timeout=RUN_TIMEOUT
    )
    result = json.loads(done.stdout)
    assert result["state"] == "success", result["tasks"]
    assert result["conf"] == {"preset": "ci_tiny", "epochs": 10}
    assert result["tasks"]["gate"] == "success" and "train[0]" in result["tasks"]
    train_states = re.findall(r"^  train\[0\] +(\w+)$", done.stderr, re.MULTILINE)
    assert "running" in train_states and train_states[-1] == "success", done.stderr[-2000:]
    listed = json.loads(mura(env, "runs", "--airflow", "--json").stdout)
    assert listed[0]["dag_run_id"] == result["dag_run_id"] and listed[0]["state"] == "success"
    models = json.loads(mura(env, "models", "--json").stdout)
    assert [(row["model"], row["version"], row["labels"]) for row in models] == [
        ("mura_binary", 1, ["stable"])
    ]
    assert "champion" in models[0]["aliases"] and models[0]["gate"] == "passed"
    runs = json.loads(mura(env, "runs", "--json").stdout)
    assert models[0]["run_id"] in {run["run_id"] for run in runs}

    from serving.client import ServingClient

    studies = sorted((Path(env["MURA_DATA_DIR"]) / "MURA-v1.1" / "valid").glob("XR_*/patient*/study*"))[:4]
    with ServingClient(env["MURA_SERVING_GRPC"], protocol="grpc") as serving:
        answers = [serving.predict_study(study, model="mura_binary", label="stable") for study in studies]
    assert {answer["version"] for answer in answers} == {1}
    # The same answers through the TLS gateway, which refuses the reload call the reconciler uses.
    urls = report["urls"]
    with ServingClient(urls["gateway_grpc"], tls_ca=urls["gateway_certificate"]) as gateway:
        through = [gateway.predict_study(study, model="mura_binary", label="stable") for study in studies]
    assert through == answers
    assert all(0.0 <= answer["abnormal_probability"] <= 1.0 for answer in answers)
    printed = mura(env, "predict", str(studies[0]), "--label", "stable")
    assert printed.stdout.startswith("X-ray of XR_") and "probability" in printed.stdout


def test_the_retrain_is_traceable_registered_once_and_a_second_deploy_changes_nothing(stack):
    """Reads the run of the test above: one lineage query names the DAG run, the GX result, the data
    version and the served files' hash; registering the run again reuses its version; mura_deploy
    with nothing to do writes nothing."""
    env, report = stack
    client = _client(report)
    lineage = json.loads(mura(env, "lineage", "mura_binary@champion", "--json").stdout)
    assert client.run("mura_retrain", lineage["airflow"]["dag_run_id"])["state"] == "success"
    assert 0.0 < lineage["evaluation"]["study_kappa"] <= 1.0 and lineage["evaluation"]["study_auroc"]
    assert lineage["validation"]["success"] == "True" and lineage["validation"]["docs"].startswith("file://")
    assert lineage["data"]["versioned"] == "true" and lineage["training"]["code_dirty"] == "false"
    assert json.loads(lineage["training"]["overrides"]) == {"architectures": ["baseline_cnn"], "epochs": 10}
    data_dvc = Path(env["MURA_REPO_ROOT"]) / "data.dvc"
    assert (
        lineage["data"]["md5"] == lineage["data"]["dvc_md5"]
        and lineage["data"]["md5"] in data_dvc.read_text()
    )
    assert lineage["serving"]["labels"] == ["stable"] and lineage["serving"]["hash_matches"] is True
    reverse = json.loads(mura(env, "lineage", "--data", "HEAD", "--json").stdout)
    assert [(item["model"], item["version"]) for item in reverse["versions"]] == [("mura_binary", 1)]
    assert reverse["served"] is True

    again = json.loads(mura(env, "register", lineage["training"]["run_id"], "--json").stdout)
    assert (again["version"], again["reused"], again["gate"]["repeated"]) == (1, True, True)
    listed = json.loads(mura(env, "models", "--json").stdout)
    assert [(row["model"], row["version"]) for row in listed] == [("mura_binary", 1)]

    config = Path(env["MURA_MODEL_BASE_PATH"]) / "models.config"
    before = (config.read_bytes(), config.stat().st_mtime_ns)
    run_id = client.trigger("mura_deploy")
    assert client.wait("mura_deploy", run_id, timeout=300) == "success"
    assert (config.read_bytes(), config.stat().st_mtime_ns) == before


def test_browser_login_and_trigger_through_the_form(stack):
    """The UI's form starts a run with its defaults and the scheduler runs it; the retrain's outcome is the
    one `mura retrain --wait` above checked (one full retrain per module), so this run is stopped once
    its first task has succeeded."""
    if not shutil.which(CHROMIUM) and not Path(CHROMIUM).exists():
        pytest.fail(
            "Chromium is missing for the browser test: run `apt-get install chromium` (Debian), then make test"
        )
    from playwright.sync_api import sync_playwright

    env, report = stack
    client = _client(report)
    before = {run["dag_run_id"] for run in client.runs("mura_retrain")}
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(
            executable_path=CHROMIUM,
            args=[
                "--no-sandbox",
                "--disable-gpu",
                "--disable-background-networking",
                "--disable-component-update",
                "--disable-sync",
            ],
        )
        page = browser.new_page(viewport={"width": 1400, "height": 900})
        page.goto(f"{report['urls']['airflow']}/dags/mura_retrain")
        page.fill("input[name=username]", report["airflow_user"])
        page.fill("input[name=password]", report["airflow_password"])
        page.keyboard.press("Enter")
        page.get_by_role("button", name="Trigger").first.click()
        dialog = page.get_by_role("dialog")
        dialog.get_by_text("Run Parameters").wait_for()
        dialog.get_by_role("button", name="Trigger").click()
        run_id = _wait_for_new_run(client, before)
        started = _wait_for_task(client, run_id, "pull_data")
        page.goto(f"{report['urls']['airflow']}/dags/mura_retrain/runs/{run_id}")
        page.get_by_text(run_id).first.wait_for()
        page.screenshot(path=str(SCREENSHOTS / "airflow_ui_triggered_run.png"), full_page=True)
        browser.close()
    client.stop("mura_retrain", run_id)
    assert client.run("mura_retrain", run_id)["conf"]["preset"] == "ci_tiny"  # the form's default
    assert started == "success", client.task_states("mura_retrain", run_id)


def _wait_for_task(client: AirflowClient, run_id: str, task_id: str, timeout: float = 300.0) -> str:
    """The state of `task_id` in the run once it is done (success, failed, ...) or the last one seen."""
    import time

    deadline, state = time.monotonic() + timeout, "none"
    while time.monotonic() < deadline:
        state = client.task_states("mura_retrain", run_id).get(task_id, "none")
        if state in ("success", "failed", "upstream_failed", "skipped"):
            return state
        time.sleep(2)
    return state


def _wait_for_new_run(client: AirflowClient, before: set[str], timeout: float = 60.0) -> str:
    import time

    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        runs = client.runs("mura_retrain")
        new = [run["dag_run_id"] for run in runs if run["dag_run_id"] not in before]
        if new:
            return new[0]
        time.sleep(1)
    raise AssertionError("the UI's Trigger button created no run")


def test_signed_webhook_delivery_triggers_the_deploy_dag(stack, monkeypatch):
    import time
    import uuid

    import requests

    from pipelines.registry.webhook import (
        DELIVERY_HEADER,
        SIGNATURE_HEADER,
        TIMESTAMP_HEADER,
        WebhookReceiver,
        sign,
    )
    from pipelines.stack.airflow_api import trigger_dag_action

    env, report = stack
    for key in ("AIRFLOW_URL", "MURA_HOME", "MURA_REPO_ROOT"):
        monkeypatch.setenv(key, env[key])
    client = _client(report)
    before = {run["dag_run_id"] for run in client.runs("mura_deploy")}
    receiver = WebhookReceiver("e2e-secret", action=trigger_dag_action("mura_deploy"), port=0).start()
    try:
        body = json.dumps(
            {
                "entity": "model_version_alias",
                "action": "created",
                "data": {"name": "mura_binary", "alias": "champion", "version": "1"},
            }
        ).encode()
        delivery, stamp = str(uuid.uuid4()), str(int(time.time()))
        headers = {
            DELIVERY_HEADER: delivery,
            TIMESTAMP_HEADER: stamp,
            SIGNATURE_HEADER: sign("e2e-secret", delivery, stamp, body),
            "Content-Type": "application/json",
        }
        assert requests.post(receiver.url, data=body, headers=headers, timeout=10).status_code in (200, 202)
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline and not _webhook_runs(client, before):
            time.sleep(1)
    finally:
        receiver.stop()
    triggered = _webhook_runs(client, before)
    assert triggered, "no mura_deploy run was triggered by the delivery"
    assert triggered[0]["conf"]["webhook"]["data"]["alias"] == "champion"


def _webhook_runs(client: AirflowClient, before: set[str]) -> list[dict]:
    return [
        run
        for run in client.runs("mura_deploy")
        if run["dag_run_id"] not in before and "webhook" in (run.get("conf") or {})
    ]


def test_a_drifted_release_pushed_with_dvc_makes_the_monitor_ask_mura_retrain_to_run(stack, monkeypatch):
    """`mura data push` announces the new data version (the data Asset); mura_monitor finds it drifted from
    the champion's training data and emits the retrain Asset, which starts mura_retrain. Last of the
    module: that retrain is left running when the stack goes down."""
    import time

    import mlflow

    env, report = stack
    client = _client(report)
    for run in client.runs("mura_retrain"):  # the browser test's run: its dvc pull would race ours
        if run["state"] in ("queued", "running"):
            client.stop("mura_retrain", run["dag_run_id"])
    _wait_until_idle(client, ("mura_retrain", "mura_monitor"))
    before = {run["dag_run_id"] for run in client.runs("mura_retrain")}
    earlier_checks = {run["dag_run_id"] for run in client.runs("mura_monitor")}
    synth = ["data", "synth", "--out", env["MURA_DATA_DIR"], "--seed", "31", "--shift", "brightness"]
    mura(env, *synth, "--train-patients", "200", "--valid-patients", "60", timeout=300)
    client.unpause("mura_monitor")
    pushed = json.loads(mura(env, "data", "push", "--json", timeout=300).stdout)
    assert pushed["announced"].startswith("announced to Airflow"), pushed["announced"]

    deadline, asked, retrain = time.monotonic() + RUN_TIMEOUT, [], []
    while time.monotonic() < deadline and not (asked and retrain):
        for run in client.runs("mura_monitor"):
            if run["dag_run_id"] in earlier_checks:
                continue  # runs of the earlier tests' data versions
            states = client.task_states("mura_monitor", run["dag_run_id"])
            assert run["state"] != "failed", states
            if states.get("request_retrain") == "success":
                asked.append(run["dag_run_id"])
        retrain = [run for run in client.runs("mura_retrain") if run["dag_run_id"] not in before]
        time.sleep(3)
    assert asked, "no mura_monitor run asked for a retrain"
    assert retrain and retrain[0]["run_type"] == "asset_triggered", retrain

    from pipelines.registry.accounts import account

    viewer = account("viewer", Path(env["MURA_HOME"]), environ={})
    for name, value in viewer.environment().items():
        monkeypatch.setenv(name, value)
    tracking = mlflow.MlflowClient(env["MLFLOW_TRACKING_URI"])
    experiment = tracking.get_experiment_by_name("mura-monitoring")
    found = tracking.search_runs([experiment.experiment_id], "tags.`monitor.retrain_requested` = 'true'")
    assert len(found) == 1 and "mean_intensity" in found[0].data.tags["monitor.reasons"]


def _wait_until_idle(client: AirflowClient, dag_ids: tuple[str, ...]) -> None:
    import time

    deadline = time.monotonic() + RUN_TIMEOUT
    while time.monotonic() < deadline:
        active = [run for dag in dag_ids for run in client.runs(dag) if run["state"] in ("queued", "running")]
        if not active:
            return
        time.sleep(3)
    raise AssertionError(f"runs still active after {RUN_TIMEOUT} s: {active}")
