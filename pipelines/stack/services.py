"""What the embedded stack runs: commands, environment, ports and health probes of each service."""

from __future__ import annotations

import json
import os
import re
import secrets
import shlex
import shutil
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

import requests

from mura_core import NO_TELEMETRY
from mura_core.contracts import REVIEWER_ROLE
from mura_core.ports import host_port
from mura_core.private_files import private_token, read_private, write_private
from mura_core.settings import EMBEDDED_MLFLOW_URL, Settings
from pipelines.tracking import (
    PIPELINE,
    REVIEWER,
    SERVER_ENVIRONMENT,
    VIEWER,
    account,
    embedded_store,
    ensure_embedded_accounts,
    server_command,
    server_environment,
)

if TYPE_CHECKING:
    from serving import GatewayCertificate

AIRFLOW_ADMIN = "admin"


@dataclass(frozen=True)
class Service:
    """One background process of the stack and how to tell it is healthy."""

    name: str
    command: list[str]
    ports: tuple[tuple[str, int], ...]
    health_url: str | None = None
    any_http_status: bool = False  # healthy once it answers HTTP at all (TF Serving has no health path)
    extra_env: dict[str, str] = field(default_factory=dict)
    health_ca: str | None = None  # the certificate a TLS health URL is checked against


def mlflow_url(settings: Settings) -> str:
    """The tracking server's URL: MLFLOW_TRACKING_URI when it is one, else the embedded server's."""
    if settings.mlflow_tracking_uri.startswith(("http://", "https://")):
        return settings.mlflow_tracking_uri.rstrip("/")
    return EMBEDDED_MLFLOW_URL


def airflow_home(settings: Settings) -> Path:
    """AIRFLOW_HOME of the embedded stack."""
    return settings.mura_home / "airflow"


def password_file(settings: Settings) -> Path:
    """The simple auth manager's passwords file of the embedded stack."""
    return airflow_home(settings) / "passwords.json"


def airflow_password(settings: Settings, user: str = AIRFLOW_ADMIN) -> str:
    """The password of an Airflow user of the embedded stack (admin, reviewer), made once per MURA_HOME
    and kept in the auth manager's passwords file (0600); a user an older home lacks is added."""
    path = password_file(settings)
    passwords = json.loads(read_private(path)) if path.is_file() else {}
    if user not in passwords:
        passwords[user] = secrets.token_urlsafe(12)
        write_private(path, json.dumps(passwords))
    return passwords[user]


def admin_password(settings: Settings) -> str:
    """The Airflow admin password."""
    return airflow_password(settings, AIRFLOW_ADMIN)


def reviewer_password(settings: Settings) -> str:
    """The password of the Airflow user `reviewer` (the one respondent of mura_retrain's approvals): the
    MLflow reviewer account's, so a reviewer has one login for both UIs (they differed, and nothing said
    which was which). An older home's own Airflow reviewer password is replaced before the stack starts."""
    wanted = ensure_embedded_accounts(settings.mura_home)[REVIEWER]
    path = password_file(settings)
    passwords = json.loads(read_private(path)) if path.is_file() else {}
    if passwords.get(REVIEWER_ROLE) != wanted:
        passwords[REVIEWER_ROLE] = wanted
        write_private(path, json.dumps(passwords))
    return wanted


# Variables that carry a secret: never in the environment every service shares (see service_secrets).
# By name, so a secret the shell holds that no list foresaw (a webhook secret, a cloud key, a token of
# another tool) stays out too.
SECRET_VARIABLES = ("MLFLOW_TRACKING_USERNAME",)  # a login's name goes with its password
SECRET_NAME = re.compile(r"PASSWORD|SECRET|TOKEN|CREDENTIAL|PRIVATE|FERNET|(^|_)KEY(_|$)|(^|_)AUTH(_|$)")
# What DVC needs to reach a cloud remote the shell configured (the tasks pull and push data).
DATA_REMOTE_CREDENTIALS = re.compile(r"^(AWS_|AZURE_STORAGE_|GOOGLE_APPLICATION_CREDENTIALS$|SSH_AUTH_SOCK$)")


def _is_secret(name: str) -> bool:
    return name in SECRET_VARIABLES or bool(SECRET_NAME.search(name.upper()))


