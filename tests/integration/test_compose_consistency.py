"""docker-compose.yml agrees with the code: queues, model base path, ports, MLflow hosts, versions, secrets shared."""

from __future__ import annotations

import ast
import re
from pathlib import Path

from pipelines.contracts import GPU_QUEUE
from tests.integration.compose_file import (
    AIRFLOW_SERVICES,
    FAKE_ENV,
    PORTS,
    REPO,
    SECRETS,
    flag,
    lock_pins,
    mount_target,
    published,
)


def test_training_queue_of_the_dag_is_the_gpu_worker_queue(resolved):
    tree = ast.parse((REPO / "dags" / "mura_retrain.py").read_text())
    queue_of_train = [
        keyword.value.id
        for node in ast.walk(tree)
        if isinstance(node, ast.FunctionDef) and node.name == "train"
        for decorator in node.decorator_list
        if isinstance(decorator, ast.Call)
        for keyword in decorator.keywords
        if keyword.arg == "queue"
    ]
    assert queue_of_train == ["GPU_QUEUE"], "the DAG's train task must use queue=GPU_QUEUE"
    services = resolved["services"]
    assert flag(services["airflow-worker-gpu"]["command"], "-q") == GPU_QUEUE
    assert flag(services["airflow-worker"]["command"], "-q") == "default"  # [operators] default_queue
    devices = services["airflow-worker-gpu"]["deploy"]["resources"]["reservations"]["devices"]
    assert devices and devices[0]["driver"] == "nvidia" and "gpu" in devices[0]["capabilities"]


def test_tfserving_reads_the_model_base_and_config_the_reconciler_writes(resolved, monkeypatch):
    from pipelines.registry.publishing import DeployOptions

    services = resolved["services"]
    for name, value in services["airflow-worker"]["environment"].items():
        monkeypatch.setenv(name, str(value))
    monkeypatch.setenv("MURA_PARAMS_FILE", str(REPO / "params.yaml"))  # the checkout is not at /opt/mura here
    options = DeployOptions.from_settings()
    serving = services["tfserving"]
    # The deploy task writes <model base>/models.config with base_path <model base>/<model>: the server must
    # see the same files at the same path (so no separate server_base_path is needed).
    assert options.server_base_path is None
    assert flag(serving["command"], "--model_config_file") == str(options.config_path)
    assert options.grpc_target == f"tfserving:{flag(serving['command'], '--port')}"
    volume = next(
        mount.split(":")[0] if isinstance(mount, str) else mount["source"]
        for mount in services["airflow-worker"]["volumes"]
        if (mount.split(":")[1] if isinstance(mount, str) else mount["target"])
        == str(options.model_base_path)
    )
    assert mount_target(serving, volume) == str(options.model_base_path)
    for name in ("airflow-worker-gpu", "airflow-init"):
        assert mount_target(services[name], volume) == str(options.model_base_path)
    assert float(flag(serving["command"], "--model_config_file_poll_wait_seconds")) > 0
    monitoring = flag(serving["command"], "--monitoring_config_file")
    assert (REPO / "infra" / "tfserving" / Path(monitoring).name).is_file()
    assert (
        'path: "/monitoring/prometheus/metrics"'
        in (REPO / "infra" / "tfserving" / "monitoring.config").read_text()
    )


def test_ports_match_the_design(resolved):
    services = resolved["services"]
    assert PORTS["airflow"] in published(services["airflow-apiserver"])
    assert PORTS["mlflow"] in published(services["mlflow"])
    assert int(flag(services["mlflow"]["command"], "--port")) == PORTS["mlflow"]
    assert {PORTS["grpc"], PORTS["rest"]} <= published(services["tfserving"])
    assert int(flag(services["tfserving"]["command"], "--port")) == PORTS["grpc"]
    assert int(flag(services["tfserving"]["command"], "--rest_api_port")) == PORTS["rest"]
    assert PORTS["minio"] in published(services["minio"])
    architecture = REPO / "docs" / "ARCHITECTURE.md"  # the repository's own design document must agree
    stated = re.search(
        r"Airflow API/UI (\d+), MLflow (\d+), TF Serving gRPC (\d+) and REST (\d+),\s+MinIO (\d+)",
        architecture.read_text(),
    )
    assert stated and tuple(map(int, stated.groups())) == tuple(PORTS.values()), architecture


