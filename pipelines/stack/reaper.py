"""supervisord's event listener for the embedded stack: when a service's process exits or is stopped,
whatever it left in its process group is killed, and an unexpected exit is counted; when one starts,
its group is recorded (pipelines.stack.groups: found and stopped even with the supervisor dead).
Every five seconds (TICK_5) the running services' health is checked and one that stopped answering is
killed, so supervisord starts it again (pipelines.stack.watchdog).

A service killed by itself (kill -9, the OOM killer) leaves its children running: MLflow's server
workers hold its port, the scheduler's executor workers and task processes go on, and the restarted
service cannot bind or finds the old ones in its way. supervisord starts every program as the leader
of its own process group, so the group is exactly what the service left.

    python -m pipelines.stack.reaper RUN_DIR   (started by supervisord, never by hand)
"""

from __future__ import annotations

import json
import os
import signal
import sys
from pathlib import Path

from mura_core.atomic_files import replaced_atomically
from pipelines.stack import groups

RESTARTS = "restarts.json"


def kill_group(pid: int) -> bool:
    """SIGKILL every process left in the group `pid` led; False when none was left."""
    try:
        os.killpg(pid, signal.SIGKILL)
    except (ProcessLookupError, PermissionError):
        return False
    return True


def count_exit(run_dir: Path, name: str) -> None:
    """One more unexpected exit of `name` in RUN_DIR/restarts.json (what `mura status` shows)."""
    path = run_dir / RESTARTS
    counts = json.loads(path.read_text()) if path.is_file() else {}
    counts[name] = int(counts.get(name, 0)) + 1
    with replaced_atomically(path) as temporary:
        temporary.write_text(json.dumps(counts))


def handle(run_dir: Path, event: str, payload: dict[str, str]) -> str:
    """What one event did, for the listener's log."""
    name, pid = payload.get("processname", "?"), int(payload.get("pid", 0) or 0)
    if event == "PROCESS_STATE_RUNNING":
        groups.record(run_dir, name, pid)
        return f"{event} {name} pid {pid}: its group recorded"
    if event == "PROCESS_STATE_EXITED" and payload.get("expected") == "0":
        count_exit(run_dir, name)
    groups.forget(run_dir, name)
    left = kill_group(pid) if pid > 1 else False
    return f"{event} {name} pid {pid}: {'killed what it left in its group' if left else 'nothing left'}"


def main() -> int:
    from supervisor import childutils

    from pipelines.stack.watchdog import Watchdog

    run_dir = Path(sys.argv[1])
    watchdog = Watchdog(run_dir)
    while True:
        headers, body = childutils.listener.wait(sys.stdin, sys.stdout)
        payload = dict(token.split(":", 1) for token in body.split() if ":" in token)
        try:
            if headers["eventname"].startswith("TICK"):
                for name in watchdog.tick(groups.live(run_dir)):
                    print(
                        f"{name} stopped answering its health check: killed, to be restarted",
                        file=sys.stderr,
                        flush=True,
                    )
                continue
            print(handle(run_dir, headers["eventname"], payload), file=sys.stderr, flush=True)
        except Exception as error:  # noqa: BLE001 - one bad event must not stop the listener
            print(f"{headers.get('eventname')}: {type(error).__name__}: {error}", file=sys.stderr, flush=True)
        finally:
            childutils.listener.ok(sys.stdout)


if __name__ == "__main__":
    sys.exit(main())
