"""`mura serve`: it execs the server process, which execs tensorflow_model_server where installed."""

from __future__ import annotations

import sys

import pytest


class Replaced(Exception):
    """Raised by the stubbed os.execv: the process would have been replaced here."""


def _stub_execv(monkeypatch, module) -> list:
    calls = []

    def fake_execv(binary, argv):
        calls.append(argv)
        raise Replaced

    monkeypatch.setattr(module.os, "execv", fake_execv)
    return calls


def test_mura_serve_execs_the_server_module_with_every_flag(monkeypatch):
    from pipelines.cli import main, serve

    calls = _stub_execv(monkeypatch, serve)
    with pytest.raises(Replaced):
        main(["serve", "--port", "9000", "--local", "--model_name=m"])
    assert calls[0] == [sys.executable, "-m", "serving.server", "--port", "9000", "--local", "--model_name=m"]


def test_server_execs_tensorflow_model_server_with_same_flags(tmp_path, monkeypatch):
    from serving.server import __main__ as server_main

    config = tmp_path / "models.config"
    config.write_text("model_config_list {}")
    calls = _stub_execv(monkeypatch, server_main)
    monkeypatch.setattr(server_main.shutil, "which", lambda name: "/usr/bin/tensorflow_model_server")
    argv = [
        "--port",
        "9000",
        "--model_config_file",
        str(config),
        "--model_config_file_poll_wait_seconds",
        "5",
    ]
    with pytest.raises(Replaced):
        server_main.main(argv)
    flags = calls[0]
    assert flags[0] == "/usr/bin/tensorflow_model_server"
    assert (
        "--port=9000" in flags
        and f"--model_config_file={config}" in flags
        and "--rest_api_port=8501" in flags
    )
    assert "--model_config_file_poll_wait_seconds=5.0" in flags
    assert not any(flag.startswith(("--bind_address", "--local")) for flag in flags)


def test_serve_without_a_config_says_what_to_do(tmp_path, monkeypatch, capsys):
    from serving.server import __main__ as server_main

    monkeypatch.setenv("MURA_HOME", str(tmp_path))
    monkeypatch.delenv("MURA_MODEL_BASE_PATH", raising=False)
    assert server_main.main(["--local"]) == 1
    assert "publish a model first" in capsys.readouterr().err
