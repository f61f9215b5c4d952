"""The production shape's distributed path, for real: CeleryExecutor on PostgreSQL + Redis, a GPU queue, S3.

Airflow (api-server, scheduler, dag-processor, one Celery worker on `default` and one on `gpu`) and
MLflow run on private databases of the machine's PostgreSQL, Celery uses a free Redis db number, and
DVC data and MLflow artifacts go through a local SeaweedFS S3 gateway. `mura_retrain` runs on a tiny
synthetic set; the test checks which worker ran which task. Everything started is stopped and the
databases and the Redis db are left as they were found.
"""

from __future__ import annotations

import os
import uuid
from pathlib import Path

import pytest

from mura_core.ports import free_ports
from tests.integration import distributed

pytestmark = [pytest.mark.integration, pytest.mark.slow]

REPO = Path(__file__).resolve().parents[2]
DAG_ID = "mura_retrain"
CPU_WORKER, GPU_WORKER = "mura-test-cpu-worker", "mura-test-gpu-worker"
BUCKETS = {"dvc": "mura-dvc", "mlflow": "mura-mlflow"}  # the s3 remote of .dvc/config uses mura-dvc
RUN_TIMEOUT = 480.0


def airflow_env(settings, base: dict[str, str], airflow_db: str, redis_db: int, user: str) -> dict[str, str]:
    """The embedded stack's Airflow configuration switched to Celery on Postgres + Redis."""
    from cryptography.fernet import Fernet

    from pipelines.stack.services import airflow_environment, jwt_secret

    result_db = airflow_db.replace("postgresql+psycopg2://", "db+postgresql://")
    return {
        **base,
        **airflow_environment(settings),
        "AIRFLOW__API_AUTH__JWT_SECRET": jwt_secret(settings),  # one key: the scheduler signs, the API checks
        "AIRFLOW__CORE__EXECUTOR": "CeleryExecutor",
        "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN": airflow_db,
        # One api-server with every app here (the embedded stack runs the tasks' API apart).
        "AIRFLOW__CORE__EXECUTION_API_SERVER_URL": f"{settings.airflow_url.rstrip('/')}/execution/",
        "AIRFLOW__CELERY__BROKER_URL": f"redis://{distributed.REDIS_HOST}:{distributed.REDIS_PORT}/{redis_db}",
        "AIRFLOW__CELERY__RESULT_BACKEND": result_db,
        "AIRFLOW__CELERY__WORKER_CONCURRENCY": "1",
        "AIRFLOW__CORE__FERNET_KEY": Fernet.generate_key().decode(),
        # Both workers share this machine's name: each reports its own through this callable.
        "AIRFLOW__CORE__HOSTNAME_CALLABLE": "tests.integration.distributed.worker_hostname",
        "PYTHONPATH": str(REPO),
    }


