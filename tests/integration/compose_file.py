"""docker-compose.yml as the tests see it: resolved by `docker-compose config` (or here) and read helpers."""

from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path

import yaml

from mura_core.ports import host_port
from mura_core.settings import (
    DEFAULT_AIRFLOW_URL,
    DEFAULT_SERVING_GRPC,
    DEFAULT_SERVING_REST,
    EMBEDDED_MLFLOW_URL,
)

REPO = Path(__file__).resolve().parents[2]
COMPOSE = REPO / "docker-compose.yml"
SECRETS = (
    "POSTGRES_PASSWORD",
    "REDIS_PASSWORD",
    "MINIO_ROOT_PASSWORD",
    "AIRFLOW_FERNET_KEY",
    "AIRFLOW_JWT_SECRET",
    "AIRFLOW_ADMIN_PASSWORD",
    "AIRFLOW_REVIEWER_PASSWORD",
    "GRAFANA_ADMIN_PASSWORD",
    "MINIO_DVC_PASSWORD",
    "MINIO_MLFLOW_PASSWORD",
    "MLFLOW_AUTH_ADMIN_PASSWORD",
    "MLFLOW_FLASK_SERVER_SECRET_KEY",
    "MURA_MLFLOW_PIPELINE_PASSWORD",
    "MURA_MLFLOW_REVIEWER_PASSWORD",
    "MURA_MLFLOW_DEPLOYER_PASSWORD",
    "MURA_MLFLOW_VIEWER_PASSWORD",
    "MURA_GATEWAY_TOKEN",
    "MURA_PACS_PASSWORD",
    "MURA_PACS_ADMIN_PASSWORD",
    "MURA_GATE_SIGNING_KEY",
)
REQUIRED = (*SECRETS, "MINIO_ROOT_USER")
FAKE_ENV = {name: f"test-{name.lower().replace('_', '-')}" for name in REQUIRED}
SECRET_NAME = re.compile(r"PASSWORD|SECRET|FERNET|TOKEN|_KEY\b|_KEY_")
SERVICES = (
    "postgres",
    "redis",
    "minio",
    "minio-init",
    "mlflow",
    "mlflow-accounts",
    "airflow-init",
    "airflow-apiserver",
    "airflow-scheduler",
    "airflow-dag-processor",
    "airflow-triggerer",
    "airflow-worker",
    "airflow-worker-gpu",
    "tfserving",
    "gateway",
    "prometheus",
    "pushgateway",
    "grafana",
    "pacs",
)
AIRFLOW_SERVICES = [name for name in SERVICES if name.startswith("airflow-")]
# The settings' defaults are the one home of the ports; MinIO exists only in compose.
PORTS = {
    "airflow": host_port(DEFAULT_AIRFLOW_URL)[1],
    "mlflow": host_port(EMBEDDED_MLFLOW_URL)[1],
    "grpc": host_port(DEFAULT_SERVING_GRPC)[1],
    "rest": host_port(DEFAULT_SERVING_REST)[1],
    "minio": 9000,
}
COMPOSE_TOOL = shutil.which("docker-compose")
NO_TOOL = "docker-compose is not installed (Debian package docker-compose; .ci/run installs it)"


def compose_tool(env_file: Path, *args: str) -> subprocess.CompletedProcess:
    """Run docker-compose on the repo's compose file with `env_file` as its only source of variables."""
    # A clean environment: a developer's exported secrets or a real .env must not leak into the check.
    return subprocess.run(
        [
            COMPOSE_TOOL,
            "--project-directory",
            str(REPO),
            "-f",
            str(COMPOSE),
            "--env-file",
            str(env_file),
            *args,
        ],
        capture_output=True,
        text=True,
        check=False,
        env={"PATH": "/usr/bin:/bin"},
    )


def interpolate(text: str, env: dict[str, str]) -> str:
    """Compose's ${VAR}, ${VAR:-default} and ${VAR:?message} (the fallback when docker-compose is absent)."""

    def value(match: re.Match) -> str:
        name, operator, argument = match.group(1), match.group(2) or "", match.group(3) or ""
        if env.get(name):
            return env[name]
        if operator == ":?":
            raise ValueError(f"{name}: {argument}")
        return argument if operator == ":-" else ""

    return re.sub(r"\$\{(\w+)(:[-?])?([^}]*)\}", value, text).replace("$$", "$")


def write_env(path: Path, env: dict[str, str]) -> Path:
    """Write `env` as a .env file."""
    path.write_text("".join(f"{name}={value}\n" for name, value in env.items()))
    return path


def resolve(folder: Path) -> dict:
    """The compose file with every variable filled (by docker-compose when installed)."""
    if COMPOSE_TOOL:
        result = compose_tool(write_env(folder / ".env", FAKE_ENV), "config")
        assert result.returncode == 0, result.stderr
        return yaml.safe_load(result.stdout)
    return yaml.safe_load(interpolate(COMPOSE.read_text(), FAKE_ENV))


def lock_pins() -> dict[str, str]:
    """requirements.lock as {lower-case name: version}."""
    pins = {}
    for line in (REPO / "requirements.lock").read_text().splitlines():
        if "==" in line and not line.startswith("#"):
            name, version = line.split("==", 1)
            pins[name.strip().lower()] = version.strip()
    return pins


def flag(command: list[str], name: str) -> str:
    """The value of `--name=value` or `--name value` in a command list."""
    for index, part in enumerate(command):
        if part.startswith(f"{name}="):
            return part.split("=", 1)[1]
        if part == name:
            return command[index + 1]
    raise AssertionError(f"{name} not in {command}")


def mount_target(service: dict, volume: str) -> str:
    """Where `service` mounts the named volume `volume`."""
    for mount in service.get("volumes", []):
        source, target = (
            (mount["source"], mount["target"]) if isinstance(mount, dict) else mount.split(":")[:2]
        )
        if source == volume:
            return target
    raise AssertionError(f"volume {volume} is not mounted: {service.get('volumes')}")


def published(service: dict) -> set[int]:
    """The host ports `service` publishes."""
    ports = set()
    for port in service.get("ports", []):
        ports.add(int(port["published"]) if isinstance(port, dict) else int(str(port).split(":")[-2]))
    return ports
