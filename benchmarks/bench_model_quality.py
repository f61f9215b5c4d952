"""Model quality across fresh synthetic releases, and whether the gate's verdict survives a retrain.

1. Quality: for each data seed (none used by the tests), `mura data synth --seed S` (400 + 100
   patients; `--valid-patients N` for a larger valid split), train the preset, evaluate on valid at the
   operating point fitted on holdout, and play the pointing game with its Grad-CAM. Targets (cpu_smoke):
   study kappa median >= 0.75 and min >= 0.65, study AUROC min >= 0.88, study ECE after calibration
   <= 0.08, pointing-game hit rate min >= 0.7. These were the test suite's floors on one fresh model
   each run; a fresh model's quality varies, so it is measured here over seeds instead.
2. Gate stability: on one release, R retrains of the same config (training seeds 1..R). A trial takes a
   champion and two challengers; it is stable when both challengers get the same verdict (they are
   the same model up to noise). Target: >= 9 in 10 trials stable, over every trial of the retrains
   (60 for 6: each champion, each unordered pair of the others; `--trials N` takes the first N). The
   baseline, measured in the same run on the same models, is the single-number gate it replaces
   (valid kappa/AUROC, 0.02 / 0.05 drops).

    python benchmarks/bench_model_quality.py --out benchmarks/results [--seeds 101,202,303,404,505]
        [--retrains 6] [--trials 0] [--gate-seed S] [--preset cpu_smoke]
"""

from __future__ import annotations

import argparse
import dataclasses
import functools
import itertools
import json
import os
import statistics
import tempfile
import time
from pathlib import Path

TARGETS = {
    "kappa_median": 0.75,
    "kappa_min": 0.65,
    "auroc_min": 0.88,
    "ece_max": 0.08,
    "pointing_min": 0.7,
    "stable_share": 0.9,
}
KEYS = (
    "eval.study_kappa",
    "eval.study_kappa_ci_low",
    "eval.study_kappa_ci_high",
    "eval.study_auroc",
    "eval.study_ece",
    "eval.study_ece_raw",
    "eval.study_sensitivity",
    "eval.study_specificity",
    "eval.threshold",
    "holdout.study_kappa",
)


# Patients per release (train, valid); --valid-patients raises the second to shrink ECE's sampling noise.
RELEASE = {"train": 400, "valid": 100}


def _release(folder: Path, seed: int) -> tuple[Path, Path]:
    from pipelines.data.manifest import build_manifest, write_manifest
    from pipelines.data.synth import generate_synthetic

    generate_synthetic(
        folder / "data", seed=seed, train_patients=RELEASE["train"], valid_patients=RELEASE["valid"]
    )
    manifest = write_manifest(build_manifest(folder / "data").frame, folder / "manifest.parquet")
    return folder / "data", manifest


def _train_and_evaluate(
    preset: str, manifest: Path, data: Path, overrides: dict, keep: Path | None = None
) -> dict:
    """Train and evaluate one model; with `keep`, its evaluation files (predictions, figures) stay there."""
    from mlflow.tracking import MlflowClient

    from pipelines.evaluation import evaluate_run
    from pipelines.training import train

    started = time.perf_counter()
    run = train({"preset": preset, **overrides}, manifest, data)
    metrics = evaluate_run(run.run_id, output_dir=keep).metrics
    seconds = round(time.perf_counter() - started, 1)
    pointing = None
    if keep is not None:
        MlflowClient().download_artifacts(run.run_id, "evaluation/holdout_studies.csv", str(keep))
        _holdout_images(run.run_id, data).to_csv(keep / "holdout_predictions.csv", index=False)
        pointing = _pointing(run.run_id, data, keep)
    return {
        "run_id": run.run_id,
        "seconds": seconds,
        **{key: metrics.get(key) for key in KEYS},
        "pointing": pointing,
        "all_metrics": metrics,
    }


def _pointing(run_id: str, data: Path, keep: Path) -> dict:
    """The pointing game of the run's model on the release's valid split (hit rates, chance rates)."""
    from mlflow.tracking import MlflowClient

    from pipelines.evaluation.pointing import pointing_game
    from pipelines.training.layers import load_model

    path = MlflowClient().download_artifacts(run_id, "model/model.keras", str(keep))
    pointed = pointing_game(load_model(path), data)
    return {key: value for key, value in pointed.items() if not isinstance(value, dict | list)}