def base_environment(settings: Settings) -> dict[str, str]:
    """Environment every stack process shares: the venv first on PATH and the platform's settings; no
    secret, not even one the invoking shell holds (each service gets its own: service_secrets)."""
    env = {name: value for name, value in os.environ.items() if not _is_secret(name)}
    venv_bin = str(Path(sys.executable).parent)
    env["PATH"] = venv_bin + os.pathsep + env.get("PATH", "")
    env.update(
        {
            "MURA_HOME": str(settings.mura_home),
            "MURA_REPO_ROOT": str(settings.repo_root),
            "MURA_MODEL_BASE_PATH": str(settings.model_base_path),
            "MURA_SERVING_GRPC": settings.serving_grpc,
            "MURA_SERVING_REST": settings.serving_rest,
            # Named too: the tasks set MURA_SERVING_GRPC, which alone would mean "no replica".
            "MURA_SERVING_REPLICA_GRPC": settings.serving_replica_grpc,
            "MURA_SERVING_REPLICA_REST": settings.serving_replica_rest,
            "MURA_DEFAULT_PRESET": settings.default_preset,
            "MLFLOW_TRACKING_URI": mlflow_url(settings),
            **NO_TELEMETRY,
            "TF_CPP_MIN_LOG_LEVEL": "2",
        }
    )
    return env


def service_secrets(settings: Settings) -> dict[str, dict[str, str]]:
    """The secrets each service holds in its environment, and no other (SECURITY.md's table): a
    process that never uses a secret cannot leak it (its environ, a crash report, a child it starts)."""
    ensure_embedded_accounts(settings.mura_home)
    # The JWT key signs (scheduler) and checks (API) tokens. Not its value but the command that reads
    # its 0600 file: the scheduler's task processes inherit its environment (LocalExecutor forks them),
    # and a task's environment ends up in crash reports and logs.
    jwt_secret(settings)
    jwt = {"AIRFLOW__API_AUTH__JWT_SECRET_CMD": f"cat {shlex.quote(str(jwt_secret_file(settings)))}"}
    logins = {
        role: login.environment()
        for role in (PIPELINE, VIEWER)
        if (login := account(role, settings.mura_home, environ={})) is not None
    }
    return {
        "mlflow": server_environment(settings.mura_home),
        "airflow-api-server": jwt,
        "airflow-execution-api": jwt,  # checks the tasks' tokens
        # Its tasks act as `pipeline`, reach the PACS with the login the shell gave `mura up`, and a
        # cloud DVC remote with the shell's keys for it.
        "airflow-scheduler": {**jwt, **logins.get(PIPELINE, {}), **_pacs_login(), **_data_remote_keys()},
        # The approval's trigger reads aliases; the triggerer reaches Airflow in-process (no token).
        "airflow-triggerer": logins.get(VIEWER, {}),
    }


def _pacs_login() -> dict[str, str]:
    """MURA_PACS_PASSWORD when the shell set it (else the tasks read the stack's own pacs.json)."""
    password = os.environ.get("MURA_PACS_PASSWORD")
    return {"MURA_PACS_PASSWORD": password} if password else {}


def _data_remote_keys() -> dict[str, str]:
    """The shell's credentials for a DVC remote (S3, Azure, GCS, an SSH agent), when it holds any."""
    return {name: value for name, value in os.environ.items() if DATA_REMOTE_CREDENTIALS.match(name)}


def jwt_secret_file(settings: Settings) -> Path:
    """Where the embedded stack keeps Airflow's JWT key (0600)."""
    return airflow_home(settings) / "jwt_secret"


def jwt_secret(settings: Settings) -> str:
    """The key Airflow signs and checks its API tokens with: made once, readable by its owner only."""
    return private_token(jwt_secret_file(settings))


