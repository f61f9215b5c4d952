"""What MLflow's login check costs the pipeline: authenticated registry calls against a real
`mlflow server --app-name mura-auth` (the embedded stack's: one worker), with the platform's auth
settings (a right password trusted for `AUTH_CACHE_SECONDS`) and, as the baseline measured in the same
run, with MLflow's default (scrypt on every request).

Each server gets the platform's accounts; the `pipeline` account then makes `--calls` calls of the
kind a DAG task makes (read a registered model, its version, set a version tag), `--repeats` times.

    python benchmarks/bench_mlflow_auth.py --out benchmarks/results [--calls 60] [--repeats 3]
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path


def calls_per_second(cache_seconds: int, calls: int, repeats: int) -> dict:
    """Median seconds per call (and range) as `pipeline` against a fresh server with that cache."""
    import mlflow

    from pipelines.tracking import accounts
    from pipelines.tracking.server import start_tracking_server

    accounts.AUTH_CACHE_SECONDS = cache_seconds  # what write_auth_config puts in the server's ini
    with tempfile.TemporaryDirectory(prefix="bench-mlflow-auth-") as scratch:
        home = Path(scratch)
        server = start_tracking_server(home, basic_auth=True)
        try:
            accounts.provision(server.uri, accounts.ensure_embedded_accounts(home))
            login = accounts.account(accounts.PIPELINE, home, environ={}).environment()
            os.environ.update(login)
            client = mlflow.MlflowClient(server.uri, registry_uri=server.uri)
            run = client.create_run(client.create_experiment("mura"))
            client.create_registered_model("mura_binary")
            source = f"runs:/{run.info.run_id}/tf_serving"
            client.create_model_version("mura_binary", source, run.info.run_id)
            per_call = []
            for _ in range(repeats):
                started = time.perf_counter()
                for index in range(calls // 3):
                    client.get_registered_model("mura_binary")
                    client.get_model_version("mura_binary", "1")
                    client.set_model_version_tag("mura_binary", "1", "bench.call", str(index))
                per_call.append((time.perf_counter() - started) / (3 * (calls // 3)))
        finally:
            server.stop()
    return {
        "auth_cache_ttl_seconds": cache_seconds,
        "median_s_per_call": statistics.median(per_call),
        "min_s_per_call": min(per_call),
        "max_s_per_call": max(per_call),
        "repeats": repeats,
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, help="write mlflow_auth.json into this folder")
    parser.add_argument("--calls", type=int, default=60)
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    from pipelines.tracking.accounts import AUTH_CACHE_SECONDS

    platform = calls_per_second(AUTH_CACHE_SECONDS, args.calls, args.repeats)
    baseline = calls_per_second(0, args.calls, args.repeats)
    results = {
        "cpu_count": os.cpu_count(),
        "calls": args.calls,
        "platform": platform,
        "baseline_mlflow_default": baseline,
        "ratio_platform_over_baseline": platform["median_s_per_call"] / baseline["median_s_per_call"],
    }
    text = json.dumps(results, indent=2)
    print(text)
    if args.out:
        args.out.mkdir(parents=True, exist_ok=True)
        (args.out / "mlflow_auth.json").write_text(text + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