def _holdout_images(run_id: str, data: Path):
    """The run's raw image probabilities on its holdout rows: calibration methods can be compared offline."""
    from mura_core.config import load_config
    from pipelines.evaluation.artifacts import download_model, run_manifest, split_rows
    from pipelines.evaluation.predict import score_images
    from pipelines.training.layers import load_model

    with tempfile.TemporaryDirectory() as folder:
        model_path, class_map, _ = download_model(run_id, Path(folder))
        frame = run_manifest(run_id)
        rows = split_rows(frame, class_map, "holdout")
        return score_images(
            load_model(model_path), rows, data, class_map, load_config().evaluation.batch_size
        )


def ece_noise_floor(folder: Path, draws: int = 500) -> float:
    """Median study ECE of a perfectly calibrated model with these probabilities on these many studies:
    labels drawn from the probabilities themselves. An ECE near this is as good as the sample allows."""
    import numpy as np
    import pandas as pd

    from mura_core.config import load_config
    from pipelines.evaluation.metrics import calibration

    bins = load_config().evaluation.calibration_bins
    images = pd.read_csv(folder / "predictions.csv")
    probabilities = images.groupby("study_id")["probability"].mean().to_numpy()
    rng = np.random.default_rng(0)
    return float(
        np.median(
            [
                calibration(
                    (rng.random(len(probabilities)) < probabilities).astype(int), probabilities, bins
                )["ece"]
                for _ in range(draws)
            ]
        )
    )


def _summary(values: list[float]) -> dict:
    return {"median": statistics.median(values), "min": min(values), "max": max(values), "n": len(values)}


def quality(preset: str, seeds: list[int], scratch: Path, overrides: dict, out: Path) -> dict:
    """Per data seed: valid metrics at the fitted operating point (evaluation files under out/)."""
    runs = []
    for seed in seeds:
        data, manifest = _release(scratch / f"release_{seed}", seed)
        result = _train_and_evaluate(preset, manifest, data, overrides, out / f"model_quality_seed{seed}")
        result.pop("all_metrics")
        result["study_ece_noise_floor"] = ece_noise_floor(out / f"model_quality_seed{seed}")
        runs.append({"data_seed": seed, **result})
        print(
            f"seed {seed}: kappa {result['eval.study_kappa']:.3f} ECE {result['eval.study_ece']:.3f} "
            f"pointing {result['pointing']['hit_rate']:.3f}",
            flush=True,
        )
    kappas = [run["eval.study_kappa"] for run in runs]
    eces = [run["eval.study_ece"] for run in runs]
    return {
        "runs": runs,
        "study_kappa": _summary(kappas),
        "study_ece_calibrated": _summary(eces),
        "study_ece_raw": _summary([run["eval.study_ece_raw"] for run in runs]),
        "study_ece_noise_floor": _summary([run["study_ece_noise_floor"] for run in runs]),
        "study_auroc": _summary([run["eval.study_auroc"] for run in runs]),
        "pointing_hit_rate": _summary([run["pointing"]["hit_rate"] for run in runs]),
    }


