"""The embedded stack's watchdog: a service that answered and then stops answering is killed (so the
supervisor restarts it); one that is still starting, or answers again in time, is left alone."""

from __future__ import annotations

import json
import signal

from pipelines.stack.watchdog import HEALTH, MISSES, Watchdog


def test_a_service_that_stops_answering_is_killed_and_a_starting_one_is_not(tmp_path):
    checks = {
        name: {"url": f"http://127.0.0.1/{name}", "ca": None, "any_status": True} for name in ("a", "b")
    }
    (tmp_path / HEALTH).write_text(json.dumps(checks))
    answering, killed = {"a": True, "b": False}, []
    watchdog = Watchdog(tmp_path, probe=lambda check: answering[check["url"].rsplit("/", 1)[1]],
                        kill=lambda pid, sig: killed.append((pid, sig)))  # fmt: skip
    running = {"a": 10, "b": 20, "reaper": 30}  # b is starting (never answered); the reaper has no check
    for _ in range(MISSES + 2):
        assert watchdog.tick(running) == []
    answering["a"] = False  # hung: alive, not answering
    for _ in range(MISSES - 1):
        assert watchdog.tick(running) == []
    answering["a"] = True  # answered again in time: the count starts over
    assert watchdog.tick(running) == []
    answering["a"] = False
    results = [watchdog.tick(running) for _ in range(MISSES)]
    assert results[-1] == ["a"] and not any(results[:-1]) and killed == [(10, signal.SIGKILL)]
    running["a"] = 11  # restarted: a new process must answer once before it can be killed
    assert all(watchdog.tick(running) == [] for _ in range(MISSES + 1)) and len(killed) == 1