@pytest.fixture
def celery_stack(tmp_path, monkeypatch):
    """Every service of the distributed path, started on free ports; yields what the test needs."""
    import requests

    from mura_core.settings import get_settings
    from pipelines.stack import processes
    from pipelines.stack.control import POOL_ARGUMENTS
    from pipelines.stack.services import admin_password, base_environment, serving_command
    from pipelines.tracking.server import server_command
    from serving.repository import read_models_config, write_models_config

    try:
        user = distributed.postgres_user()
        redis_db = distributed.empty_redis_db()
    except (RuntimeError, OSError) as error:
        pytest.fail(f"the distributed test needs the machine's PostgreSQL and Redis: {error}")
    databases_before = distributed.database_names(user)
    home, tag = tmp_path / "home", uuid.uuid4().hex[:8]
    airflow_port, mlflow_port, grpc_port, rest_port = free_ports(4)
    credentials = {
        "AWS_ACCESS_KEY_ID": distributed.S3_ACCESS_KEY,
        "AWS_SECRET_ACCESS_KEY": distributed.S3_SECRET_KEY,
        "AWS_DEFAULT_REGION": "us-east-1",
    }
    for name, value in credentials.items():
        monkeypatch.setenv(name, value)
    run_dir, log_dir = home / "run", home / "logs"
    started: list[str] = []
    databases: list[str] = []
    try:
        endpoint = distributed.start_seaweedfs(home, dict(os.environ))
        started.append("seaweedfs")
        distributed.create_buckets(endpoint, list(BUCKETS.values()))
        root = distributed.make_project(tmp_path, DAG_ID)
        for name, value in {
            "MURA_REPO_ROOT": str(root),
            "MURA_HOME": str(home),
            "MURA_DEFAULT_PRESET": "ci_tiny",
            "MURA_MODEL_BASE_PATH": str(home / "serving" / "models"),
            "MURA_DVC_REMOTE": "s3",
            "MURA_DVC_S3_ENDPOINT": endpoint,
            "MLFLOW_S3_ENDPOINT_URL": endpoint,
            "MLFLOW_TRACKING_URI": f"http://127.0.0.1:{mlflow_port}",
            "AIRFLOW_URL": f"http://127.0.0.1:{airflow_port}",
            "MURA_SERVING_GRPC": f"127.0.0.1:{grpc_port}",
            "MURA_SERVING_REST": f"127.0.0.1:{rest_port}",
        }.items():
            monkeypatch.setenv(name, value)
        settings = get_settings()
        distributed.version_data(root)
        # The shared environment drops every secret by name; the S3 keys are handed on as compose does.
        base = {**base_environment(settings), **credentials}

        mlflow_db = f"mura_test_mlflow_{tag}"
        databases.append(mlflow_db)
        mlflow_url = distributed.create_database(user, mlflow_db).replace("+psycopg2", "")
        command = server_command(
            mlflow_url, f"s3://{BUCKETS['mlflow']}/artifacts", host="127.0.0.1", port=mlflow_port
        )
        processes.start(
            "mlflow", command, {**base, "MLFLOW_SERVER_ENABLE_JOB_EXECUTION": "false"}, run_dir, log_dir
        )
        started.append("mlflow")
        processes.wait_until(
            lambda: requests.get(f"{settings.mlflow_tracking_uri}/health", timeout=3).ok,
            120,
            "the MLflow server",
            log_dir / "mlflow.log",
        )

        write_models_config(read_models_config(settings.models_config_path), settings.models_config_path)
        processes.start("serving", serving_command(settings), base, run_dir, log_dir)
        started.append("serving")

        airflow_db = f"mura_test_airflow_{tag}"
        databases.append(airflow_db)
        env = airflow_env(settings, base, distributed.create_database(user, airflow_db), redis_db, user)
        admin_password(settings)
        distributed.run_checked(["airflow", "db", "migrate"], env)
        distributed.run_checked(["airflow", "pools", "set", *POOL_ARGUMENTS], env)
        airflow = [str(Path(base["PATH"].split(":")[0]) / "airflow")]
        without_jwt = {name: value for name, value in env.items() if name != "AIRFLOW__API_AUTH__JWT_SECRET"}
        for name, command, extra in (
            ("airflow-api-server", ["api-server", "--port", str(airflow_port), "--host", "127.0.0.1"], {}),
            ("airflow-scheduler", ["scheduler"], {}),
            ("airflow-dag-processor", ["dag-processor"], {}),
            # --skip-serve-logs: two workers on one machine would both want port 8793; logs are local files.
            (
                "worker-default",
                ["celery", "worker", "-q", "default", "-H", f"{CPU_WORKER}@%h", "--skip-serve-logs"],
                {distributed.HOSTNAME_VARIABLE: CPU_WORKER},
            ),
            (
                "worker-gpu",
                ["celery", "worker", "-q", "gpu", "-H", f"{GPU_WORKER}@%h", "--skip-serve-logs"],
                {distributed.HOSTNAME_VARIABLE: GPU_WORKER},
            ),
        ):
            # Only the api-server (checks tokens) and the scheduler (signs them) hold the JWT key, as in
            # compose: the workers run their tasks with the token each workload carries.
            holds_jwt = name in ("airflow-api-server", "airflow-scheduler")
            process_env = {**env, **extra} if holds_jwt else {**without_jwt, **extra}
            processes.start(name, airflow + command, process_env, run_dir, log_dir)
            started.append(name)
        yield {
            "settings": settings,
            "endpoint": endpoint,
            "user": user,
            "mlflow_db": mlflow_db,
            "redis_db": redis_db,
            "log_dir": log_dir,
            "run_dir": run_dir,
            "airflow_logs": home / "logs" / "airflow",
        }
    finally:
        distributed.stop_all(started, run_dir)
        for name in databases:
            distributed.drop_database(user, name)
        distributed.redis_client(redis_db).flushdb()
    assert distributed.database_names(user) == databases_before, "the test left databases behind"


