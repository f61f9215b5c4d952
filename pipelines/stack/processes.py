"""Background processes with pid and log files, stopped by process group and only if they are ours."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import time
from collections.abc import Callable
from pathlib import Path

from mura_core.errors import MuraError


class StackError(MuraError):
    """The embedded stack could not start or stop a service."""


def pid_file(run_dir: Path, name: str) -> Path:
    """Where the record of service `name` lives."""
    return run_dir / f"{name}.pid.json"


def alive(pid: int) -> bool:
    """True while `pid` runs (a zombie child counts as gone)."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    try:  # a zombie child of ours counts as gone
        return Path(f"/proc/{pid}/stat").read_text().split()[2] != "Z"
    except OSError:
        return True


def _start_time(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[19]
    except (OSError, IndexError):
        return ""


def running_pid(run_dir: Path, name: str) -> int | None:
    """The pid of our service `name` if it still runs (guards against a recycled pid)."""
    path = pid_file(run_dir, name)
    if not path.is_file():
        return None
    record = json.loads(path.read_text())
    pid = int(record["pid"])
    if alive(pid) and _start_time(pid) == record.get("start_time"):
        return pid
    path.unlink(missing_ok=True)
    return None


# The stack's processes create their databases, logs and stores readable by their user only, from the
# first byte (MLflow's auth.db holds every account's password hash).
PRIVATE_UMASK = 0o077


def start(name: str, command: list[str], env: dict[str, str], run_dir: Path, log_dir: Path) -> int:
    """Start `command` in its own session with output to `<log_dir>/<name>.log`; record its pid."""
    run_dir.mkdir(parents=True, exist_ok=True, mode=0o700)
    log_dir.mkdir(parents=True, exist_ok=True, mode=0o700)
    descriptor = os.open(log_dir / f"{name}.log", os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
    with os.fdopen(descriptor, "ab") as log:
        process = subprocess.Popen(
            command,
            env=env,
            stdout=log,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            start_new_session=True,
            cwd=env.get("MURA_REPO_ROOT"),
            umask=PRIVATE_UMASK,
        )
    record = {"pid": process.pid, "start_time": _start_time(process.pid), "command": command}
    pid_file(run_dir, name).write_text(json.dumps(record))
    return process.pid


def stop(name: str, run_dir: Path, timeout: float = 20.0) -> bool:
    """Stop our service `name` and its children (SIGTERM, then SIGKILL); False if it was not running."""
    pid = running_pid(run_dir, name)
    if pid is None:
        return False
    try:
        os.killpg(pid, signal.SIGTERM)
    except ProcessLookupError:
        pass
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline and alive(pid):
        time.sleep(0.2)
    try:
        os.killpg(pid, signal.SIGKILL)  # the rest of the group (workers that ignored SIGTERM)
    except ProcessLookupError:
        pass
    pid_file(run_dir, name).unlink(missing_ok=True)
    return True


def port_in_use(host: str, port: int) -> bool:
    """True when something accepts connections on host:port."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.settimeout(0.5)
        return probe.connect_ex((host, port)) == 0


def wait_until(check: Callable[[], bool], timeout: float, what: str, log: Path | None = None) -> None:
    """Poll `check` until it is true; on timeout raise naming `what` and the log to read."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            if check():
                return
        except Exception:  # noqa: BLE001 - any failure of a probe means "not ready yet"
            pass
        time.sleep(0.5)
    hint = f"; see {log}" if log else ""
    raise StackError(f"{what} did not become healthy within {int(timeout)} s{hint}")
