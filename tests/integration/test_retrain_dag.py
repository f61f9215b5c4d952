"""`dag.test()` of mura_retrain on a tiny synthetic set with a data fault: the run stops at validation.

The successful retrain through Airflow, its lineage, a second registration and an idempotent deploy are
checked once, on the embedded stack's real scheduler (tests/e2e/test_embedded_stack.py)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from pipelines.stack.control import POOL_ARGUMENTS
from tests.support import platform_env, versioned_synthetic_project

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
