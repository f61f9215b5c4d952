"""How often the monitor's drift verdict is wrong: false alarms on clean releases, misses on shifted ones.

A reference release (seed 7) stands for the champion's training data. Clean releases drawn with other
seeds (none used by the tests) must not be flagged: target false-positive rate <= 5 % over >= 20 of
them. Each `--shift` kind, drawn with several seeds, must be flagged every time. Every verdict is the
full one the monitor gives (image features, study-type mix and label balance per patient, and the
MMD test on a model's pooled features, Holm-corrected at params.yaml's alpha). The features come from
an untrained baseline CNN with fixed weights (training one would not change what the test measures:
whether two samples differ); `--trained RUN_ID` uses a run's model instead.

    python benchmarks/bench_monitor_drift.py --out benchmarks/results [--clean 20] [--shift-seeds 3]
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from pathlib import Path

RELEASE = {"train_patients": 100, "valid_patients": 40}


def _model(run_id: str | None):
    import keras

    if run_id:
        import mlflow

        from pipelines.training.layers import load_model

        return load_model(
            mlflow.artifacts.download_artifacts(run_id=run_id, artifact_path="model/model.keras")
        )
    from mura_core.contracts import parse_task
    from pipelines.training.zoo import build_model

    keras.utils.set_random_seed(0)
    return build_model("baseline_cnn", parse_task("binary"), (96, 96), weights=None)


def _sample(model, folder: Path, seed: int, shift: str | None, params):
    from pipelines.data.manifest import build_manifest
    from pipelines.data.synth import generate_synthetic
    from pipelines.monitoring.reference import profile_with_embeddings

    generate_synthetic(folder, seed=seed, shift=shift, **RELEASE)
    frame = build_manifest(folder).frame
    return profile_with_embeddings(
        model, frame[frame["image_path"].notna()], folder, params.current_images, params.seed
    )


def _judge(reference, current, params) -> list[str]:
    from pipelines.monitoring.drift import drift_tests, verdict

    tests = drift_tests(reference[0], current[0], reference[1], current[1], params.permutations, params.seed)
    judged, _ = verdict(tests, params.alpha, params.min_effect)
    return [test.feature for test in judged if test.drifted]


def main() -> None:
    from mura_core.config import load_config
    from pipelines.data.synth import SHIFTS

    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--out", default="benchmarks/results")
    parser.add_argument("--clean", type=int, default=20, help="clean releases (seeds 1001, 1002, ...)")
    parser.add_argument("--shift-seeds", type=int, default=3, help="releases per shift kind")
    parser.add_argument("--trained", help="MLflow run id whose model gives the features")
    args = parser.parse_args()
    params = load_config().monitor
    model = _model(args.trained)
    started = time.perf_counter()
    with tempfile.TemporaryDirectory() as scratch:
        root = Path(scratch)
        reference = _sample(model, root / "reference", 7, None, params)
        clean = [
            _judge(reference, _sample(model, root / f"clean{seed}", seed, None, params), params)
            for seed in range(1001, 1001 + args.clean)
        ]
        shifted = {
            shift: [
                _judge(reference, _sample(model, root / f"{shift}{seed}", seed, shift, params), params)
                for seed in range(2001, 2001 + args.shift_seeds)
            ]
            for shift in SHIFTS
        }
    false_alarms = sum(bool(flagged) for flagged in clean)
    result = {
        "benchmark": "monitor_drift",
        "release": RELEASE,
        "images_per_side": params.current_images,
        "alpha": params.alpha,
        "features_from": args.trained or "untrained baseline_cnn (seed 0), 96 px",
        "clean_releases": args.clean,
        "false_positive_rate": false_alarms / args.clean,
        "false_alarms": [flagged for flagged in clean if flagged],
        "shift_detection_rate": {
            shift: sum(bool(f) for f in runs) / len(runs) for shift, runs in shifted.items()
        },
        "shift_features": shifted,
        "target": {"false_positive_rate_max": 0.05, "shift_detection_rate_min": 1.0},
        "seconds": round(time.perf_counter() - started, 1),
    }
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    (out / "monitor_drift.json").write_text(json.dumps(result, indent=2))
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
