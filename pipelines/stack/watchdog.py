"""Health checks of the embedded stack's services: a service that is alive but no longer answers is
killed, and supervisord starts it again.

supervisord restarts a process that exits; one that hangs (stopped with SIGSTOP, deadlocked, swapped
out) it never notices: with the first serving process stopped for 20 s, the gateway answered 11
requests where it answered 700 before. The reaper (supervisord's event listener) calls `tick` on
every TICK_5 event with the services that run. Each one with a health URL (what `mura up` waits for,
written by `up` to run/health.json) is checked at once, with a short timeout; a service that has
answered since it started and then misses MISSES checks in a row is killed as a group (SIGKILL: a
stopped process ignores SIGTERM) and supervisord's autorestart brings it back. A service that has not
answered yet is starting (Airflow takes a minute): `mura up` is the one that waits for it.
"""

from __future__ import annotations

import json
import os
import signal
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

HEALTH = "health.json"
MISSES = 3  # checks in a row, one per TICK_5: a hung service is killed 10-20 s after it stopped answering
TIMEOUT_SECONDS = 3.0  # a loaded 2-core machine answers health checks in well under a second


def write_checks(run_dir: Path, services) -> None:
    """run/health.json: each service's health check, for the reaper (services without one left out)."""
    from mura_core.atomic_files import replaced_atomically

    checks = {
        service.name: {
            "url": service.health_url,
            "ca": service.health_ca,
            "any_status": service.any_http_status,
        }
        for service in services
        if service.health_url
    }
    with replaced_atomically(Path(run_dir) / HEALTH) as temporary:
        temporary.write_text(json.dumps(checks, indent=1))


def answers(check: dict) -> bool:
    """True when the service answers its health URL in time (2xx, or any status where that counts)."""
    import requests

    try:
        response = requests.get(check["url"], timeout=TIMEOUT_SECONDS, verify=check.get("ca") or True)
    except requests.RequestException:
        return False
    return bool(check.get("any_status")) or response.ok


@dataclass
class _Seen:
    pid: int
    answered: bool = False
    misses: int = 0


class Watchdog:
    """Consecutive missed checks per running service; kills a service that stopped answering."""

    def __init__(self, run_dir: Path, probe=answers, kill=os.killpg):
        self.run_dir, self.probe, self.kill = Path(run_dir), probe, kill
        self.seen: dict[str, _Seen] = {}

    def _checks(self) -> dict[str, dict]:
        try:
            return json.loads((self.run_dir / HEALTH).read_text())
        except (OSError, ValueError):
            return {}

    def tick(self, running: dict[str, int]) -> list[str]:
        """Check every running service (name -> group leader's pid); the services killed now."""
        checks = self._checks()
        names = [name for name in running if name in checks]
        if not names:
            return []
        with ThreadPoolExecutor(max_workers=len(names)) as pool:
            results = dict(zip(names, pool.map(lambda name: self.probe(checks[name]), names), strict=True))
        killed = []
        for name, answered in results.items():
            seen = self.seen.get(name)
            if seen is None or seen.pid != running[name]:  # a new process: it must answer once first
                seen = self.seen[name] = _Seen(running[name])
            if answered:
                seen.answered, seen.misses = True, 0
                continue
            if not seen.answered:
                continue
            seen.misses += 1
            if seen.misses >= MISSES:
                try:
                    self.kill(seen.pid, signal.SIGKILL)
                except (ProcessLookupError, PermissionError):
                    pass
                del self.seen[name]
                killed.append(name)
        return killed
