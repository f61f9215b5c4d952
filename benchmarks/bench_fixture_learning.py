"""The margin of the suite's learns-at-all checks: the `ci_tiny` preset on the committed sample, over seeds.

tests/model/test_training.py trains `ci_tiny` once per run (binary and 14-class) on the committed
synthetic sample (seed 7, 400 + 100 patients) and asserts only that it learned at all: valid study
AUROC above LEARNS_AUROC and study-type accuracy above LEARNS_PART_ACCURACY. Training on CPU is seeded
but not bit-reproducible, so those floors are set from this benchmark's spread over fresh training
seeds, far enough below its minimum that a chance failure is not expected. Quality itself is measured
in bench_model_quality.py.

    python benchmarks/bench_fixture_learning.py --out benchmarks/results [--seeds 20]
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

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))  # the floors live beside the test

from tests.model.test_training import LEARNS_AUROC, LEARNS_PART_ACCURACY, SAMPLE  # noqa: E402


def _summary(values: list[float]) -> dict:
    return {"median": statistics.median(values), "min": min(values), "max": max(values), "n": len(values)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=Path("benchmarks/results"))
    parser.add_argument("--seeds", type=int, default=20, help="training seeds 1..N")
    parser.add_argument("--tasks", nargs="+", default=["binary", "14cls"], choices=["binary", "14cls"])
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="mura-fixture-") as folder:
        scratch = Path(folder)
        os.environ["MURA_HOME"] = str(scratch / "home")
        os.environ["MLFLOW_TRACKING_URI"] = f"sqlite:///{scratch / 'home' / 'mlflow.db'}"
        from mlflow.tracking import MlflowClient

        from pipelines.data.manifest import build_manifest, write_manifest
        from pipelines.data.synth import generate_synthetic
        from pipelines.evaluation import evaluate_run
        from pipelines.training import train

        generate_synthetic(scratch / "data", **SAMPLE)
        manifest = write_manifest(build_manifest(scratch / "data").frame, scratch / "manifest.parquet")
        client, runs = MlflowClient(), []
        for seed in range(1, args.seeds + 1):
            for task in args.tasks:
                started = time.perf_counter()
                run = train({"preset": "ci_tiny", "task": task, "seed": seed}, manifest, scratch / "data")
                metrics = evaluate_run(run.run_id).metrics
                runs.append(
                    {
                        "seed": seed,
                        "task": task,
                        "seconds": round(time.perf_counter() - started, 1),
                        "study_auroc": metrics.get("eval.study_auroc"),
                        "study_kappa": metrics.get("eval.study_kappa"),
                        "body_part_accuracy": metrics.get("eval.image_body_part_accuracy"),
                        "epochs_trained": len(client.get_metric_history(run.run_id, "train.loss")),
                        # counted from 1, as Keras' "Restoring model weights from ... epoch N" says it
                        "best_epoch": int(client.get_run(run.run_id).data.metrics["train.restored_epoch"])
                        + 1,
                    }
                )
                print(json.dumps(runs[-1]), flush=True)
    binary = [run for run in runs if run["task"] == "binary"]
    parts = [run for run in runs if run["task"] == "14cls"]
    result = {
        "preset": "ci_tiny",
        "release": SAMPLE,
        "floors": {"study_auroc": LEARNS_AUROC, "body_part_accuracy": LEARNS_PART_ACCURACY},
        "seconds_per_model": _summary([run["seconds"] for run in runs]),
        "runs": runs,
    }
    if binary:
        result["binary_study_auroc"] = _summary([run["study_auroc"] for run in binary])
        result["binary_study_kappa"] = _summary([run["study_kappa"] for run in binary])
    if parts:
        result["14cls_body_part_accuracy"] = _summary([run["body_part_accuracy"] for run in parts])
    result["below_floor"] = sum(run["study_auroc"] <= LEARNS_AUROC for run in binary) + sum(
        run["body_part_accuracy"] <= LEARNS_PART_ACCURACY for run in parts
    )
    args.out.mkdir(parents=True, exist_ok=True)
    path = args.out / "fixture_learning.json"
    path.write_text(json.dumps(result, indent=2))
    print(json.dumps({key: value for key, value in result.items() if key != "runs"}, indent=2))
    print(f"wrote {path}")


if __name__ == "__main__":
    main()
