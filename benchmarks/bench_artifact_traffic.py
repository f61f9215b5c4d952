"""How often one retrain moves artifacts to and from MLflow's artifact store, step by step.

The retrain's steps (pipelines.flows.retrain: manifest, data gate, plan, train, combine, evaluate,
select and register, gate) run in this process on a small synthetic release with the `ci_tiny`
preset, against an MLflow store under a temporary MURA_HOME. Every file the steps upload (log_artifact,
and each file of log_artifacts) and download is counted, with its bytes, per step: in the DAG each step
is a task process of its own, so a file a step downloads twice is downloaded twice. Run it before and
after a change that caches artifacts to compare:

    python benchmarks/bench_artifact_traffic.py --out benchmarks/results
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))


class Traffic:
    """Counts of files and bytes moved, per step and kind (upload, download)."""

    def __init__(self) -> None:
        self.step = "setup"
        self.files: Counter[tuple[str, str]] = Counter()
        self.bytes: Counter[tuple[str, str]] = Counter()
        self.paths: Counter[tuple[str, str]] = Counter()  # (step, artifact path) downloaded

    def add(self, kind: str, local: Path, artifact: str = "") -> None:
        self.files[(self.step, kind)] += 1
        self.bytes[(self.step, kind)] += local.stat().st_size if local.is_file() else 0
        if kind == "download":
            self.paths[(self.step, artifact)] += 1


def watch(traffic: Traffic) -> None:
    """Count every file the local artifact repository writes or hands out."""
    from mlflow.store.artifact.local_artifact_repo import LocalArtifactRepository

    log_artifact, log_artifacts = LocalArtifactRepository.log_artifact, LocalArtifactRepository.log_artifacts
    download = LocalArtifactRepository._download_file

    def counted_log_artifact(self, local_file, artifact_path=None):
        traffic.add("upload", Path(local_file))
        return log_artifact(self, local_file, artifact_path)

    def counted_log_artifacts(self, local_dir, artifact_path=None):
        for path in Path(local_dir).rglob("*"):
            if path.is_file():
                traffic.add("upload", path)
        return log_artifacts(self, local_dir, artifact_path)

    def counted_download(self, remote_file_path, local_path):
        result = download(self, remote_file_path, local_path)
        traffic.add("download", Path(local_path), remote_file_path)
        return result

    LocalArtifactRepository.log_artifact = counted_log_artifact
    LocalArtifactRepository.log_artifacts = counted_log_artifacts
    LocalArtifactRepository._download_file = counted_download


def retrain(traffic: Traffic, data_root: Path) -> dict:
    """The retrain's steps in order, each counted under its task's name."""
    from mura_core.artifacts import forget
    from mura_core.contracts import Approval
    from pipelines.flows import retrain as flow

    def step(name, call, *args):
        forget()  # each step is a task process of its own in the DAG: nothing carried over
        traffic.step = name
        return call(*args)

    manifest = step("build_manifest", flow.local_manifest, data_root)
    validation = step("validate_data", flow.validate_data, manifest)
    plan = step("plan_candidates", flow.candidates_for, "ci_tiny", {"epochs": 1}, manifest, validation)
    trained = [step("train", flow.train_candidate, candidate) for candidate in plan]
    combined = step("combine_members", flow.combine_members, trained)
    evaluated = [step("evaluate", flow.evaluate_candidate, one) for one in combined]
    registered = step("select_and_register", flow.select_and_register, evaluated)
    verdict = step("gate", flow.gate, registered, Approval.OFF, "bench", "bench")
    return {"model": verdict.model, "version": verdict.version, "status": verdict.status}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=None, help="folder for artifact_traffic.json")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as folder:
        home = Path(folder) / "home"
        os.environ.update(
            {
                "MURA_HOME": str(home),
                "MURA_MODEL_BASE_PATH": str(home / "serving" / "models"),
                "MLFLOW_TRACKING_URI": f"sqlite:///{home / 'mlflow.db'}",
                "MLFLOW_DISABLE_TELEMETRY": "true",
                "MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR": "false",
                "TF_CPP_MIN_LOG_LEVEL": "2",
            }
        )
        home.mkdir(parents=True)
        from pipelines.data.synth import generate_synthetic

        generate_synthetic(Path(folder) / "data", seed=11, train_patients=30, valid_patients=12)
        traffic = Traffic()
        watch(traffic)
        started = time.perf_counter()
        outcome = retrain(traffic, Path(folder) / "data")
        seconds = time.perf_counter() - started
    steps = list(dict.fromkeys(step for step, _ in traffic.files))
    result = {
        "preset": "ci_tiny",
        "outcome": outcome,
        "seconds": round(seconds, 1),
        "uploads": sum(count for (_, kind), count in traffic.files.items() if kind == "upload"),
        "downloads": sum(count for (_, kind), count in traffic.files.items() if kind == "download"),
        "per_step": {
            step: {
                kind: {"files": traffic.files[(step, kind)], "bytes": traffic.bytes[(step, kind)]}
                for kind in ("upload", "download")
            }
            for step in steps
        },
        "downloaded_more_than_once_in_a_step": sorted(
            f"{step}: {path} x{count}" for (step, path), count in traffic.paths.items() if count > 1
        ),
    }
    text = json.dumps(result, indent=2)
    print(text)
    if args.out:
        args.out.mkdir(parents=True, exist_ok=True)
        (args.out / "artifact_traffic.json").write_text(text + "\n", encoding="utf-8")
    return 0


if __name__ == "__main__":
    sys.exit(main())