def _wait_for_dag(client, timeout: float = 180.0) -> None:
    from pipelines.stack import processes

    processes.wait_until(
        lambda: client.session.get(f"{client.base_url}/api/v2/dags/{DAG_ID}", timeout=5).ok,
        timeout,
        f"DAG {DAG_ID} parsed by the dag-processor",
    )


def _task_instances(client, run_id: str) -> list[dict]:
    response = client.session.get(
        f"{client.base_url}/api/v2/dags/{DAG_ID}/dagRuns/{run_id}/taskInstances",
        params={"limit": 100},
        timeout=15,
    )
    response.raise_for_status()
    return response.json()["task_instances"]


def _registered_models(user: str, database: str) -> set[str]:
    import psycopg2

    with (
        psycopg2.connect(
            host=distributed.POSTGRES_HOST, port=distributed.POSTGRES_PORT, user=user, dbname=database
        ) as connection,
        connection.cursor() as cursor,
    ):
        cursor.execute("SELECT name FROM registered_models")
        return {row[0] for row in cursor.fetchall()}


def test_retrain_runs_training_on_the_gpu_queue_with_postgres_redis_and_s3(celery_stack):
    import requests

    from pipelines.stack import processes
    from pipelines.stack.airflow_api import AirflowClient, AirflowError
    from pipelines.stack.services import AIRFLOW_ADMIN, admin_password

    settings = celery_stack["settings"]
    processes.wait_until(
        lambda: requests.get(f"{settings.airflow_url}/api/v2/monitor/health", timeout=5).ok,
        180,
        "the Airflow api-server",
        celery_stack["log_dir"] / "airflow-api-server.log",
    )
    client = AirflowClient(settings.airflow_url, AIRFLOW_ADMIN, admin_password(settings))
    _wait_for_dag(client)
    client.unpause(DAG_ID)
    for name in (
        "worker-default",
        "worker-gpu",
        "airflow-scheduler",
        "airflow-dag-processor",
        "mlflow",
        "serving",
    ):
        log = celery_stack["log_dir"] / f"{name}.log"
        assert processes.running_pid(celery_stack["run_dir"], name), (
            f"{name} exited:\n{log.read_text()[-3000:]}"
        )
    run_id = client.trigger(DAG_ID, {"preset": "ci_tiny", "epochs": 2, "approval": "off"})
    try:
        state = client.wait(DAG_ID, run_id, timeout=RUN_TIMEOUT, poll=2)
    except AirflowError as error:
        state = str(error)
    instances = _task_instances(client, run_id)
    summary = [
        (ti["task_id"], ti.get("map_index"), ti["state"], ti.get("queue"), ti.get("hostname"))
        for ti in instances
    ]
    assert state == "success", f"run {state}: {summary}\n{distributed.log_tails(celery_stack['log_dir'])}"

    trains = [ti for ti in instances if ti["task_id"] == "train"]
    assert trains, f"no train task instance: {summary}"
    assert {(ti["queue"], ti["hostname"]) for ti in trains} == {("gpu", GPU_WORKER)}, summary
    others = [ti for ti in instances if ti["task_id"] != "train"]
    assert {(ti["queue"], ti["hostname"]) for ti in others} == {("default", CPU_WORKER)}, summary

    # The data came through S3 (DVC remote `s3`) and so did the model: registry rows live in Postgres.
    assert distributed.s3_keys(celery_stack["endpoint"], BUCKETS["dvc"]), "DVC pushed nothing to S3"
    artifacts = distributed.s3_keys(celery_stack["endpoint"], BUCKETS["mlflow"])
    assert any(key.endswith("tf_serving/saved_model.pb") for key in artifacts), artifacts[:20]
    assert "mura_binary" in _registered_models(celery_stack["user"], celery_stack["mlflow_db"])
