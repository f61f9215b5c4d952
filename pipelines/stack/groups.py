"""Each service's process group, recorded in `$MURA_HOME/run/groups.json`, so that the stack can be
found and stopped without its supervisor.

supervisord is the parent of every service. Killed itself (kill -9, the OOM killer), it left all
nine running unsupervised: `mura status` called them stopped while they answered, `mura down` said
nothing was running, and `mura up` refused because their ports were taken. The reaper (supervisord's
event listener) records a service's group when it starts and forgets it when it ends; a record names
the leader's pid and its start time, so a pid the system has since reused is never taken for it.
"""

from __future__ import annotations

import json
import os
import signal
import time
from pathlib import Path

from mura_core.atomic_files import replaced_atomically

GROUPS = "groups.json"
STOP_SECONDS = 20.0  # SIGTERM, then SIGKILL, as the supervisor does


def start_time(pid: int) -> str | None:
    """The process's start time in clock ticks since boot (/proc/PID/stat, field 22); None when gone."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    return stat.rsplit(")", 1)[1].split()[19]  # fields after the command name, which may hold spaces


def _read(run_dir: Path) -> dict[str, dict]:
    try:
        return json.loads((run_dir / GROUPS).read_text())
    except (OSError, ValueError):
        return {}


def _write(run_dir: Path, groups: dict[str, dict]) -> None:
    with replaced_atomically(run_dir / GROUPS) as temporary:
        temporary.write_text(json.dumps(groups, indent=1))


def record(run_dir: Path, name: str, pid: int) -> None:
    """Service `name` runs as the group led by `pid`."""
    started = start_time(pid)
    if started is not None:
        _write(run_dir, {**_read(run_dir), name: {"pid": pid, "started": started}})


def forget(run_dir: Path, name: str) -> None:
    """Service `name` has ended."""
    groups = _read(run_dir)
    if groups.pop(name, None) is not None:
        _write(run_dir, groups)


def live(run_dir: Path) -> dict[str, int]:
    """name -> leader pid of every recorded group whose leader still runs (the same process)."""
    return {
        name: entry["pid"]
        for name, entry in _read(run_dir).items()
        if start_time(int(entry["pid"])) == entry.get("started")
    }


def _group_alive(pid: int) -> bool:
    try:
        os.killpg(pid, 0)
    except (ProcessLookupError, PermissionError):
        return False
    return True


def stop_live(run_dir: Path, timeout: float = STOP_SECONDS) -> list[str]:
    """Stop every live recorded group (SIGTERM, then SIGKILL after `timeout`); the services stopped."""
    found = live(run_dir)
    for pid in found.values():
        os.killpg(pid, signal.SIGTERM)
    deadline = time.monotonic() + timeout
    while any(_group_alive(pid) for pid in found.values()) and time.monotonic() < deadline:
        time.sleep(0.2)
    for pid in found.values():
        if _group_alive(pid):
            os.killpg(pid, signal.SIGKILL)
    (run_dir / GROUPS).unlink(missing_ok=True)
    return sorted(found)
