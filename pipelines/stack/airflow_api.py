"""A small client of Airflow 3's REST API: log in, trigger a DAG with conf, follow the run."""

from __future__ import annotations

import time
import uuid
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path

import requests

from mura_core.contracts import APPROVE_TASK
from mura_core.errors import MuraError

FINISHED = {"success", "failed"}


class AirflowError(MuraError):
    """Airflow refused a request or could not be reached."""


class AirflowClient:
    """Token-authenticated calls to one Airflow API server.

    A 5xx answer or a dropped connection is tried again twice (after RETRY_DELAYS): Airflow answers 500
    when its metadata database is busy, which on the embedded stack's SQLite is most likely in the
    first minute after `mura up`. A trigger names its run id, so a retry of a trigger that did get
    through finds its run (409) rather than starting a second one.
    """

    RETRY_DELAYS = (1.0, 3.0)

    def __init__(
        self, base_url: str, username: str, password: str, timeout: float = 15.0, log_path: Path | None = None
    ):
        """`log_path`: the API server's log, named when a call fails for good."""
        self.base_url = base_url.rstrip("/")
        self.timeout = timeout
        self.log_path = log_path
        self.session = requests.Session()
        try:
            response = self._send("POST", "/auth/token", json={"username": username, "password": password})
        except requests.RequestException as error:
            raise AirflowError(
                f"Airflow at {self.base_url} is not reachable ({error}); is the stack up ('mura up')?"
            ) from error
        if response.status_code not in (200, 201):
            raise AirflowError(
                f"Airflow at {self.base_url} refused the login for '{username}': "
                f"HTTP {response.status_code} {response.text[:200]}{self._log_hint(response)}"
            )
        self.session.headers["Authorization"] = f"Bearer {response.json()['access_token']}"

    def _send(self, method: str, path: str, **kwargs) -> requests.Response:
        """One call, tried again after each of RETRY_DELAYS while the server fails (5xx, no answer)."""
        for delay in (*self.RETRY_DELAYS, None):
            try:
                response = self.session.request(
                    method, f"{self.base_url}{path}", timeout=self.timeout, **kwargs
                )
            except (requests.ConnectionError, requests.Timeout):
                if delay is None:
                    raise
            else:
                if response.status_code < 500 or delay is None:
                    return response
            time.sleep(delay)
        raise AssertionError("unreachable")  # pragma: no cover

    def _log_hint(self, response: requests.Response) -> str:
        if response.status_code < 500:
            return ""
        where = self.log_path or "the api-server's log"
        return f" (tried {len(self.RETRY_DELAYS) + 1} times; Airflow's error id is in {where})"

    def _call(self, method: str, path: str, conflict_ok: bool = False, **kwargs) -> dict:
        response = self._send(method, f"/api/v2{path}", **kwargs)
        if conflict_ok and response.status_code == 409:
            return {}
        if not response.ok:
            raise AirflowError(
                f"{method} {path} -> HTTP {response.status_code}: {response.text[:500]}{self._log_hint(response)}"
            )
        return response.json() if response.content else {}

    def dag_ids(self) -> set[str]:
        """The DAGs Airflow has parsed and stored."""
        return {dag["dag_id"] for dag in self._call("GET", "/dags", params={"limit": 1000})["dags"]}

    def unpause(self, dag_id: str) -> None:
        """Make sure `dag_id` is not paused."""
        self._call("PATCH", f"/dags/{dag_id}", json={"is_paused": False})

    def trigger(self, dag_id: str, conf: dict | None = None) -> str:
        """Start a run of `dag_id` now with `conf`; its run id. Invalid params come back as AirflowError."""
        run_id = f"manual__{datetime.now(UTC).isoformat()}_{uuid.uuid4().hex[:6]}"
        body = {"dag_run_id": run_id, "logical_date": None, "conf": conf or {}}
        # 409: an earlier try of this very trigger got through before its answer was lost.
        self._call("POST", f"/dags/{dag_id}/dagRuns", conflict_ok=True, json=body)
        return run_id

    def emit_asset_event(self, uri: str, extra: dict | None = None) -> dict:
        """Record an event of the Asset `uri` (DAGs scheduled on it run), as a task outlet would."""
        found = self._call("GET", "/assets", params={"uri_pattern": uri, "limit": 100})["assets"]
        exact = [asset for asset in found if asset["uri"] == uri]
        if not exact:
            raise AirflowError(f"Airflow knows no asset {uri}: are the DAGs parsed ('mura status')?")
        return self._call("POST", "/assets/events", json={"asset_id": exact[0]["id"], "extra": extra or {}})

    def stop(self, dag_id: str, run_id: str) -> None:
        """Mark a run failed: the scheduler stops its running tasks and starts no more of them."""
        self._call("PATCH", f"/dags/{dag_id}/dagRuns/{run_id}", json={"state": "failed"})

    def runs(self, dag_id: str) -> list[dict]:
        """The DAG's runs, newest first."""
        return self._call("GET", f"/dags/{dag_id}/dagRuns", params={"order_by": "-start_date", "limit": 100})[
            "dag_runs"
        ]

    def run(self, dag_id: str, run_id: str) -> dict:
        """The DAG run record."""
        return self._call("GET", f"/dags/{dag_id}/dagRuns/{run_id}")

    def task_states(self, dag_id: str, run_id: str) -> dict[str, str]:
        """task id (with map index when mapped) -> state."""
        instances = self._call("GET", f"/dags/{dag_id}/dagRuns/{run_id}/taskInstances", params={"limit": 100})
        states = {}
        for instance in instances.get("task_instances", []):
            key = instance["task_id"] + (
                f"[{instance['map_index']}]" if instance.get("map_index", -1) >= 0 else ""
            )
            states[key] = instance.get("state") or "none"
        return states

    def approval(self, dag_id: str, run_id: str, task_id: str = APPROVE_TASK) -> dict:
        """The human-in-the-loop request of a waiting task (subject, body, options, who may answer,
        and the answer once given)."""
        return self._call("GET", f"/dags/{dag_id}/dagRuns/{run_id}/taskInstances/{task_id}/-1/hitlDetails")

    def respond(self, dag_id: str, run_id: str, option: str, task_id: str = APPROVE_TASK) -> dict:
        """Answer a waiting task as this client's user (Airflow refuses a user who is not a respondent)."""
        return self._call(
            "PATCH",
            f"/dags/{dag_id}/dagRuns/{run_id}/taskInstances/{task_id}/-1/hitlDetails",
            json={"chosen_options": [option], "params_input": {}},
        )

    def wait(
        self,
        dag_id: str,
        run_id: str,
        timeout: float = 1800.0,
        on_change: Callable[[dict[str, str]], None] | None = None,
        poll: float = 3.0,
    ) -> str:
        """Poll until the run finishes (or `timeout`); report task state changes; the final state."""
        deadline, last = time.monotonic() + timeout, None
        while time.monotonic() < deadline:
            state = self.run(dag_id, run_id)["state"]
            states = self.task_states(dag_id, run_id)
            if on_change and states != last:
                on_change(states)
                last = states
            if state in FINISHED:
                return state
            time.sleep(poll)
        raise AirflowError(f"run {run_id} of {dag_id} did not finish within {int(timeout)} s")


