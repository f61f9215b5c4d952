"""`dag.test()` of mura_retrain and mura_deploy on tiny synthetic sets, with a real serving process."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from pipelines.settings import get_settings
from pipelines.stack.control import POOL_ARGUMENTS
from pipelines.stack.services import serving_command
from tests.support import mura, platform_env, versioned_synthetic_project

pytestmark = [pytest.mark.integration, pytest.mark.slow]
RUNNER = Path(__file__).with_name("run_dag.py")


def _airflow_env(project: Path, home: Path) -> dict[str, str]:
    airflow_home = home / "airflow"
    return platform_env(
        project,
        home,
        AIRFLOW_HOME=str(airflow_home),
        AIRFLOW__CORE__DAGS_FOLDER=str(project / "dags"),
        AIRFLOW__CORE__LOAD_EXAMPLES="False",
        AIRFLOW__DATABASE__SQL_ALCHEMY_CONN=f"sqlite:///{airflow_home / 'airflow.db'}",
        MLFLOW_TRACKING_URI=f"sqlite:///{home / 'mlflow' / 'mlflow.db'}",
    )


def _prepare_airflow(env: dict[str, str]) -> None:
    Path(env["AIRFLOW_HOME"]).mkdir(parents=True, exist_ok=True)
    for command in (["airflow", "db", "migrate"], ["airflow", "pools", "set", *POOL_ARGUMENTS]):
        subprocess.run(command, env=env, check=True, capture_output=True, timeout=300)


def run_dag(env: dict[str, str], dag_id: str, conf: dict | None = None) -> dict:
    """dag.test() in a subprocess; its state, task states and return values."""
    result = subprocess.run(
        [sys.executable, str(RUNNER), dag_id, json.dumps(conf or {}), env["AIRFLOW__CORE__DAGS_FOLDER"]],
        env=env,
        capture_output=True,
        text=True,
        timeout=900,
    )
    lines = [line for line in result.stdout.splitlines() if line.startswith("DAG-RESULT ")]
    assert lines, (
        f"dag.test of {dag_id} printed no result (exit {result.returncode}):\n{result.stderr[-4000:]}"
    )
    outcome = json.loads(lines[-1].removeprefix("DAG-RESULT "))
    outcome["log"] = result.stdout + result.stderr
    return outcome


@pytest.fixture
def serving(tmp_path):
    """A project with a clean tiny data set, its Airflow DB, and a `mura serve` process on its model base."""
    project, home = versioned_synthetic_project(tmp_path, train_patients=200, valid_patients=60)
    env = _airflow_env(project, home)
    _prepare_airflow(env)
    config = Path(env["MURA_MODEL_BASE_PATH"]) / "models.config"
    config.parent.mkdir(parents=True)
    config.write_text("model_config_list {\n}\n")
    server = subprocess.Popen(
        serving_command(get_settings(env)),
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    yield env
    server.terminate()
    server.wait(timeout=30)


def test_retrain_registers_gates_and_serves_then_deploy_is_idempotent(serving):
    env = serving
    outcome = run_dag(env, "mura_retrain", {"preset": "ci_tiny", "epochs": 10})
    assert outcome["state"] == "success", (outcome["tasks"], outcome["log"][-5000:])
    evaluated = outcome["results"]["evaluate[0]"]["metrics"]
    assert 0.0 < evaluated["eval.study_kappa"] <= 1.0 and "eval.study_auroc" in evaluated
    registered = outcome["results"]["select_and_register"]
    assert registered["model"] == "mura_binary" and registered["version"] == 1
    verdict = outcome["results"]["gate"]
    assert verdict["status"] == "passed" and "champion" in verdict["aliases"]
    deployed = outcome["results"]["deploy"]
    assert deployed["deployed"] is True and deployed["report"]["models"][0]["model"] == "mura_binary"

    from serving.client import ServingClient

    study = next((Path(env["MURA_DATA_DIR"]) / "MURA-v1.1" / "valid").glob("XR_*/patient*/study*"))
    with ServingClient(env["MURA_SERVING_GRPC"], protocol="grpc") as client:
        answer = client.predict_study(study, model="mura_binary", label="stable")
    assert answer["version"] == 1 and 0.0 <= answer["abnormal_probability"] <= 1.0

    # One lineage query names the DAG run, the GX result, the data version and the served files' hash.
    lineage = json.loads(mura(env, "lineage", "mura_binary@champion", "--json").stdout)
    assert lineage["airflow"]["dag_run_id"] == outcome["run_id"]
    assert lineage["validation"]["success"] == "True" and lineage["validation"]["docs"].startswith("file://")
    assert lineage["data"]["versioned"] == "true" and lineage["training"]["code_dirty"] == "false"
    assert json.loads(lineage["training"]["overrides"]) == {
        "architectures": ["baseline_cnn"],
        "epochs": 10,
    }
    data_dvc = Path(env["MURA_REPO_ROOT"]) / "data.dvc"
    assert (
        lineage["data"]["md5"] == lineage["data"]["dvc_md5"]
        and lineage["data"]["md5"] in data_dvc.read_text()
    )
    assert lineage["serving"]["labels"] == ["stable"] and lineage["serving"]["hash_matches"] is True
    reverse = json.loads(mura(env, "lineage", "--data", "HEAD", "--json").stdout)
    assert [(item["model"], item["version"]) for item in reverse["versions"]] == [("mura_binary", 1)]
    assert reverse["served"] is True

    # The run registered once; registering it again (a retried task, a user) reuses that version.
    again = json.loads(mura(env, "register", registered["run_id"], "--json").stdout)
    assert (again["version"], again["reused"], again["gate"]["repeated"]) == (1, True, True)
    listed = json.loads(mura(env, "models", "--json").stdout)
    assert [(row["model"], row["version"]) for row in listed] == [("mura_binary", 1)]

    config = Path(env["MURA_MODEL_BASE_PATH"]) / "models.config"
    before = (config.read_bytes(), config.stat().st_mtime_ns)
    again = run_dag(env, "mura_deploy")
    assert again["state"] == "success", again["log"][-3000:]
    assert again["results"]["reconcile"]["changed"] is False
    assert (config.read_bytes(), config.stat().st_mtime_ns) == before


def test_a_data_fault_stops_the_run_at_validate_data_and_registers_nothing(tmp_path):
    project, home = versioned_synthetic_project(
        tmp_path, train_patients=40, valid_patients=12, fault="label_mismatch"
    )
    env = _airflow_env(project, home)
    _prepare_airflow(env)
    outcome = run_dag(env, "mura_retrain", {"preset": "ci_tiny"})
    assert outcome["state"] == "failed"
    assert outcome["tasks"]["validate_data"] == "failed"
    assert outcome["tasks"]["pull_data"] == outcome["tasks"]["build_manifest"] == "success"
    assert all(
        state in ("upstream_failed", "None")
        for task, state in outcome["tasks"].items()
        if task.startswith(("plan_candidates", "train", "evaluate", "select_and_register", "gate", "deploy"))
    )
    assert "Data validation FAILED" in outcome["log"] and "label_matches_folder" in outcome["log"]
    import mlflow

    client = mlflow.MlflowClient(
        tracking_uri=env["MLFLOW_TRACKING_URI"], registry_uri=env["MLFLOW_TRACKING_URI"]
    )
    assert client.search_registered_models() == []