def airflow_environment(settings: Settings) -> dict[str, str]:
    """Airflow's configuration for one machine: SQLite, a LocalExecutor, small parallelism, DAGs unpaused."""
    home = airflow_home(settings)
    host, port = host_port(settings.airflow_url)
    cores = os.cpu_count() or 2
    return {
        "AIRFLOW_HOME": str(home),
        "AIRFLOW__CORE__DAGS_FOLDER": str(settings.repo_root / "dags"),
        "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
        # LocalExecutor that runs an attempt lost with a killed scheduler again at once, its try given back.
        "AIRFLOW__CORE__EXECUTOR": "pipelines.stack.airflow_executor.MuraLocalExecutor",
        # Each running task is a process that may load TensorFlow: size the slots for the cores.
        "AIRFLOW__CORE__PARALLELISM": str(max(2, cores)),
        "AIRFLOW__CORE__MAX_ACTIVE_TASKS_PER_DAG": str(max(2, cores)),
        "AIRFLOW__CORE__DAGS_ARE_PAUSED_AT_CREATION": "False",
        "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN": f"sqlite:///{home / 'airflow.db'}",
        # The reviewer answers approvals (role user: it can see runs and respond, not administer).
        "AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_USERS": f"{AIRFLOW_ADMIN}:admin,{REVIEWER_ROLE}:user",
        "AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_PASSWORDS_FILE": str(password_file(settings)),
        "AIRFLOW__API__HOST": host,
        "AIRFLOW__API__PORT": str(port),
        "AIRFLOW__API__BASE_URL": settings.airflow_url,
        # The tasks' API in a process of its own (EXECUTION_API below).
        "AIRFLOW__CORE__EXECUTION_API_SERVER_URL": f"{settings.airflow_execution_url.rstrip('/')}/execution/",
        "AIRFLOW__DAG_PROCESSOR__REFRESH_INTERVAL": "10",
        "AIRFLOW__DAG_PROCESSOR__MIN_FILE_PROCESS_INTERVAL": "10",
        "AIRFLOW__SCHEDULER__STANDALONE_DAG_PROCESSOR": "True",
        "AIRFLOW__LOGGING__BASE_LOG_FOLDER": str(settings.mura_home / "logs" / "airflow"),
    }


def serving_command(settings: Settings, replica: int = 0) -> list[str]:
    """Serving process `replica` (0: the first) on the model base path, with TF Serving's Prometheus
    metrics on its REST port; poll intervals from params.yaml `serving`."""
    grpc, rest = settings.serving_replicas[replica]
    _, grpc_port = host_port(grpc)
    _, rest_port = host_port(rest)
    command = [
        sys.executable,
        "-m",
        "serving.server",
        f"--port={grpc_port}",
        f"--rest_api_port={rest_port}",
        f"--model_config_file={settings.models_config_path}",
    ]
    # The Prometheus path the docs and infra/prometheus name (compose's TF Serving reads the same file).
    monitoring = settings.repo_root / "infra" / "tfserving" / "monitoring.config"
    return command + ([f"--monitoring_config_file={monitoring}"] if monitoring.is_file() else [])


def nginx_binary() -> str | None:
    """Debian's nginx, when installed (it lives in /usr/sbin, often not on a user's PATH)."""
    return shutil.which("nginx") or shutil.which("nginx", path="/usr/sbin:/usr/local/sbin")


def gateway_folder(settings: Settings) -> Path:
    """The embedded gateway's nginx prefix: config, pid, temp files, logs."""
    return settings.mura_home / "gateway"


def gateway_certificate(settings: Settings) -> GatewayCertificate:
    """The embedded gateway's certificate and key for 127.0.0.1 and localhost, and the CA clients trust."""
    from serving import ensure_certificate

    return ensure_certificate(settings.mura_home / "secrets" / "gateway")


def gateway_token(settings: Settings) -> str:
    """The bearer token the embedded gateway requires: MURA_SERVING_TOKEN when set at `mura up`, else
    one made once per MURA_HOME (0600; `mura status` prints it). The gateway is never open: a client
    without it gets UNAUTHENTICATED, as docs/CLIENTS.md shows."""
    return settings.serving_token or private_token(settings.mura_home / "secrets" / "gateway" / "token")


def write_gateway_config(settings: Settings) -> Path:
    """The embedded gateway's nginx.conf: TLS on MURA_GATEWAY_GRPC/REST in front of the local server."""
    from serving import GatewayOptions, write_standalone

    certificate, key, _ = gateway_certificate(settings)
    options = GatewayOptions(
        grpc_listen=settings.gateway_grpc,
        rest_listen=settings.gateway_rest,
        upstream_grpc=tuple(grpc for grpc, _ in settings.serving_replicas),
        upstream_rest=tuple(rest for _, rest in settings.serving_replicas),
        certificate=str(certificate),
        key=str(key),
        token=gateway_token(settings),
    )
    return write_standalone(options, gateway_folder(settings))


def gateway_service(settings: Settings) -> Service | None:
    """nginx as the TLS inference gateway, when it is installed (`apt-get install nginx`)."""
    from serving import command

    nginx = nginx_binary()
    if nginx is None:
        return None
    folder = gateway_folder(settings)
    rest = host_port(settings.gateway_rest)
    return Service(
        "gateway",
        command(nginx, folder / "nginx.conf", folder),
        (host_port(settings.gateway_grpc), rest),
        f"https://{rest[0]}:{rest[1]}/v1/models/mura_binary",
        any_http_status=True,
        health_ca=str(gateway_certificate(settings).ca),
    )