def client_from_settings() -> AirflowClient:
    """A client for AIRFLOW_URL as MURA_AIRFLOW_USER/MURA_AIRFLOW_PASSWORD, else the embedded stack's admin."""
    import os

    from mura_core.settings import get_settings
    from pipelines.stack.services import AIRFLOW_ADMIN, admin_password

    settings = get_settings()
    user = os.environ.get("MURA_AIRFLOW_USER", AIRFLOW_ADMIN)
    password = os.environ.get("MURA_AIRFLOW_PASSWORD") or admin_password(settings)
    return AirflowClient(settings.airflow_url, user, password, log_path=api_server_log(settings))


def api_server_log(settings) -> Path | None:
    """The embedded stack's API server log, named when a call fails for good (None: this machine runs none)."""
    path = settings.mura_home / "logs" / "airflow-api-server.log"
    return path if path.is_file() else None


def trigger_dag_action(dag_id: str) -> Callable[[dict], None]:
    """A webhook action that triggers `dag_id` with the delivery's payload as conf."""

    def trigger(payload: dict) -> None:
        client_from_settings().trigger(dag_id, {"webhook": payload})

    return trigger


def announce_data_version(version: dict) -> str:
    """Tell Airflow a new data version exists (the data Asset: mura_monitor runs); what happened, in words."""
    from mura_core.contracts import DATA_ASSET_URI

    try:
        client_from_settings().emit_asset_event(
            DATA_ASSET_URI, {"dvc_md5": version["dvc_md5"], "rev": version["rev"]}
        )
    except AirflowError as error:
        return f"not announced to Airflow ({error}); mura_monitor checks it on its daily run"
    return f"announced to Airflow as an event of {DATA_ASSET_URI} (mura_monitor runs)"
