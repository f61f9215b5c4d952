"""Secret files of the embedded stack are 0600 from the start; model names never become paths unchecked."""

from __future__ import annotations

import os
import stat

import pytest

from pipelines.errors import ConfigError
from pipelines.private_files import read_private, write_private


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
    from pipelines.settings import get_settings
    from pipelines.stack.services import admin_password, airflow_environment, airflow_home, password_file

    settings = get_settings({"MURA_HOME": str(tmp_path / "home")})
    password = admin_password(settings)
    environment = airflow_environment(settings)
    jwt = airflow_home(settings) / "jwt_secret"
    assert mode(password_file(settings)) == 0o600 and mode(jwt) == 0o600
    assert environment["AIRFLOW__API_AUTH__JWT_SECRET"] == jwt.read_text().strip()
    assert admin_password(settings) == password  # made once, read back


@pytest.mark.parametrize("name", ["../../etc", "mura_binary/../../x", "/abs", "mura_Binary", ""])
def test_a_model_name_outside_the_contract_never_becomes_a_path(tmp_path, name):
    from pipelines.registry.publishing import DeployOptions, version_folder

    options = DeployOptions(tmp_path, tmp_path / "models.config", "127.0.0.1:1", "grpc", 1.0, 1, 1.0)
    with pytest.raises(ConfigError, match="not allowed"):
        version_folder(options, name, 1)
    assert list(tmp_path.iterdir()) == []
