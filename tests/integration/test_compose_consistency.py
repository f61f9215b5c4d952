"""docker-compose.yml agrees with the code: queues, model base path, ports, MLflow hosts, versions, secrets shared."""

from __future__ import annotations

import ast
import configparser
import re
from pathlib import Path

from mura_core.contracts import GPU_QUEUE
from mura_core.ports import host_port
from mura_core.settings import DEFAULT_GATEWAY_GRPC, DEFAULT_GATEWAY_REST
from pipelines.tracking.accounts import auth_settings
from pipelines.tracking.server import AUTH_APP
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
    from pipelines.deployment.publishing import DeployOptions

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


def test_tf_serving_polls_as_params_yaml_says(resolved):
    """The poll intervals had three values in three places (params.yaml, the local server, compose)."""
    from mura_core.config import load_config

    serving = load_config().serving
    command = resolved["services"]["tfserving"]["command"]
    for name in ("model_config_file_poll_wait_seconds", "file_system_poll_wait_seconds"):
        assert float(flag(command, f"--{name}")) == getattr(serving, name), name


def test_ports_match_the_design(resolved):
    services = resolved["services"]
    assert PORTS["airflow"] in published(services["airflow-apiserver"])
    assert PORTS["mlflow"] in published(services["mlflow"])
    assert int(flag(services["mlflow"]["command"], "--port")) == PORTS["mlflow"]
    # TF Serving is internal; the gateway publishes the inference surface on the settings' ports.
    assert published(services["tfserving"]) == set()
    assert published(services["gateway"]) == {
        host_port(DEFAULT_GATEWAY_GRPC)[1],
        host_port(DEFAULT_GATEWAY_REST)[1],
    }
    assert int(flag(services["tfserving"]["command"], "--port")) == PORTS["grpc"]
    assert int(flag(services["tfserving"]["command"], "--rest_api_port")) == PORTS["rest"]
    # MinIO's S3 API stays inside (DVC pushes from a one-off container); its console is published.
    assert published(services["minio"]) == {9001}
    assert (
        services["airflow-worker"]["environment"]["MURA_DVC_S3_ENDPOINT"] == f"http://minio:{PORTS['minio']}"
    )
    architecture = REPO / "docs" / "ARCHITECTURE.md"  # the repository's own design document must agree
    stated = re.search(
        r"Airflow API/UI (\d+), MLflow (\d+), TF Serving gRPC (\d+) and REST (\d+),\s+MinIO (\d+)",
        architecture.read_text(),
    )
    assert stated and tuple(map(int, stated.groups())) == tuple(PORTS.values()), architecture


def test_mlflow_allows_the_compose_host_name(resolved):
    from pipelines.tracking.server import allowed_hosts

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


