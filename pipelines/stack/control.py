"""Start, stop and report the embedded stack."""

from __future__ import annotations

import contextlib
import functools
import subprocess

from mura_core.contracts import DVC_POOL, DVC_POOL_DESCRIPTION, REVIEWER_ROLE
from mura_core.errors import MuraError
from mura_core.settings import Settings, get_settings
from pipelines.stack import groups, processes, supervision, watchdog
from pipelines.stack.processes import StackError
from pipelines.stack.services import (
    AIRFLOW_ADMIN,
    admin_password,
    airflow_environment,
    base_environment,
    gateway_certificate,
    gateway_token,
    healthy,
    mlflow_url,
    nginx_binary,
    password_file,
    reviewer_password,
    service_secrets,
    services,
    write_gateway_config,
)
from pipelines.tracking import REVIEWER, account, accounts_file

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
    from pipelines.pacs import orthanc_binary
    from pipelines.pacs import write_config as write_pacs_config
    from serving import read_models_config, write_models_config

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


def _programs(settings: Settings) -> list[supervision.Program]:
    """Each service with its own environment on top of the shared one: its settings and its secrets."""
    held = service_secrets(settings)
    return [
        supervision.Program(
            service.name,
            service.command,
            str(settings.repo_root),
            {**service.extra_env, **held.get(service.name, {})},
        )
        for service in services(settings)
    ]


def up(settings: Settings | None = None, timeout: float = START_TIMEOUT) -> dict:
    """Start every service not running yet under the stack's supervisor, wait for health, and return
    the status."""
    settings = settings or get_settings()
    run_dir, log_dir = _dirs(settings)
    _stop_unsupervised(run_dir)
    if not supervision.is_running(run_dir):  # a killed supervisor's services hold the ports: stopped
        groups.stop_live(run_dir)
    env = _environment(settings)
    supervised = supervision.programs_info(run_dir)
    todo = [
        service
        for service in services(settings)
        if supervised.get(service.name, {}).get("state") not in ("RUNNING", "STARTING")
    ]
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
    supervision.write_config(run_dir, log_dir, _programs(settings))
    watchdog.write_checks(run_dir, services(settings))
    if supervision.is_running(run_dir):
        supervision.apply_config(run_dir)
    else:
        (run_dir / supervision.RESTARTS).unlink(missing_ok=True)
        supervision.start_daemon(run_dir, log_dir, env)
    for service in todo:  # all at once, as before: the health checks below wait for each in order
        supervision.start_program(run_dir, service.name, wait=False)
    for service in services(settings):
        processes.wait_until(
            functools.partial(healthy, service), timeout, service.name, log_dir / f"{service.name}.log"
        )
        if service.name == "mlflow":
            _provision_accounts(settings)
    processes.wait_until(
        lambda: _airflow_components_healthy(settings),
        timeout,
        "the Airflow scheduler",
        log_dir / "airflow-scheduler.log",
    )
    # Ready means a trigger works: every DAG file parsed and stored, not only the processes alive (a
    # trigger sent first got 404, and met the dag-processor's first writes).
    processes.wait_until(
        lambda: _dags_parsed(settings),
        timeout,
        "the Airflow dag-processor",
        log_dir / "airflow-dag-processor.log",
    )
    return status(settings)


def _dags_parsed(settings: Settings) -> bool:
    """True once Airflow's API lists a DAG for every file of the DAG folder (file name = DAG id)."""
    from pipelines.stack.airflow_api import AirflowError, client_from_settings

    wanted = {path.stem for path in (settings.repo_root / "dags").glob("mura_*.py")}
    try:
        listed = client_from_settings().dag_ids()
    except AirflowError:
        return False
    return wanted <= listed


def _stop_unsupervised(run_dir) -> list[str]:
    """Services an earlier version started with pid files (before the supervisor): stopped, so the
    supervised ones find their ports free."""
    names = sorted(path.name.removesuffix(".pid.json") for path in run_dir.glob("*.pid.json"))
    return [name for name in names if processes.stop(name, run_dir)]


def _provision_accounts(settings: Settings) -> None:
    """The MLflow accounts and their permissions on the embedded server (idempotent)."""
    from pipelines.tracking import ensure_embedded_accounts, provision

    try:
        provision(mlflow_url(settings), ensure_embedded_accounts(settings.mura_home))
    except MuraError as error:
        raise StackError(f"{error}; see {settings.mura_home / 'logs' / 'mlflow.log'}") from error


def down(settings: Settings | None = None) -> dict:
    """Stop every service (each with its whole process group), then the supervisor."""
    settings = settings or get_settings()
    run_dir, _ = _dirs(settings)
    stopped = supervision.shutdown(run_dir) + _stop_unsupervised(run_dir)
    # Services a killed supervisor left running (or, after a clean shutdown, none).
    stopped += [name for name in groups.stop_live(run_dir) if name not in stopped and name != "reaper"]
    return {"stopped": stopped}


@contextlib.contextmanager
def paused(settings: Settings, name: str):
    """Stop service `name` (if it runs) for the block, then start it again and wait for its health:
    for a copy of files a running process keeps locked (Orthanc's index)."""
    run_dir, log_dir = _dirs(settings)
    service = next((s for s in services(settings) if s.name == name), None)
    if service is None or not supervision.is_running(run_dir) or not supervision.stop_program(run_dir, name):
        yield
        return
    try:
        yield
    finally:
        supervision.start_program(run_dir, name)
        processes.wait_until(lambda: healthy(service), START_TIMEOUT, name, log_dir / f"{name}.log")


def running_services(settings: Settings | None = None) -> list[str]:
    """The services that run now, as the supervisor (and an older version's pid records) says: no
    service environment is built (that would write generated secrets into MURA_HOME: a restore must not)."""
    settings = settings or get_settings()
    run_dir, _ = _dirs(settings)
    names = {name for name, info in supervision.programs_info(run_dir).items() if info["pid"]}
    records = (path.name.removesuffix(".pid.json") for path in run_dir.glob("*.pid.json"))
    names |= {name for name in records if processes.running_pid(run_dir, name) is not None}
    return sorted(names)


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


def _unsupervised(run_dir) -> dict[str, dict]:
    """Services still running from a supervisor that died (state UNSUPERVISED: `mura up` or `mura
    down` stops them), as programs_info describes supervised ones."""
    return {
        name: {"state": "UNSUPERVISED", "pid": pid, "uptime_s": 0, "restarts": 0}
        for name, pid in groups.live(run_dir).items()
    }


def status(settings: Settings | None = None) -> dict:
    """Each service's pid, URL and health, plus the Airflow admin user and password."""
    settings = settings or get_settings()
    run_dir, log_dir = _dirs(settings)
    report = {}
    supervised = supervision.programs_info(run_dir) or _unsupervised(run_dir)
    for service in services(settings):
        info = supervised.get(service.name, {"state": "STOPPED", "pid": None, "uptime_s": 0, "restarts": 0})
        report[service.name] = {
            "pid": info["pid"],
            "running": info["pid"] is not None,
            "healthy": info["pid"] is not None and healthy(service),
            "state": info["state"],  # the supervisor's: RUNNING, STARTING, BACKOFF, FATAL, STOPPED
            "uptime_s": info["uptime_s"],
            "restarts": info["restarts"],  # unexpected exits the supervisor restarted since `mura up`
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
        urls["gateway_certificate"] = str(gateway_certificate(settings).ca)  # what clients trust
        urls["gateway_token"] = gateway_token(settings)  # what clients send (MURA_SERVING_TOKEN)
    if "pacs" in report:
        from pipelines.pacs import credentials_file

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
