"""The first minute of a fresh embedded stack: how often Airflow's REST API fails the calls the demo
and the CLI make right after `mura up` (issue: one `make demo` in thirteen stopped at its first
trigger with HTTP 500 "Database error").

Each start: a fresh MURA_HOME and free ports, `mura up`, then at once, as the demo does, a login and
`--triggers` triggers of `mura_retrain` back to back, each run stopped again at once (no training),
and a read of the run and its tasks after each. The raw client (no retries) counts every 5xx answer
and names the API call; `--retrying` sends the same calls through the platform's client instead,
which retries a 5xx answer. The stack's own settings are whatever the checkout has: run it before
and after a change to compare the counts.

    python benchmarks/bench_stack_start.py --out benchmarks/results [--starts 3] [--triggers 20]
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import requests

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from mura_core.ports import free_port  # noqa: E402


def stack_env(home: Path) -> dict[str, str]:
    """The environment of a stack in `home` on free ports (nothing shared with a running one)."""
    ports = [free_port() for _ in range(10)]
    return {
        **os.environ,
        "MURA_HOME": str(home),
        "MURA_MODEL_BASE_PATH": str(home / "serving" / "models"),
        "AIRFLOW_URL": f"http://127.0.0.1:{ports[0]}",
        "MURA_AIRFLOW_EXECUTION_URL": f"http://127.0.0.1:{ports[9]}",
        "MLFLOW_TRACKING_URI": f"http://127.0.0.1:{ports[1]}",
        "MURA_SERVING_GRPC": f"127.0.0.1:{ports[2]}",
        "MURA_SERVING_REST": f"127.0.0.1:{ports[3]}",
        "MURA_SERVING_REPLICA_GRPC": f"127.0.0.1:{ports[4]}",
        "MURA_SERVING_REPLICA_REST": f"127.0.0.1:{ports[5]}",
        "MURA_PACS_URL": f"http://127.0.0.1:{ports[6]}/dicom-web",
        "MURA_GATEWAY_GRPC": f"127.0.0.1:{ports[7]}",
        "MURA_GATEWAY_REST": f"127.0.0.1:{ports[8]}",
        "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ.get('PATH', '')}",
    }


def mura(env: dict[str, str], *args: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "pipelines.cli", *args], env=env, capture_output=True, text=True, cwd=ROOT
    )


def raw_calls(env: dict[str, str], triggers: int) -> list[dict]:
    """The demo's first calls with plain requests (no retry): each answer's call and status."""
    from mura_core.settings import get_settings
    from pipelines.stack.services import AIRFLOW_ADMIN, admin_password

    base = env["AIRFLOW_URL"]
    answers = []

    def call(method: str, path: str, **kwargs) -> requests.Response:
        response = requests.request(method, f"{base}{path}", timeout=60, **kwargs)
        answers.append({"call": f"{method} {path.split('/dagRuns/')[0]}", "status": response.status_code})
        return response

    password = admin_password(get_settings(env))
    token = call("POST", "/auth/token", json={"username": AIRFLOW_ADMIN, "password": password})
    headers = {"Authorization": f"Bearer {token.json()['access_token']}"}
    for _ in range(triggers):
        body = {"logical_date": None, "conf": {"preset": "ci_tiny"}}
        made = call("POST", "/api/v2/dags/mura_retrain/dagRuns", json=body, headers=headers)
        if made.ok:
            run = made.json()["dag_run_id"]
            path = f"/api/v2/dags/mura_retrain/dagRuns/{run}"
            call("PATCH", path, json={"state": "failed"}, headers=headers)
            call("GET", f"{path}/taskInstances", headers=headers)
    return answers


def retrying_calls(env: dict[str, str], triggers: int) -> list[dict]:
    """The same calls through the platform's AirflowClient (which retries a 5xx answer)."""
    from mura_core.errors import MuraError
    from pipelines.stack.airflow_api import client_from_settings

    answers = []
    saved = dict(os.environ)
    os.environ.update(env)  # client_from_settings reads the stack's settings from the environment
    try:
        client = client_from_settings()
        for _ in range(triggers):
            try:
                run = client.trigger("mura_retrain", {"preset": "ci_tiny"})
                client.stop("mura_retrain", run)
                client.task_states("mura_retrain", run)
                answers.append({"call": "trigger, stop, read", "status": 200})
            except MuraError as error:
                answers.append({"call": "trigger, stop, read", "status": 500, "error": str(error)[:300]})
    finally:
        os.environ.clear()
        os.environ.update(saved)
    return answers


def one_start(triggers: int, retrying: bool, keep_logs: Path | None) -> dict:
    with tempfile.TemporaryDirectory(prefix="mura-bench-start-") as scratch:
        env = stack_env(Path(scratch) / "home")
        started = time.perf_counter()
        up = mura(env, "up")
        up_seconds = time.perf_counter() - started
        try:
            if up.returncode != 0:
                return {"up_failed": up.stderr[-500:], "up_seconds": up_seconds}
            answers = (retrying_calls if retrying else raw_calls)(env, triggers)
            failed = [answer for answer in answers if answer["status"] >= 500]
            refused = [answer for answer in answers if 400 <= answer["status"] < 500]
            return {
                "up_seconds": round(up_seconds, 1),
                "calls": len(answers),
                "server_errors": len(failed),
                "failed_calls": sorted({answer["call"] for answer in failed}),
                # 404: `mura up` said ready before the DAGs were parsed
                "client_errors": sorted({f"{answer['call']} {answer['status']}" for answer in refused}),
            }
        finally:
            mura(env, "down")
            if keep_logs is not None:
                import shutil

                shutil.copytree(Path(scratch) / "home" / "logs", keep_logs / Path(scratch).name)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=ROOT / "benchmarks" / "results")
    parser.add_argument("--starts", type=int, default=3)
    parser.add_argument("--triggers", type=int, default=20)
    parser.add_argument("--retrying", action="store_true", help="through the platform's retrying client")
    parser.add_argument("--label", default="", help="a name for this run in the output file")
    parser.add_argument("--keep-logs", type=Path, help="copy each stack's logs (the api-server's) here")
    args = parser.parse_args()
    starts = []
    for _ in range(args.starts):
        starts.append(one_start(args.triggers, args.retrying, args.keep_logs))
        print(json.dumps(starts[-1]), flush=True)
    result = {
        "label": args.label,
        "client": "retrying" if args.retrying else "raw",
        "starts": starts,
        "calls": sum(start.get("calls", 0) for start in starts),
        "server_errors": sum(start.get("server_errors", 0) for start in starts),
        "starts_with_an_error": sum(
            1 for start in starts if start.get("server_errors") or "up_failed" in start
        ),
    }
    args.out.mkdir(parents=True, exist_ok=True)
    name = f"stack_start{'-' + args.label if args.label else ''}.json"
    (args.out / name).write_text(json.dumps(result, indent=1) + "\n")
    print(json.dumps({key: value for key, value in result.items() if key != "starts"}))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