def test_airflow_containers_share_one_fernet_key_and_database(resolved):
    services = resolved["services"]
    shared = (
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


AIRFLOW_ALL = set(AIRFLOW_SERVICES)
WORKERS = {"airflow-worker", "airflow-worker-gpu"}
# Which services hold each secret of .env (SECURITY.md's compose table): a service that never uses a
# secret must not hold it. Every Airflow container reads the metadata database (and its Fernet-encrypted
# connections) and knows the broker; only the api-server and the scheduler hold the JWT key (the
# workers run each task with the token its workload carries: tests/integration/test_celery_stack.py).
SECRET_HOLDERS = {
    "POSTGRES_PASSWORD": AIRFLOW_ALL | {"postgres", "mlflow"},
    "REDIS_PASSWORD": AIRFLOW_ALL | {"redis"},
    "AIRFLOW_FERNET_KEY": AIRFLOW_ALL,
    "AIRFLOW_JWT_SECRET": {"airflow-apiserver", "airflow-scheduler"},
    "AIRFLOW_ADMIN_PASSWORD": {"airflow-init"},
    "AIRFLOW_REVIEWER_PASSWORD": {"airflow-init"},
    "MINIO_ROOT_PASSWORD": {"minio", "minio-init"},
    "MINIO_DVC_PASSWORD": WORKERS | {"minio-init"},
    "MINIO_MLFLOW_PASSWORD": {"mlflow", "minio-init"},
    "MLFLOW_AUTH_ADMIN_PASSWORD": {"mlflow", "mlflow-accounts"},
    "MLFLOW_FLASK_SERVER_SECRET_KEY": {"mlflow"},
    "MURA_MLFLOW_PIPELINE_PASSWORD": WORKERS | {"mlflow-accounts"},
    "MURA_MLFLOW_REVIEWER_PASSWORD": {"mlflow-accounts"},
    "MURA_MLFLOW_DEPLOYER_PASSWORD": {"mlflow-accounts"},
    "MURA_MLFLOW_VIEWER_PASSWORD": {"airflow-triggerer", "mlflow-accounts"},
    "MURA_GATEWAY_TOKEN": {"gateway"},
    "MURA_PACS_PASSWORD": WORKERS | {"pacs"},
    "MURA_PACS_ADMIN_PASSWORD": {"pacs"},  # people's login: no worker holds it
    "MURA_GATE_SIGNING_KEY": {"airflow-worker"},  # the gate signs its verdicts: nothing else may
    "GRAFANA_ADMIN_PASSWORD": {"grafana"},
}


def test_each_service_holds_exactly_the_secrets_it_uses(resolved):
    """Every Airflow container once held the JWT key, the PACS password and DVC's S3 key."""
    assert set(SECRET_HOLDERS) == set(SECRETS)
    holders = {
        secret: {
            name
            for name, service in resolved["services"].items()
            if FAKE_ENV[secret] in str(service.get("environment", {}))
        }
        for secret in SECRETS
    }
    assert holders == SECRET_HOLDERS


def test_only_minio_and_its_init_job_hold_the_root_keys(resolved):
    root = FAKE_ENV["MINIO_ROOT_PASSWORD"]
    holders = {
        name for name, service in resolved["services"].items() if root in str(service.get("environment", {}))
    }
    assert holders == {"minio", "minio-init"}
    services = resolved["services"]
    assert services["mlflow"]["environment"]["AWS_SECRET_ACCESS_KEY"] == FAKE_ENV["MINIO_MLFLOW_PASSWORD"]
    for name in WORKERS:
        assert services[name]["environment"]["AWS_SECRET_ACCESS_KEY"] == FAKE_ENV["MINIO_DVC_PASSWORD"], name
    script = (REPO / "infra" / "minio" / "create-buckets.sh").read_text()
    assert script.count('scoped_user "') == 2 and "arn:aws:s3:::$3/*" in script


def test_mlflow_runs_basic_auth_and_only_the_workers_act_as_pipeline(resolved):
    services = resolved["services"]
    mlflow = services["mlflow"]
    assert flag(mlflow["command"], "--app-name") == AUTH_APP  # the guard over MLflow's basic-auth
    assert flag(mlflow["command"], "--workers") == "1"  # the throttle counts in one process
    assert mlflow["environment"]["FORWARDED_ALLOW_IPS"] == ""
    ini = REPO / "infra" / "mlflow" / Path(mlflow["environment"]["MLFLOW_AUTH_CONFIG_PATH"]).name
    assert "admin_password" not in ini.read_text()
    compose_ini, embedded_ini = configparser.ConfigParser(), configparser.ConfigParser()
    compose_ini.read_string(ini.read_text())
    embedded_ini.read_string(auth_settings(compose_ini["mlflow"]["database_uri"]))
    assert dict(compose_ini["mlflow"]) == dict(embedded_ini["mlflow"])  # the same rules in both stacks
    assert mlflow["environment"]["MLFLOW_AUTH_ADMIN_PASSWORD"] == FAKE_ENV["MLFLOW_AUTH_ADMIN_PASSWORD"]
    accounts = services["mlflow-accounts"]
    assert accounts["entrypoint"][-2:] == ["accounts", "--provision"]
    acting = {
        name for name, service in services.items()
        if service.get("environment", {}).get("MLFLOW_TRACKING_USERNAME") == "pipeline"
    }  # fmt: skip
    assert acting == {"airflow-worker", "airflow-worker-gpu"}
    reading = {  # the approval step's trigger looks at aliases: the read-only account
        name for name, service in services.items()
        if service.get("environment", {}).get("MLFLOW_TRACKING_USERNAME") == "viewer"
    }  # fmt: skip
    assert reading == {"airflow-triggerer"}
    for name in ("airflow-worker", "airflow-worker-gpu"):
        assert (
            services[name]["depends_on"]["mlflow-accounts"]["condition"] == "service_completed_successfully"
        )


def test_the_mlflow_image_installs_the_guard_the_entry_point_names_and_nothing_it_would_lack():
    """`--app-name mura-auth` needs the platform's `mlflow.app` entry point in the MLflow image; the
    image installs the package without dependencies, so the guard may import only the standard
    library and MLflow (with what MLflow's server brings), and the files its package needs must reach
    the build."""
    import sys
    import tomllib

    entry = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]["entry-points"]["mlflow.app"]
    module = entry[AUTH_APP].split(":")[0]
    source = Path(*module.split(".")).with_suffix(".py")
    needed = [source, *(parent / "__init__.py" for parent in source.parents if parent != Path("."))]
    needed += [Path("mura_core/__init__.py"), Path("mura_core/doors.py")]  # the room's front door
    dockerfile = (REPO / "infra" / "mlflow" / "Dockerfile").read_text()
    ignore = (REPO / "infra" / "mlflow" / "Dockerfile.dockerignore").read_text().splitlines()
    for path in needed:
        assert str(path) in dockerfile and f"!{path}" in ignore, path
    imported = set()
    for node in ast.walk(ast.parse((REPO / source).read_text())):
        if isinstance(node, ast.Import):
            imported |= {alias.name.split(".")[0] for alias in node.names}
        elif isinstance(node, ast.ImportFrom) and node.level == 0:
            imported.add(node.module.split(".")[0])
    # werkzeug: the request parser of MLflow's own Flask server, installed with MLflow.
    assert imported - set(sys.stdlib_module_names) <= {"__future__", "mlflow", "werkzeug"}, imported


