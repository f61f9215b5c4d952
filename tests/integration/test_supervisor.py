"""The embedded stack's supervisor, with a real supervisord: a service killed with -9 is started again
and finds its port free (what it left in its process group is killed first), its restarts are
counted, and a shutdown leaves no process behind."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time

import pytest

from mura_core.ports import free_ports
from pipelines.stack.processes import port_in_use
from tests.support import process_group

pytestmark = [pytest.mark.integration]

# A service like MLflow's server: the process supervisord started spawns a worker that holds the port.
SERVICE = """
import socket, subprocess, sys, time
port = int(sys.argv[1])
worker = subprocess.Popen([sys.executable, "-c", '''
import socket, sys, time
listener = socket.socket(); listener.bind(("127.0.0.1", int(sys.argv[1]))); listener.listen()
time.sleep(3600)
''', str(port)])
time.sleep(3600)
"""


def _wait(check, timeout: float = 20.0) -> None:
    deadline = time.monotonic() + timeout
    while not check():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.2)


def test_a_killed_service_comes_back_on_its_port_and_shutdown_leaves_nothing(tmp_path):
    from pipelines.stack import supervision as supervisor

    run_dir, log_dir = tmp_path / "run", tmp_path / "logs"
    (port,) = free_ports(1)
    script = tmp_path / "service.py"
    script.write_text(SERVICE)
    program = supervisor.Program("svc", [sys.executable, str(script), str(port)], str(tmp_path), {"X": "50%"})
    run_dir.mkdir(mode=0o700)
    supervisor.write_config(run_dir, log_dir, [program])
    supervisor.start_daemon(run_dir, log_dir, dict(os.environ))
    try:
        supervisor.start_program(run_dir, "svc")
        _wait(lambda: port_in_use("127.0.0.1", port))
        first = supervisor.programs_info(run_dir)["svc"]
        assert (
            first["state"] == "RUNNING" and first["restarts"] == 0 and len(process_group(first["pid"])) == 2
        )

        os.kill(first["pid"], signal.SIGKILL)  # the worker holding the port is left behind
        _wait(lambda: supervisor.programs_info(run_dir)["svc"]["pid"] not in (None, first["pid"]))
        _wait(
            lambda: (
                port_in_use("127.0.0.1", port)
                and supervisor.programs_info(run_dir)["svc"]["state"] == "RUNNING"
            )
        )
        second = supervisor.programs_info(run_dir)["svc"]
        assert second["restarts"] == 1 and process_group(first["pid"]) == []  # the old worker is gone
        assert len(process_group(second["pid"])) == 2
    finally:
        stopped = supervisor.shutdown(run_dir)
    assert stopped == ["svc"] and not supervisor.is_running(run_dir)
    assert process_group(second["pid"]) == [] and not port_in_use("127.0.0.1", port)


def test_the_reaper_kills_what_a_dead_leader_left_and_counts_only_unexpected_exits(tmp_path):
    from pipelines.stack.reaper import handle

    leader = subprocess.Popen(["sh", "-c", "sleep 300 & wait"], start_new_session=True)
    _wait(lambda: len(process_group(leader.pid)) == 2)
    leader.kill()
    leader.wait()
    assert len(process_group(leader.pid)) == 1  # the orphaned sleep
    payload = {"processname": "svc", "pid": str(leader.pid), "expected": "0"}
    assert "killed" in handle(tmp_path, "PROCESS_STATE_EXITED", payload)
    _wait(lambda: process_group(leader.pid) == [])
    handle(tmp_path, "PROCESS_STATE_STOPPED", {"processname": "svc", "pid": str(leader.pid)})
    assert (tmp_path / "restarts.json").read_text() == '{"svc": 1}'


def test_services_a_killed_supervisor_left_running_are_found_and_stopped(tmp_path):
    """kill -9 of supervisord left every service running unsupervised: `mura status` called them
    stopped, `mura down` found nothing and `mura up` met taken ports. Their recorded groups are found
    (status: UNSUPERVISED) and stopped, workers included; a stale record (reused pid) is not."""
    from pipelines.stack import groups
    from pipelines.stack import supervision as supervisor
    from pipelines.stack.control import _unsupervised

    run_dir, log_dir = tmp_path / "run", tmp_path / "logs"
    (port,) = free_ports(1)
    script = tmp_path / "service.py"
    script.write_text(SERVICE)
    program = supervisor.Program("svc", [sys.executable, str(script), str(port)], str(tmp_path))
    run_dir.mkdir(mode=0o700)
    supervisor.write_config(run_dir, log_dir, [program])
    supervisor.start_daemon(run_dir, log_dir, dict(os.environ))
    try:
        supervisor.start_program(run_dir, "svc")
        _wait(lambda: port_in_use("127.0.0.1", port) and "svc" in groups.live(run_dir))
        leader = supervisor.programs_info(run_dir)["svc"]["pid"]
        daemon = int((run_dir / supervisor.PID_FILE).read_text())
        os.kill(daemon, signal.SIGKILL)
        _wait(lambda: not supervisor.is_running(run_dir))
        assert port_in_use("127.0.0.1", port) and len(process_group(leader)) == 2  # still serving
        assert _unsupervised(run_dir)["svc"] == {
            "state": "UNSUPERVISED",
            "pid": leader,
            "uptime_s": 0,
            "restarts": 0,
        }
        assert groups.stop_live(run_dir) == ["reaper", "svc"]  # the orphaned event listener too
        assert process_group(leader) == [] and not port_in_use("127.0.0.1", port)
        assert groups.live(run_dir) == {}

    finally:  # whatever failed above, nothing of the test is left running
        groups.stop_live(run_dir)
        if supervisor.is_running(run_dir):
            supervisor.shutdown(run_dir)

    groups.record(run_dir, "gone", os.getpid())  # a record whose pid now names another process
    records = json.loads((run_dir / groups.GROUPS).read_text())
    records["gone"]["started"] = "1"
    (run_dir / groups.GROUPS).write_text(json.dumps(records))
    assert groups.live(run_dir) == {}
