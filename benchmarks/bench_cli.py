"""What a person at the terminal waits for: `mura` usage errors, `mura predict` over gRPC and REST, and
the registry's read commands (`mura models`, `mura lineage`) against an MLflow server.

Each command runs as a fresh process (as typed), `--repeats` times; wall seconds median and range.
Usage errors: bad preset, architecture, task, epochs, retrain field, unknown command (target < 1 s).
Predict: one study against a local `mura serve` with a tiny exported model (target gRPC < 2 s); the
baseline, measured in the same run, is what the gRPC client used to pay first: importing the official
stubs (`tensorflow_serving.apis.predict_pb2`, which loads TensorFlow).
Registry reads: a real `mlflow server` with one registered version (metrics, tags, an alias); target
< 2 s each; the baseline is a bare MlflowClient process listing the registered models.
Deploy steps: what a deploy asks of serving, in a fresh process as the DAG's deploy task runs it (read
models.config, HandleReloadConfigRequest, the warm-up file's images, a smoke prediction), against the
same `mura serve`; the baseline is what those steps used to import first: the official
`model_management_pb2`, which loads TensorFlow.

    python benchmarks/bench_cli.py --out benchmarks/results [--repeats 5]
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

USAGE_ERRORS = [
    ["train", "--preset", "nosuch"],
    ["train", "--architectures", "resnet9000"],
    ["train", "--task", "multi"],
    ["train", "--epochs", "0"],
    ["retrain", "--ensemble", "50"],
    ["nosuchcommand"],
]


def wall(command: list[str], env: dict | None = None, expect_failure: bool = False) -> float:
    """Seconds one process took; it must fail (usage errors) or succeed (the rest) as expected."""
    started = time.perf_counter()
    done = subprocess.run(command, capture_output=True, text=True, env=env)
    elapsed = time.perf_counter() - started
    if (done.returncode != 0) != expect_failure:
        raise SystemExit(f"{' '.join(command)} exited {done.returncode}: {done.stderr[-500:]}")
    return elapsed


def summary(samples: list[float]) -> dict:
    return {
        "median_s": statistics.median(samples),
        "min_s": min(samples),
        "max_s": max(samples),
        "runs": len(samples),
    }


def serve_tiny_model(root: Path) -> tuple[subprocess.Popen, str, str, Path]:
    """A `mura serve` process on a tiny exported binary model; (process, grpc, rest, study folder)."""
    from mura_core import contracts
    from mura_core.ports import free_ports
    from pipelines import export
    from serving import repository, samples

    images = [samples.sample_png(300, 260, seed=seed) for seed in range(3)]
    model = samples.tiny_keras_model("binary", (32, 32), seed=0)
    saved = export.export_saved_model(
        model, contracts.class_map("binary", "tiny", (32, 32)), root / "x", images
    )
    base = root / "models"
    repository.publish_version(saved, "mura_binary", base_path=base)
    repository.set_served_versions("mura_binary", [1], {"stable": 1}, base / "models.config", base)
    study = root / "XR_WRIST" / "patient00001" / "study1_positive"
    study.mkdir(parents=True)
    for index, image in enumerate(images, start=1):
        (study / f"image{index}.png").write_bytes(image)
    grpc_port, rest_port = free_ports(2)
    command = [sys.executable, "-m", "pipelines.cli", "serve", "--local", "--port", str(grpc_port),
               "--rest_api_port", str(rest_port), "--model_config_file", str(base / "models.config")]  # fmt: skip
    server = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
    server.stdout.readline()  # "mura serve: gRPC on ..." once the models are loaded
    return server, f"127.0.0.1:{grpc_port}", f"127.0.0.1:{rest_port}", study


def registry_with_one_version(home: Path):
    """A running MLflow server (the embedded store under `home`) holding mura_binary v1 as champion."""
    import mlflow

    from pipelines.tracking.server import start_tracking_server

    server = start_tracking_server(home)
    client = mlflow.MlflowClient(server.uri, registry_uri=server.uri)
    run = client.create_run(client.create_experiment("mura"), tags={"train.arch": "baseline_cnn"})
    for name, value in {
        "eval.study_kappa": 0.61,
        "eval.study_auroc": 0.88,
        "eval.elbow.study_kappa": 0.5,
    }.items():
        client.log_metric(run.info.run_id, name, value)
    client.create_registered_model("mura_binary")
    client.create_model_version("mura_binary", f"runs:/{run.info.run_id}/tf_serving", run.info.run_id)
    client.set_model_version_tag("mura_binary", "1", "gate.status", "failed")
    client.set_registered_model_alias("mura_binary", "champion", "1")
    return server


def time_registry_reads(mura: list[str], env: dict, repeats: int) -> dict:
    """`mura models` and `mura lineage` against a real server, and a bare MlflowClient listing."""
    with tempfile.TemporaryDirectory(prefix="bench-cli-registry-") as scratch:
        home = Path(scratch) / "home"
        server = registry_with_one_version(home)
        try:
            local = {**env, "MURA_HOME": str(home), "MLFLOW_TRACKING_URI": server.uri}
            models = [wall([*mura, "models", "--json"], local) for _ in range(repeats)]
            lineage = [wall([*mura, "lineage", "mura_binary/1", "--json"], local) for _ in range(repeats)]
            bare = f"import mlflow; mlflow.MlflowClient({server.uri!r}).search_registered_models()"
            baseline = [wall([sys.executable, "-c", bare], local) for _ in range(repeats)]
        finally:
            server.stop()
    return {
        "models": summary(models),
        "lineage": summary(lineage),
        "baseline_bare_mlflow_client_listing": summary(baseline),
        "ratio_models_over_bare_client": statistics.median(models) / statistics.median(baseline),
    }


DEPLOY_STEPS = """
import sys
from pathlib import Path
from pipelines.deployment.serving_ops import ServingTarget, sample_images
from serving.repository import read_models_config
base = Path(sys.argv[2])
target = ServingTarget(sys.argv[1])
target.reload_config(read_models_config(base / "models.config"))
target.smoke_predict("mura_binary", "stable", 1, sample_images(base / "mura_binary" / "1", 2))
assert "tensorflow" not in sys.modules
"""


def time_deploy_steps(grpc_target: str, base: Path, env: dict, repeats: int) -> dict:
    """The deploy's serving steps in fresh processes, and the official reload stub's import."""
    steps = [wall([sys.executable, "-c", DEPLOY_STEPS, grpc_target, str(base)], env) for _ in range(repeats)]
    stub = "import tensorflow_serving.apis.model_management_pb2"
    baseline = [wall([sys.executable, "-c", stub], env) for _ in range(repeats)]
    return {
        "steps": summary(steps),
        "baseline_official_reload_stub_import": summary(baseline),
        "ratio_steps_over_stub_import": statistics.median(steps) / statistics.median(baseline),
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, help="write cli.json into this folder")
    parser.add_argument("--repeats", type=int, default=5)
    args = parser.parse_args()
    mura = [sys.executable, "-m", "pipelines.cli"]
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "2"}
    results: dict = {"cpu_count": os.cpu_count(), "repeats": args.repeats, "usage_errors": {}}
    for command in USAGE_ERRORS:
        samples = [wall([*mura, *command], env, expect_failure=True) for _ in range(args.repeats)]
        results["usage_errors"][" ".join(command)] = summary(samples)
    results["usage_error_worst_median_s"] = max(item["median_s"] for item in results["usage_errors"].values())
    with tempfile.TemporaryDirectory(prefix="bench-cli-") as scratch:
        server, grpc_target, rest_target, study = serve_tiny_model(Path(scratch))
        try:
            predict = [*mura, "predict", str(study)]
            grpc = [wall([*predict, "--target", grpc_target], env) for _ in range(args.repeats)]
            rest = [wall([*predict, "--rest", "--target", rest_target], env) for _ in range(args.repeats)]
            results["deploy_steps"] = time_deploy_steps(
                grpc_target, Path(scratch) / "models", env, args.repeats
            )
        finally:
            server.terminate()
            server.wait(timeout=30)
    stubs = [
        wall([sys.executable, "-c", "import tensorflow_serving.apis.predict_pb2"], env)
        for _ in range(args.repeats)
    ]
    results["predict"] = {"grpc": summary(grpc), "rest": summary(rest)}
    results["registry_reads"] = time_registry_reads(mura, env, args.repeats)
    results["baseline_official_stub_import"] = summary(stubs)
    results["ratio_grpc_predict_over_stub_import"] = (
        results["predict"]["grpc"]["median_s"] / results["baseline_official_stub_import"]["median_s"]
    )
    results["targets_met"] = {
        "usage_errors_under_1s": results["usage_error_worst_median_s"] < 1.0,
        "grpc_predict_under_2s": results["predict"]["grpc"]["median_s"] < 2.0,
        "models_under_2s": results["registry_reads"]["models"]["median_s"] < 2.0,
        "lineage_under_2s": results["registry_reads"]["lineage"]["median_s"] < 2.0,
    }
    text = json.dumps(results, indent=2)
    print(text)
    if args.out:
        args.out.mkdir(parents=True, exist_ok=True)
        (args.out / "cli.json").write_text(text + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
