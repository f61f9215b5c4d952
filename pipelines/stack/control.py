"""Start, stop and report the embedded stack."""

from __future__ import annotations

import contextlib
import subprocess

from pipelines.contracts import DVC_POOL, DVC_POOL_DESCRIPTION, REVIEWER_ROLE
from pipelines.errors import MuraError
from pipelines.registry.accounts import REVIEWER, account, accounts_file
from pipelines.settings import Settings, get_settings
from pipelines.stack import processes
from pipelines.stack.processes import StackError
from pipelines.stack.services import (
    AIRFLOW_ADMIN,
    admin_password,
    airflow_environment,
    base_environment,
    gateway_certificate,
    healthy,
    mlflow_url,
    nginx_binary,
    password_file,
    reviewer_password,
    services,
    write_gateway_config,
)

POOL_ARGUMENTS = (DVC_POOL, "1", DVC_POOL_DESCRIPTION)
START_TIMEOUT = 180.0


def _dirs(settings: Settings):
    return settings.mura_home / "run", settings.mura_home / "logs"


def _environment(settings: Settings) -> dict[str, str]:
    env = base_environment(settings)
    env.update(airflow_environment(settings))
    return env


def _prepare(settings: Settings, env: dict[str, str]) -> None:
    """One-time state: the Airflow DB, the DVC pool, an empty models.config for the server."""
    from pipelines.pacs.orthanc import orthanc_binary
    from pipelines.pacs.orthanc import write_config as write_pacs_config
    from serving.repository import read_models_config, write_models_config

    admin_password(settings)
    reviewer_password(settings)
    if nginx_binary() is not None:
        write_gateway_config(settings)
    if orthanc_binary() is not None:
        write_pacs_config(settings)
    if not settings.models_config_path.is_file():
        write_models_config(read_models_config(settings.models_config_path), settings.models_config_path)
    for command in (["airflow", "db", "migrate"], ["airflow", "pools", "set", *POOL_ARGUMENTS]):
        result = subprocess.run(
            command, env=env, capture_output=True, text=True, check=False, umask=processes.PRIVATE_UMASK
        )
        if result.returncode != 0:
            last_line = (result.stderr.strip().splitlines() or ["no output"])[-1]
            raise StackError(f"'{' '.join(command)}' failed: {last_line}")


def _keep_private(settings: Settings) -> None:
    """MURA_HOME 0700 and its databases 0600 (a home an earlier version made 0755/0644 included); what
    the services create from now on is private from its first byte (processes.PRIVATE_UMASK)."""
    home = settings.mura_home
    home.mkdir(parents=True, exist_ok=True, mode=0o700)
    home.chmod(0o700)
    for database in (
        home / "airflow" / "airflow.db",
        home / "mlflow" / "mlflow.db",
        home / "mlflow" / "auth.db",
    ):
        if database.is_file():
            database.chmod(0o600)


def up(settings: Settings | None = None, timeout: float = START_TIMEOUT) -> dict:
    """Start every service not running yet, wait for health, and return the status."""
    settings = settings or get_settings()
    run_dir, log_dir = _dirs(settings)
    env = _environment(settings)
    todo = [service for service in services(settings) if processes.running_pid(run_dir, service.name) is None]
    for service in todo:
        for host, port in service.ports:
            if processes.port_in_use(host, port):
                raise StackError(
                    f"port {port} on {host} (needed by {service.name}) is already in use; "
                    "stop what listens there or change the port setting, then run 'mura up' again"
                )
    if todo:
        _keep_private(settings)
        _prepare(settings, env)
    for service in todo:
        processes.start(service.name, service.command, {**env, **service.extra_env}, run_dir, log_dir)
    for service in services(settings):
        processes.wait_until(
            lambda service=service: healthy(service), timeout, service.name, log_dir / f"{service.name}.log"
        )
        if service.name == "mlflow":
            _provision_accounts(settings)
    processes.wait_until(
        lambda: _airflow_components_healthy(settings),
        timeout,
        "the Airflow scheduler",
        log_dir / "airflow-scheduler.log",
    )
    return status(settings)


