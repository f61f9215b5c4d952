"""The embedded MLflow tracking server: a real `mlflow server` process on SQLite with local artifacts.

The same command line serves the production shape: pass a Postgres `backend_store_uri` and an
`s3://` `artifacts_destination` (with MLFLOW_S3_ENDPOINT_URL and AWS credentials in the environment).
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

from mura_core.errors import TrackingUnavailableError
from mura_core.ports import free_port

LOCAL_HOST_NAMES = ("localhost", "127.0.0.1", "[::1]")
# The GenAI job runner forks several ~300 MB consumers; the registry needs none of them.
SERVER_ENVIRONMENT = {"MLFLOW_SERVER_ENABLE_JOB_EXECUTION": "false"}


def embedded_store(mura_home: Path) -> tuple[str, str]:
    """(backend store URI, artifacts destination) of the embedded default under MURA_HOME."""
    root = Path(mura_home) / "mlflow"
    return f"sqlite:///{root / 'mlflow.db'}", (root / "artifacts").as_uri()


def allowed_hosts(port: int, extra_hosts: tuple[str, ...] | list[str] = ()) -> str:
    """The `--allowed-hosts` value: local names and each extra name, with and without the port.

    MLflow compares the Host header exactly, so `mlflow` alone would refuse `mlflow:5000`.
    """
    names: list[str] = []
    for name in (*LOCAL_HOST_NAMES, *extra_hosts):
        names.extend((name, f"{name}:{port}"))
    return ",".join(dict.fromkeys(names))


AUTH_APP = "mura-auth"  # pipelines/tracking/guard.py, an `mlflow.app` entry point of this package


def server_command(
    backend_store_uri: str,
    artifacts_destination: str,
    host: str,
    port: int,
    extra_hosts: tuple[str, ...] | list[str] = (),
    workers: int = 1,
    proxy_artifacts: bool = True,
    basic_auth: bool = False,
) -> list[str]:
    """The one `mlflow server` argument list.

    `basic_auth`: MLflow's login app with the platform's guard (AUTH_APP: only the admin destroys or
    grants, failed logins throttled); its settings come from the environment (MLFLOW_AUTH_CONFIG_PATH,
    the admin password, the Flask secret key).

    `proxy_artifacts` (production): the server alone stores artifacts, under `artifacts_destination`,
    and clients send and fetch them over HTTP with their login (no S3 keys). Without it (the embedded
    stack) clients on the same machine read and write the artifact folder directly, so the CLI on the
    SQLite store (MLFLOW_TRACKING_URI unset) and the server see the same runs. Either way every
    experiment's artifacts lie under that one root: the guard refuses a client-chosen
    `artifact_location` and the UI's upload route (SECURITY.md).
    """
    artifacts = (
        ["--artifacts-destination", artifacts_destination, "--serve-artifacts"]
        if proxy_artifacts
        else ["--default-artifact-root", artifacts_destination, "--no-serve-artifacts"]
    )
    return [
        sys.executable, "-m", "mlflow", "server",
        "--backend-store-uri", backend_store_uri,
        *artifacts,
        "--host", host,
        "--port", str(port),
        "--workers", str(workers),
        "--allowed-hosts", allowed_hosts(port, extra_hosts),
        *(["--app-name", AUTH_APP] if basic_auth else []),
    ]  # fmt: skip


def wait_until_ready(
    uri: str, timeout_seconds: float = 90.0, process: subprocess.Popen | None = None
) -> None:
    """Poll `<uri>/health` until the server answers; TrackingUnavailableError after the timeout."""
    import requests

    deadline = time.monotonic() + timeout_seconds
    last_problem = "no answer yet"
    while time.monotonic() < deadline:
        if process is not None and process.poll() is not None:
            raise TrackingUnavailableError(
                f"mlflow server for {uri} exited with code {process.returncode} while starting; see its log"
            )
        try:
            response = requests.get(f"{uri}/health", timeout=2)
            if response.status_code == 200:
                return
            last_problem = f"HTTP {response.status_code}"
        except requests.RequestException as error:
            last_problem = type(error).__name__
        time.sleep(0.3)
    raise TrackingUnavailableError(
        f"MLflow tracking server {uri} not ready after {timeout_seconds:.0f}s ({last_problem})"
    )


@dataclass
class TrackingServer:
    """A running `mlflow server` process started by start_tracking_server."""

    uri: str
    process: subprocess.Popen
    log_path: Path
    backend_store_uri: str
    artifacts_destination: str

    def stop(self, timeout_seconds: float = 15.0) -> None:
        """Stop the server and its workers (they share its process group)."""
        if self.process.poll() is not None:
            return
        os.killpg(self.process.pid, signal.SIGTERM)
        try:
            self.process.wait(timeout=timeout_seconds)
        except subprocess.TimeoutExpired:
            os.killpg(self.process.pid, signal.SIGKILL)
            self.process.wait(timeout=timeout_seconds)


def start_tracking_server(
    mura_home: Path | None = None,
    host: str = "127.0.0.1",
    port: int | None = None,
    backend_store_uri: str | None = None,
    artifacts_destination: str | None = None,
    extra_hosts: tuple[str, ...] | list[str] = (),
    environment: dict[str, str] | None = None,
    timeout_seconds: float = 90.0,
    basic_auth: bool = False,
) -> TrackingServer:
    """Start `mlflow server` in the background (its own process group) and wait until it answers."""
    if mura_home is None:
        from mura_core.settings import get_settings

        mura_home = get_settings().mura_home
    default_backend, default_artifacts = embedded_store(Path(mura_home))
    backend_store_uri = backend_store_uri or default_backend
    artifacts_destination = artifacts_destination or default_artifacts
    if backend_store_uri.startswith("sqlite:///"):
        Path(backend_store_uri.removeprefix("sqlite:///")).parent.mkdir(parents=True, exist_ok=True)
    port = port or free_port(host)
    log_dir = Path(mura_home) / "logs"
    log_dir.mkdir(parents=True, exist_ok=True)
    log_path = log_dir / f"mlflow-server-{port}.log"
    command = server_command(
        backend_store_uri, artifacts_destination, host, port, extra_hosts, basic_auth=basic_auth
    )
    child_environment = {**os.environ, **SERVER_ENVIRONMENT, **(environment or {})}
    if basic_auth:
        from pipelines.tracking.accounts import server_environment

        child_environment.update(server_environment(Path(mura_home)))
    with open(log_path, "ab") as log:
        process = subprocess.Popen(
            command, stdout=log, stderr=subprocess.STDOUT, env=child_environment, start_new_session=True
        )
    connect_host = "127.0.0.1" if host in ("0.0.0.0", "") else host
    server = TrackingServer(
        f"http://{connect_host}:{port}", process, log_path, backend_store_uri, artifacts_destination
    )
    try:
        wait_until_ready(server.uri, timeout_seconds, process)
    except TrackingUnavailableError as error:
        server.stop()
        raise TrackingUnavailableError(f"{error} (log: {log_path})") from error
    return server
