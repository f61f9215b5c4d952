"""The monitor's metrics reach a real Pushgateway (Debian's prometheus-pushgateway) under the labels the
alert rules and the dashboard query; with the gateway down the check still writes them to a file."""

from __future__ import annotations

import logging
import shutil
import subprocess
import time

import pytest
import requests

from mura_core.ports import free_port
from tests.unit.test_prometheus import CHECK

pytestmark = [pytest.mark.integration]
GATEWAY = (
    shutil.which("prometheus-pushgateway") or "prometheus-pushgateway (Debian package; .ci/run installs it)"
)


@pytest.fixture
def gateway(tmp_path):
    port = free_port()
    process = subprocess.Popen(
        [GATEWAY, f"--web.listen-address=127.0.0.1:{port}"],
        stdout=subprocess.DEVNULL,
        stderr=(tmp_path / "pushgateway.log").open("w"),
    )
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 60  # generous: two test workers share the cores
    while time.monotonic() < deadline:
        try:
            if requests.get(f"{url}/-/ready", timeout=1).ok:
                break
        except requests.ConnectionError:
            time.sleep(0.2)
    else:
        process.kill()
        pytest.fail(f"the Pushgateway did not start: {(tmp_path / 'pushgateway.log').read_text()}")
    yield url
    process.terminate()
    process.wait(timeout=10)


def test_metrics_are_pushed_with_the_job_and_model_labels(gateway, tmp_path, monkeypatch):
    from pipelines.monitoring.metrics import publish

    monkeypatch.setenv("MURA_PUSHGATEWAY_URL", gateway)
    written = publish(CHECK, tmp_path / "monitoring")
    exposed = requests.get(f"{gateway}/metrics", timeout=5).text
    assert 'mura_monitor_drift_detected{instance="",job="mura_monitor",model="mura_binary"} 1' in exposed
    assert 'feature="mean_intensity"' in exposed and 'role="champion"' in exposed
    assert "mura_monitor_live_study_kappa" in written.read_text()


def test_a_gateway_that_is_down_costs_a_warning_not_the_check(tmp_path, monkeypatch, caplog):
    from pipelines.monitoring.metrics import publish

    monkeypatch.setenv("MURA_PUSHGATEWAY_URL", f"http://127.0.0.1:{free_port()}")
    with caplog.at_level(logging.WARNING):
        written = publish(CHECK, tmp_path / "monitoring")
    assert "could not push monitor metrics" in caplog.text and str(written) in caplog.text
    assert "mura_monitor_drift_detected" in written.read_text()
