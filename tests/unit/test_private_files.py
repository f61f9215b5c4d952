"""Secret files of the embedded stack are 0600 from the start; model names never become paths unchecked."""

from __future__ import annotations

import json
import os
import stat

import pytest

from mura_core.errors import ConfigError
from mura_core.private_files import read_private, write_private


@pytest.fixture
def open_umask():
    """umask 0: a file made with the default mode would be readable (and writable) by everyone."""
    previous = os.umask(0)
    yield
    os.umask(previous)


def mode(path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def test_write_private_creates_0600_and_replaces_atomically(tmp_path, open_umask, monkeypatch):
    seen = []
    real_replace = os.replace

    def replace(source, target):
        seen.append(mode(type(tmp_path)(source)))  # the file's mode before it gets its real name
        real_replace(source, target)

    monkeypatch.setattr(os, "replace", replace)
    path = write_private(tmp_path / "deep" / "secret", "one")
    assert mode(path) == 0o600 and seen == [0o600] and path.read_text() == "one"
    write_private(path, "two")
    assert path.read_text() == "two" and sorted(p.name for p in path.parent.iterdir()) == ["secret"]


def test_read_private_narrows_a_file_others_could_read(tmp_path):
    path = tmp_path / "old_secret"
    path.write_text("kept")
    path.chmod(0o644)
    assert read_private(path) == "kept" and mode(path) == 0o600


def test_the_stack_secrets_are_0600(tmp_path, open_umask):
    from mura_core.settings import get_settings
    from pipelines.stack.services import admin_password, airflow_home, jwt_secret, password_file

    settings = get_settings({"MURA_HOME": str(tmp_path / "home")})
    password = admin_password(settings)
    key = jwt_secret(settings)
    jwt = airflow_home(settings) / "jwt_secret"
    assert mode(password_file(settings)) == 0o600 and mode(jwt) == 0o600
    assert key == jwt.read_text().strip() == jwt_secret(settings)  # made once, read back
    assert admin_password(settings) == password


def test_the_mlflow_accounts_are_0600_and_reach_only_the_server_and_the_dag_tasks(
    tmp_path, open_umask, monkeypatch
):
    from mura_core.settings import get_settings
    from pipelines.stack.services import base_environment, service_secrets, services
    from pipelines.tracking.accounts import ROLES, accounts_file, auth_config_file

    # Secrets of the shell that runs `mura up` stay out of what every service shares.
    monkeypatch.setenv("MURA_SERVING_TOKEN", "made-up-token")
    monkeypatch.setenv("MLFLOW_TRACKING_PASSWORD", "made-up-password")
    monkeypatch.setenv("MURA_MLFLOW_REVIEWER_PASSWORD", "made-up-reviewer")
    # ... and those no list named (the shared environment once dropped a fixed list only).
    monkeypatch.setenv("MURA_WEBHOOK_SECRET", "made-up-webhook")
    monkeypatch.setenv("MLFLOW_TRACKING_TOKEN", "made-up-mlflow-token")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "made-up-s3-key")
    settings = get_settings({"MURA_HOME": str(tmp_path / "home")})
    mlflow = next(service for service in services(settings) if service.name == "mlflow")
    held = service_secrets(settings)  # the accounts are made here, once
    passwords = accounts_file(settings.mura_home)
    assert mode(passwords) == 0o600 and mode(auth_config_file(settings.mura_home)) == 0o600
    stored = json.loads(passwords.read_text())
    assert set(ROLES) <= set(stored) and len({stored[role] for role in ROLES}) == len(ROLES)
    # The server's environment (not a flag: the 5th field once took it as `any_http_status`).
    assert mlflow.any_http_status is False and "--app-name" in mlflow.command
    assert held["mlflow"]["MLFLOW_AUTH_ADMIN_PASSWORD"] == stored["admin"]
    assert mlflow.extra_env["MLFLOW_SERVER_ENABLE_JOB_EXECUTION"] == "false"
    assert stored["admin"] not in " ".join(mlflow.command)  # no secret on a command line
    # The DAG tasks run under the scheduler and act as `pipeline`; no other service holds its login.
    scheduler = held["airflow-scheduler"]
    assert (scheduler["MLFLOW_TRACKING_USERNAME"], scheduler["MLFLOW_TRACKING_PASSWORD"]) == (
        "pipeline",
        stored["pipeline"],
    )
    shared = set(base_environment(settings).values())
    made_up = {"made-up-token", "made-up-password", "made-up-reviewer", "made-up-webhook"}
    assert not shared & (set(stored.values()) | made_up | {"made-up-mlflow-token", "made-up-s3-key"})
    # The tasks (under the scheduler) need the S3 key for a DVC remote; no other service holds it.
    assert [name for name, row in held.items() if "made-up-s3-key" in row.values()] == ["airflow-scheduler"]
    assert not any(made_up & set(row.values()) for row in held.values())
    assert json.loads(passwords.read_text()) == stored  # generated once


