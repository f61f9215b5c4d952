"""Nothing phones home: a hospital network allows no outbound call, and MLflow's telemetry (on by
default) once failed a training task's log-batch with KeyError '_MLFLOW_TELEMETRY_SESSION_ID'."""

from __future__ import annotations

import json
import os
import subprocess
import sys

from mura_core import NO_TELEMETRY


def test_a_process_that_imports_the_platform_has_telemetry_off():
    environment = {key: value for key, value in os.environ.items() if key not in NO_TELEMETRY}
    probe = "import json, os, pipelines.flows.retrain; print(json.dumps({k: os.environ.get(k) for k in %r}))"
    found = subprocess.run(
        [sys.executable, "-c", probe % (sorted(NO_TELEMETRY),)],
        env=environment,
        capture_output=True,
        text=True,
        check=True,
    )
    assert json.loads(found.stdout) == NO_TELEMETRY


def test_a_choice_in_the_environment_is_kept():
    environment = {**os.environ, "DO_NOT_TRACK": "false"}
    probe = "import os, serving.client; print(os.environ['DO_NOT_TRACK'])"
    found = subprocess.run([sys.executable, "-c", probe], env=environment, capture_output=True, text=True)
    assert found.stdout.strip() == "false"


def test_every_process_of_the_embedded_stack_starts_with_telemetry_off(tmp_path, monkeypatch):
    from mura_core.settings import get_settings
    from pipelines.stack.services import base_environment

    for key in NO_TELEMETRY:
        monkeypatch.delenv(key, raising=False)
    monkeypatch.setenv("MURA_HOME", str(tmp_path))
    environment = base_environment(get_settings())
    assert {key: environment.get(key) for key in NO_TELEMETRY} == NO_TELEMETRY