def test_nothing_the_stack_runs_sends_telemetry(resolved):
    """A training task once failed inside MLflow's telemetry, and a hospital network allows no outbound
    call: every Airflow container and the MLflow server run with the libraries' telemetry off."""
    from mura_core import NO_TELEMETRY

    for name in (*AIRFLOW_SERVICES, "mlflow"):
        wanted = {key: value for key, value in NO_TELEMETRY.items() if name != "mlflow" or "DVC" not in key}
        environment = resolved["services"][name]["environment"]
        assert {key: environment.get(key) for key in wanted} == wanted, name


def test_the_mlflow_server_does_not_run_as_root(resolved):
    """MLflow ran as root in its container: a flaw that writes files wrote them as root. Its image ends
    as a user of its own that owns the one folder it writes (the login database's volume)."""
    lines = (REPO / "infra" / "mlflow" / "Dockerfile").read_text().splitlines()
    users = [line.split()[1] for line in lines if line.startswith("USER ")]
    assert users and users[-1] not in ("root", "0")
    assert "user" not in resolved["services"]["mlflow"]  # compose does not put it back
    assert any(
        volume.endswith(":/var/lib/mlflow-auth") or "mlflow-auth" in str(volume)
        for volume in resolved["services"]["mlflow"]["volumes"]
    )


def test_the_checkout_is_mounted_read_only_and_dvc_writes_into_volumes(resolved):
    for name, service in resolved["services"].items():
        for mount in service.get("volumes", []):
            source, target = (
                mount.split(":")[:2] if isinstance(mount, str) else (mount["source"], mount["target"])
            )
            if target == "/opt/mura/project":
                read_only = mount.endswith(":ro") if isinstance(mount, str) else mount.get("read_only")
                assert read_only, f"{name} mounts the checkout writable"
    worker = resolved["services"]["airflow-worker"]
    for target in ("/opt/mura/project/data", "/opt/mura/project/.dvc/cache", "/opt/mura/project/.dvc/tmp"):
        assert any(
            (mount.split(":")[1] if isinstance(mount, str) else mount["target"]) == target
            for mount in worker["volumes"]
        ), target


def test_the_pacs_route_filter_is_the_one_the_code_renders():
    from pipelines.pacs.orthanc import ROUTES_LUA

    committed = (REPO / "infra" / "pacs" / "platform_routes.lua").read_text()
    assert committed == ROUTES_LUA, "infra/pacs/platform_routes.lua is stale: run `make docs`"


def test_the_gateway_template_is_the_one_the_code_renders():
    from serving.gateway import compose_template

    committed = (REPO / "infra" / "gateway" / "gateway.conf.template").read_text()
    assert committed == compose_template(), "infra/gateway/gateway.conf.template is stale: run `make docs`"