def pacs_service(settings: Settings) -> Service | None:
    """Orthanc as the research PACS, when it is installed (`apt-get install orthanc orthanc-dicomweb`)."""
    from pipelines.pacs import command, orthanc_binary

    if orthanc_binary() is None:
        return None
    host, port = host_port(settings.pacs_url)
    # /system needs the login: any HTTP answer (401 included) says the server is up.
    return Service(
        "pacs", command(settings), ((host, port),), f"http://{host}:{port}/system", any_http_status=True
    )


def serving_name(replica: int) -> str:
    """The supervised program of serving process `replica`: serving, then serving-replica."""
    return "serving" if replica == 0 else "serving-replica"


def serving_services(settings: Settings) -> list[Service]:
    """Every serving process: each loads the same models.config; the gateway spreads requests over
    them and fails over while one restarts."""
    found = []
    for replica, (grpc, rest) in enumerate(settings.serving_replicas):
        rest_host, rest_port = host_port(rest)
        found.append(
            Service(
                serving_name(replica),
                serving_command(settings, replica),
                (host_port(grpc), (rest_host, rest_port)),
                f"http://{rest_host}:{rest_port}/v1/models/mura_binary",
                any_http_status=True,
            )
        )
    return found


def services(settings: Settings) -> list[Service]:
    """The stack's services in start order."""
    airflow = shutil.which("airflow", path=str(Path(sys.executable).parent)) or "airflow"
    mlflow_host, mlflow_port = host_port(mlflow_url(settings))
    airflow_host, airflow_port = host_port(settings.airflow_url)
    execution_host, execution_port = host_port(settings.airflow_execution_url)
    backend_store, artifacts = embedded_store(settings.mura_home)
    return [
        Service(
            "mlflow",
            server_command(
                backend_store, artifacts, mlflow_host, mlflow_port, proxy_artifacts=False, basic_auth=True
            ),
            ((mlflow_host, mlflow_port),),
            f"{mlflow_url(settings)}/health",
            # uvicorn trusts X-Forwarded-For from 127.0.0.1 by default: the login throttle keys on
            # the client's address, which a local guesser could then choose per request.
            extra_env={**SERVER_ENVIRONMENT, "FORWARDED_ALLOW_IPS": ""},
        ),
        *serving_services(settings),
        *([gateway] if (gateway := gateway_service(settings)) else []),
        *([pacs] if (pacs := pacs_service(settings)) else []),
        Service(
            "airflow-api-server",
            [airflow, "api-server", "--apps", "core", "--port", str(airflow_port), "--host", airflow_host],
            ((airflow_host, airflow_port),),
            f"{settings.airflow_url.rstrip('/')}/api/v2/monitor/health",
        ),
        # EXECUTION_API: the tasks' calls in a server of their own. In one server, a user's trigger
        # and a task's XCom write on SQLite stalled the whole process for the lock's 5 s (no request
        # answered meanwhile) and the trigger failed with HTTP 500 "Database error" (issue: one
        # `make demo` in thirteen; benchmarks/bench_stack_start.py counts it).
        Service(
            "airflow-execution-api",
            [
                airflow,
                "api-server",
                "--apps",
                "execution",
                "--port",
                str(execution_port),
                "--host",
                execution_host,
            ],
            ((execution_host, execution_port),),
            f"{settings.airflow_execution_url.rstrip('/')}/execution/health",
        ),
        # No log servers (8793, 8794: they listen on every interface, with no option to bind one):
        # the api-server reads the task logs from the shared log folder of this one machine.
        Service("airflow-scheduler", [airflow, "scheduler", "--skip-serve-logs"], ()),
        Service("airflow-dag-processor", [airflow, "dag-processor"], ()),
        Service("airflow-triggerer", [airflow, "triggerer", "--skip-serve-logs"], ()),
    ]


def healthy(service: Service) -> bool:
    """True when the service's health URL answers (2xx, or any status for `any_http_status`)."""
    if service.health_url is None:
        return True
    try:
        response = requests.get(service.health_url, timeout=3, verify=service.health_ca or True)
    except requests.RequestException:
        return False
    return service.any_http_status or response.ok
