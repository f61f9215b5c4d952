"""`mura serve` flags: the local server's options, and exec of tensorflow_model_server when installed."""

from __future__ import annotations

import pytest

from pipelines.cli import build_parser


class Replaced(Exception):
    """Raised by the stubbed os.execv: the process would have been replaced here."""


def test_serve_execs_tensorflow_model_server_with_same_flags(tmp_path, monkeypatch):
    from pipelines.cli import serve

    config = tmp_path / "models.config"
    config.write_text("model_config_list {}")
    calls = []

    def fake_execv(binary, argv):
        calls.append(argv)
        raise Replaced

    monkeypatch.setattr(serve.shutil, "which", lambda name: "/usr/bin/tensorflow_model_server")
    monkeypatch.setattr(serve.os, "execv", fake_execv)
    argv = [
        "serve",
        "--port",
        "9000",
        "--model_config_file",
        str(config),
        "--model_config_file_poll_wait_seconds",
        "5",
    ]
    with pytest.raises(Replaced):
        serve.handle_serve(build_parser().parse_args(argv))
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
    from pipelines.cli import main

    monkeypatch.setenv("MURA_HOME", str(tmp_path))
    monkeypatch.delenv("MURA_MODEL_BASE_PATH", raising=False)
    assert main(["serve", "--local"]) == 1
    assert "publish a model first" in capsys.readouterr().err