def gate_stability(
    preset: str, seed: int, retrains: int, trials: int, scratch: Path, overrides: dict, out: Path
) -> dict:
    """Verdicts of the paired gate vs the single-number gate on triples of retrains of one config;
    each retrain's holdout study table goes to out/gate_seed<S>/ (gate policies can be replayed offline)."""
    from mlflow.tracking import MlflowClient

    from mura_core.config import load_config
    from pipelines.evaluation.holdout import stored_holdout_studies
    from pipelines.registry.gate import evaluate_gate
    from pipelines.registry.paired import PairedStudies

    data, manifest = _release(scratch / "gate_release", seed)
    models = [
        _train_and_evaluate(preset, manifest, data, {**overrides, "seed": index + 1})
        for index in range(retrains)
    ]
    client = MlflowClient()
    holdout = [stored_holdout_studies(client, model["run_id"]) for model in models]
    tables = out / f"gate_seed{seed}"
    tables.mkdir(parents=True, exist_ok=True)
    for index, (table, threshold) in enumerate(holdout):
        table.to_csv(tables / f"retrain{index + 1}_holdout_studies.csv", index=False)
        models[index]["threshold"] = threshold
    paired_policy = load_config().gate
    single_policy = dataclasses.replace(paired_policy, max_overall_drop=0.02, max_part_kappa_drop=0.05)

    @functools.cache  # a (champion, challenger) pair recurs in several trials
    def verdicts(champion: int, challenger: int) -> tuple[bool, bool, list[str]]:
        metrics, reference = models[challenger]["all_metrics"], models[champion]["all_metrics"]
        (table, threshold), (champion_table, champion_threshold) = holdout[challenger], holdout[champion]
        paired = PairedStudies.join(table, champion_table, (threshold, champion_threshold))
        verdict = evaluate_gate(metrics, reference, paired_policy, 1, paired=paired)
        return verdict.passed, evaluate_gate(metrics, reference, single_policy, 1).passed, verdict.failures

    rows = []
    for champion, first, second in itertools.permutations(range(retrains), 3):
        if first > second:
            continue  # (a, b) and (b, a) are the same trial
        a, b = verdicts(champion, first), verdicts(champion, second)
        rows.append(
            {
                "champion": champion,
                "challengers": [first, second],
                "paired": [a[0], b[0]],
                "single_number": [a[1], b[1]],
                "paired_failures": [a[2], b[2]],
            }
        )
        if len(rows) == trials:  # 0: every trial
            break
    return {
        "data_seed": seed,
        "retrains": [
            {
                key: model[key]
                for key in ("run_id", "seconds", "eval.study_kappa", "holdout.study_kappa", "threshold")
            }
            for model in models
        ],
        "trials": rows,
        "paired_stable": sum(row["paired"][0] == row["paired"][1] for row in rows),
        "paired_passed": sum(sum(row["paired"]) for row in rows),
        "single_number_stable": sum(row["single_number"][0] == row["single_number"][1] for row in rows),
        "single_number_passed": sum(sum(row["single_number"]) for row in rows),
        "verdicts": 2 * len(rows),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=Path("benchmarks/results"))
    parser.add_argument("--preset", default="cpu_smoke")
    parser.add_argument("--seeds", default="101,202,303,404,505")
    parser.add_argument("--retrains", type=int, default=6)
    parser.add_argument("--trials", type=int, default=0, help="0: every trial")
    parser.add_argument("--skip-gate", action="store_true")
    parser.add_argument(
        "--gate-seed", type=int, help="the release of the gate trials (default: the first seed)"
    )
    parser.add_argument("--set", action="append", default=[], metavar="KEY=VALUE", help="preset override")
    parser.add_argument(
        "--valid-patients",
        type=int,
        default=RELEASE["valid"],
        help="valid patients per release (100 gives ~130 studies: ECE's noise floor is ~0.065 there)",
    )
    args = parser.parse_args()
    RELEASE["valid"] = args.valid_patients
    seeds = [int(seed) for seed in args.seeds.split(",")]
    overrides = dict(item.split("=", 1) for item in args.set)
    with tempfile.TemporaryDirectory(prefix="mura-quality-") as folder:
        scratch = Path(folder)
        os.environ["MURA_HOME"] = str(scratch / "home")
        os.environ["MLFLOW_TRACKING_URI"] = f"sqlite:///{scratch / 'home' / 'mlflow.db'}"
        result: dict = {
            "preset": args.preset,
            "release_patients": dict(RELEASE),
            "targets": TARGETS,
            "overrides": overrides,
            "quality": quality(args.preset, seeds, scratch, overrides, args.out),
        }
        if not args.skip_gate:
            result["gate"] = gate_stability(
                args.preset,
                args.gate_seed or seeds[0],
                args.retrains,
                args.trials,
                scratch,
                overrides,
                args.out,
            )
    summary = result["quality"]
    met = {
        "kappa_median": summary["study_kappa"]["median"] >= TARGETS["kappa_median"],
        "kappa_min": summary["study_kappa"]["min"] >= TARGETS["kappa_min"],
        "auroc_min": summary["study_auroc"]["min"] >= TARGETS["auroc_min"],
        "ece_max": summary["study_ece_calibrated"]["max"] <= TARGETS["ece_max"],
        "pointing_min": summary["pointing_hit_rate"]["min"] >= TARGETS["pointing_min"],
    }
    if "gate" in result:
        gate = result["gate"]
        met["stable_share"] = gate["paired_stable"] >= TARGETS["stable_share"] * len(gate["trials"])
    result["met"] = met
    args.out.mkdir(parents=True, exist_ok=True)
    path = args.out / "model_quality.json"
    path.write_text(json.dumps(result, indent=2))
    print(json.dumps({"quality": {k: v for k, v in summary.items() if k != "runs"}, "met": met}, indent=2))
    print(f"wrote {path}")


if __name__ == "__main__":
    main()