def test_mlflow_allows_the_compose_host_name(resolved):
    from pipelines.registry.tracking_server import allowed_hosts

    command = resolved["services"]["mlflow"]["command"]
    assert set(flag(command, "--allowed-hosts").split(",")) == set(allowed_hosts(5000, ["mlflow"]).split(","))
    assert flag(command, "--artifacts-destination").startswith("s3://")
    assert resolved["services"]["mlflow"]["environment"]["MLFLOW_BACKEND_STORE_URI"].startswith(
        "postgresql://"
    )


def test_published_ports_bind_to_the_bind_address_and_no_secret_is_on_a_command_line(resolved):
    services = resolved["services"]
    for name, service in services.items():
        for port in service.get("ports", []):
            host_ip = port.get("host_ip") if isinstance(port, dict) else str(port).rsplit(":", 2)[0]
            assert host_ip == "127.0.0.1", f"{name} publishes {port} beyond 127.0.0.1 (MURA_BIND_ADDRESS)"
    secrets = [FAKE_ENV[name] for name in SECRETS]
    for name, service in services.items():
        argv = [service.get("command"), service.get("entrypoint"), service.get("healthcheck", {}).get("test")]
        shown = " ".join(str(part) for part in argv if part)
        leaked = [secret for secret in secrets if secret in shown]
        assert not leaked, f"{name} has a secret in its command line (visible in ps): {leaked}"
    # Redis expands its password at run time, so the resolved file cannot show it: check the flags.
    redis = services["redis"]
    assert "--requirepass" not in " ".join(redis["command"]) and " -a " not in " ".join(
        redis["healthcheck"]["test"]
    )


def test_image_versions_follow_the_lock(resolved):
    import importlib.metadata
    import sys

    lock = lock_pins()
    services = resolved["services"]
    airflow_args = services["airflow-worker"]["build"]["args"]
    gpu_args = services["airflow-worker-gpu"]["build"]["args"]
    mlflow_args = services["mlflow"]["build"]["args"]
    assert airflow_args["AIRFLOW_VERSION"] == gpu_args["AIRFLOW_VERSION"] == lock["apache-airflow"]
    assert airflow_args["PYTHON_VERSION"] == f"{sys.version_info.major}.{sys.version_info.minor}"
    assert gpu_args["TENSORFLOW_VERSION"] == lock["tensorflow"]
    assert services["tfserving"]["image"] == f"tensorflow/serving:{lock['tensorflow-serving-api']}"
    assert mlflow_args["MLFLOW_VERSION"] == lock["mlflow"]
    assert mlflow_args["PSYCOPG2_VERSION"] == lock["psycopg2-binary"]
    # boto3 is what the MLflow server needs for S3; until the lock pins it, the venv's version is the reference.
    assert mlflow_args["BOTO3_VERSION"] == (lock.get("boto3") or importlib.metadata.version("boto3"))
    dockerfile = (REPO / "infra" / "airflow" / "Dockerfile").read_text()
    assert f"ARG AIRFLOW_VERSION={lock['apache-airflow']}" in dockerfile
    assert f"ARG TENSORFLOW_VERSION={lock['tensorflow']}" in dockerfile
    assert "-c requirements.lock" in dockerfile and "tensorflow[and-cuda]" in dockerfile
    assert f"ARG MLFLOW_VERSION={lock['mlflow']}" in (REPO / "infra" / "mlflow" / "Dockerfile").read_text()


def test_airflow_containers_share_one_jwt_secret_fernet_key_and_database(resolved):
    services = resolved["services"]
    shared = (
        "AIRFLOW__API_AUTH__JWT_SECRET",
        "AIRFLOW__CORE__FERNET_KEY",
        "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN",
        "AIRFLOW__CELERY__BROKER_URL",
        "AIRFLOW__CORE__EXECUTOR",
    )
    values = {
        name: {services[service]["environment"][name] for service in AIRFLOW_SERVICES} for name in shared
    }
    assert all(len(found) == 1 for found in values.values()), values
    assert values["AIRFLOW__CORE__EXECUTOR"] == {"CeleryExecutor"}
    assert FAKE_ENV["AIRFLOW_JWT_SECRET"] in values["AIRFLOW__API_AUTH__JWT_SECRET"]