@pytest.mark.parametrize("name", ["../../etc", "mura_binary/../../x", "/abs", "mura_Binary", ""])
def test_a_model_name_outside_the_contract_never_becomes_a_path(tmp_path, name):
    from pipelines.deployment.publishing import DeployOptions, version_folder

    options = DeployOptions(
        tmp_path, tmp_path / "models.config", "127.0.0.1:1", "grpc", 1.0, 1, 1.0, tmp_path / "q", ()
    )
    with pytest.raises(ConfigError, match="not allowed"):
        version_folder(options, name, 1)
    assert list(tmp_path.iterdir()) == []


def test_the_embedded_gateway_always_asks_for_a_token_made_once_0600(tmp_path, open_umask, monkeypatch):
    """The demo's gateway had no token, so the documented UNAUTHENTICATED answer never came: without
    MURA_SERVING_TOKEN the stack makes one (0600), writes it into the gateway's nginx.conf and keeps it;
    a token given at `mura up` wins."""
    from mura_core.settings import get_settings
    from pipelines.stack.services import gateway_token, write_gateway_config

    monkeypatch.delenv("MURA_SERVING_TOKEN", raising=False)
    settings = get_settings({"MURA_HOME": str(tmp_path / "home")})
    token = gateway_token(settings)
    stored = tmp_path / "home" / "secrets" / "gateway" / "token"
    assert len(token) >= 32 and mode(stored) == 0o600 and gateway_token(settings) == token
    assert f'"Bearer {token}" 1;' in write_gateway_config(settings).read_text()
    given = get_settings({"MURA_HOME": str(tmp_path / "home"), "MURA_SERVING_TOKEN": "made-up-token"})
    assert gateway_token(given) == "made-up-token"


def test_a_reviewer_has_one_login_for_airflow_and_mlflow(tmp_path, open_umask):
    """Airflow's reviewer and MLflow's reviewer had different passwords and nothing said which was
    which: the Airflow user `reviewer` now has the MLflow reviewer account's password, an older home's
    own one replaced (in the passwords file, 0600) before the stack starts."""
    import json

    from mura_core.settings import get_settings
    from pipelines.stack.services import password_file, reviewer_password
    from pipelines.tracking.accounts import ensure_embedded_accounts

    settings = get_settings({"MURA_HOME": str(tmp_path / "home")})
    password_file(settings).parent.mkdir(parents=True)
    password_file(settings).write_text(json.dumps({"admin": "kept", "reviewer": "an-older-homes-own"}))
    assert reviewer_password(settings) == ensure_embedded_accounts(settings.mura_home)["reviewer"]
    stored = json.loads(password_file(settings).read_text())
    assert stored == {"admin": "kept", "reviewer": reviewer_password(settings)}
    assert mode(password_file(settings)) == 0o600
