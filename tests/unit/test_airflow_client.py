"""The platform's Airflow REST client in the first minute of a stack: a busy metadata database answers
500 ("Database error"); the client tries again, never starts a run twice, and says where the log is."""

from __future__ import annotations

import json
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from pipelines.stack.airflow_api import AirflowClient, AirflowError


class FakeAirflow(BaseHTTPRequestHandler):
    """Airflow's API as far as the client can tell: `failures` answers of 500 first, for each path
    (a trigger's first 500 after the run was stored, as a lost answer would look), then the real one."""

    failures = 0
    seen: dict[str, int] = {}
    runs: dict[str, dict] = {}

    def _answer(self, status: int, body: dict) -> None:
        data = json.dumps(body).encode()
        self.send_response(status)
        self.send_header("content-type", "application/json")
        self.send_header("content-length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def _handle(self) -> None:
        length = int(self.headers.get("content-length") or 0)
        body = json.loads(self.rfile.read(length) or b"{}")
        key = f"{self.command} {self.path}"
        self.seen[key] = self.seen.get(key, 0) + 1
        if self.path == "/auth/token":
            return self._answer(201, {"access_token": "t"})
        if self.path.endswith("/dagRuns") and self.command == "POST":
            if body["dag_run_id"] in self.runs:
                return self._answer(409, {"detail": "exists"})
            self.runs[body["dag_run_id"]] = body
        if self.seen[key] <= self.failures:
            return self._answer(500, {"detail": {"reason": "Database error"}})
        return self._answer(200, {"state": "queued"})

    do_GET = do_POST = do_PATCH = _handle

    def log_message(self, *args) -> None:  # quiet
        pass


@pytest.fixture
def airflow(monkeypatch):
    monkeypatch.setattr(AirflowClient, "RETRY_DELAYS", (0.01, 0.01))
    FakeAirflow.seen, FakeAirflow.runs = {}, {}
    server = ThreadingHTTPServer(("127.0.0.1", 0), FakeAirflow)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()


def test_a_trigger_answered_500_is_tried_again_and_starts_one_run(airflow, monkeypatch):
    monkeypatch.setattr(FakeAirflow, "failures", 1)
    client = AirflowClient(airflow, "admin", "x")
    run_id = client.trigger("mura_retrain", {"preset": "cpu_smoke"})
    assert list(FakeAirflow.runs) == [run_id] and FakeAirflow.runs[run_id]["conf"] == {"preset": "cpu_smoke"}
    assert FakeAirflow.seen["POST /api/v2/dags/mura_retrain/dagRuns"] == 2  # the retry found its run: 409
    assert client.run("mura_retrain", run_id) == {"state": "queued"}  # a read after one 500 too


def test_a_server_that_keeps_failing_is_named_with_its_log(airflow, monkeypatch, tmp_path):
    monkeypatch.setattr(FakeAirflow, "failures", 10)
    log = tmp_path / "airflow-api-server.log"
    client = AirflowClient(airflow, "admin", "x", log_path=log)
    with pytest.raises(AirflowError, match=rf"PATCH /dags/d -> HTTP 500.*tried 3 times.*{log}"):
        client.unpause("d")
    assert FakeAirflow.seen["PATCH /api/v2/dags/d"] == 3