def _provision_accounts(settings: Settings) -> None:
    """The MLflow accounts and their permissions on the embedded server (idempotent)."""
    from pipelines.registry.accounts import ensure_embedded_accounts, provision

    try:
        provision(mlflow_url(settings), ensure_embedded_accounts(settings.mura_home))
    except MuraError as error:
        raise StackError(f"{error}; see {settings.mura_home / 'logs' / 'mlflow.log'}") from error


def down(settings: Settings | None = None) -> dict:
    """Stop what `up` started (by its pid records), in reverse order."""
    settings = settings or get_settings()
    run_dir, _ = _dirs(settings)
    stopped = [
        service.name for service in reversed(services(settings)) if processes.stop(service.name, run_dir)
    ]
    return {"stopped": stopped}


@contextlib.contextmanager
def paused(settings: Settings, name: str):
    """Stop service `name` (if it runs) for the block, then start it again and wait for its health:
    for a copy of files a running process keeps locked (Orthanc's index)."""
    run_dir, log_dir = _dirs(settings)
    service = next((s for s in services(settings) if s.name == name), None)
    if service is None or not processes.stop(name, run_dir):
        yield
        return
    try:
        yield
    finally:
        processes.start(
            name, service.command, {**_environment(settings), **service.extra_env}, run_dir, log_dir
        )
        processes.wait_until(lambda: healthy(service), START_TIMEOUT, name, log_dir / f"{name}.log")


def running_services(settings: Settings | None = None) -> list[str]:
    """The services `up` started that still run, from their pid records alone (building the services'
    environments would write generated secrets into MURA_HOME: a restore must not)."""
    settings = settings or get_settings()
    run_dir, _ = _dirs(settings)
    names = sorted(path.name.removesuffix(".pid.json") for path in run_dir.glob("*.pid.json"))
    return [name for name in names if processes.running_pid(run_dir, name) is not None]


def _airflow_components_healthy(settings: Settings) -> bool:
    health = _get_json(f"{settings.airflow_url.rstrip('/')}/api/v2/monitor/health")
    return all(health.get(part, {}).get("status") == "healthy" for part in ("metadatabase", "scheduler"))


def _get_json(url: str) -> dict:
    import requests

    try:
        response = requests.get(url, timeout=3)
        return response.json() if response.ok else {}
    except (requests.RequestException, ValueError):
        return {}


def status(settings: Settings | None = None) -> dict:
    """Each service's pid, URL and health, plus the Airflow admin user and password."""
    settings = settings or get_settings()
    run_dir, log_dir = _dirs(settings)
    report = {}
    for service in services(settings):
        pid = processes.running_pid(run_dir, service.name)
        report[service.name] = {
            "pid": pid,
            "running": pid is not None,
            "healthy": pid is not None and healthy(service),
            "log": str(log_dir / f"{service.name}.log"),
        }
    rest = settings.serving_rest
    reviewer = account(REVIEWER, settings.mura_home, environ={})
    urls = {
        "airflow": settings.airflow_url,
        "mlflow": mlflow_url(settings),
        "serving_grpc": settings.serving_grpc,
        "serving_rest": f"http://{rest}" if "://" not in rest else rest,
    }
    if "gateway" in report:
        urls["gateway_grpc"] = settings.gateway_grpc
        urls["gateway_rest"] = f"https://{settings.gateway_rest}"
        urls["gateway_certificate"] = str(gateway_certificate(settings)[0])
    if "pacs" in report:
        from pipelines.pacs.orthanc import credentials_file

        urls["pacs"] = settings.pacs_url
        urls["pacs_explorer"] = settings.pacs_url.removesuffix("/dicom-web") + "/app/explorer.html"
        urls["pacs_credentials"] = str(credentials_file(settings))
    return {
        "services": report,
        "urls": urls,
        "mura_home": str(settings.mura_home),
        "airflow_user": AIRFLOW_ADMIN,
        "airflow_password": admin_password(settings) if password_file(settings).is_file() else None,
        "airflow_reviewer": REVIEWER_ROLE,  # answers mura_retrain's approvals
        "airflow_reviewer_password": reviewer_password(settings)
        if password_file(settings).is_file()
        else None,
        "mlflow_accounts": str(accounts_file(settings.mura_home)),
        "mlflow_user": REVIEWER,
        "mlflow_password": reviewer.password if reviewer else None,
        "healthy": all(entry["healthy"] for entry in report.values()),
    }
