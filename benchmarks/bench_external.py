"""External validation against known answers: one trained model, measured on synthetic "sites" whose
truth is known, each through the whole path (DICOM written as a hospital would hold it, imported
de-identified, gated, validated).

- in-distribution sites: fresh patients drawn as the training data was (another seed): the site's
  study kappa interval should hold the valid-set value (no significant drop);
- other sites (`--shift other_site`: darker, flatter exposures and a hand clinic's study mix): a clear
  drop whose interval excludes the valid value, and drift on the shifted image features;
- on both, `--recalibrate`: the site's own operating point fitted on half its patients, the other half
  before and after.

Each kind over several site seeds; medians and ranges. The model: one `cpu_smoke` training on the
default synthetic sample (its valid numbers are the baseline, measured in the same run).

    python benchmarks/bench_external.py --out benchmarks/results [--seeds 3] [--patients 100]
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

MURA = [sys.executable, "-m", "pipelines.cli"]


def mura(env: dict, *args: str) -> str:
    done = subprocess.run([*MURA, *args], env=env, capture_output=True, text=True, check=False)
    if done.returncode not in (0, 1) or (done.returncode == 1 and "--json" not in args):
        raise SystemExit(f"mura {' '.join(args)} failed:\n{done.stderr[-3000:]}")
    return done.stdout


def site(env: dict, work: Path, name: str, seed: int, patients: int, shift: str | None) -> dict:
    data, dicom = work / f"{name}-data", work / f"{name}-dicom"
    synth = ["data", "synth", "--out", str(data), "--seed", str(seed), "--train-patients", "2"]
    mura(env, *synth, "--valid-patients", str(patients), *(["--shift", shift] if shift else []))
    mura(env, "pacs", "seed", "--data", str(data), "--out", str(dicom), "--seed", str(seed), "--json")
    started = time.perf_counter()
    imported = json.loads(
        mura(env, "external", "import", str(dicom), "--labels", str(dicom / "labels.csv"), "--site", name,
             "--no-push", "--json")
    )  # fmt: skip
    imported_s = time.perf_counter() - started
    started = time.perf_counter()
    validate = ["external", "validate", "--site", name, "--model", "mura_binary/1", "--recalibrate", "--json"]
    result = json.loads(mura(env, *validate))
    overall, again = result["comparison"][-1], result["recalibration"]
    return {
        "site": name,
        "seed": seed,
        "shift": shift,
        "studies": overall["studies"],
        "refused": len(imported["refused"]),
        "study_kappa": overall["kappa"]["site"],
        "study_kappa_ci": overall["kappa"]["site_ci"],
        "valid_study_kappa": overall["kappa"]["valid"],
        "study_auroc": overall["auroc"]["site"],
        "drop_significant": result["drop_significant"],
        "drifted": [test["feature"] for test in result["drift"]["tests"] if test["drifted"]],
        "held_out_studies": again["measured_studies"],
        "held_out_kappa_before": again["before"]["study"]["kappa"],
        "held_out_kappa_after": again["after"]["study"]["kappa"],
        "held_out_ece_before": again["before"]["calibration"]["study"]["ece"],
        "held_out_ece_after": again["after"]["calibration"]["study"]["ece"],
        "import_s": imported_s,
        "validate_s": time.perf_counter() - started,
    }


def spread(values: list[float]) -> dict:
    return {"median": statistics.median(values), "min": min(values), "max": max(values), "runs": len(values)}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, help="write external.json into this folder")
    parser.add_argument("--seeds", type=int, default=3, help="sites of each kind")
    parser.add_argument("--patients", type=int, default=100, help="patients per site")
    parser.add_argument("--preset", default="cpu_smoke")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="bench-external-") as folder:
        work = Path(folder)
        env = {
            **os.environ,
            "MURA_HOME": str(work / "home"),
            "MURA_DATA_DIR": str(work / "data"),
            "MURA_EXTERNAL_DIR": str(work / "external"),
            "MURA_PROGRESS": "0",
        }
        env.pop("MLFLOW_TRACKING_URI", None)
        started = time.perf_counter()
        mura(env, "data", "synth")
        run_id = json.loads(mura(env, "train", "--preset", args.preset, "--json"))["run_id"]
        mura(env, "register", run_id, "--no-auto-promote")
        trained_s = time.perf_counter() - started
        sites = []
        for number in range(args.seeds):
            for kind, shift in (("same", None), ("other", "other_site")):
                sites.append(site(env, work, f"{kind}-{number}", 100 + number, args.patients, shift))
                print(json.dumps(sites[-1]), file=sys.stderr)
    summary = {}
    for kind, shift in (("in_distribution", None), ("other_site", "other_site")):
        rows = [row for row in sites if row["shift"] == shift]
        summary[kind] = {
            "study_kappa": spread([row["study_kappa"] for row in rows]),
            "kappa_drop": spread([row["valid_study_kappa"] - row["study_kappa"] for row in rows]),
            "significant_drops": sum(row["drop_significant"] for row in rows),
            "sites_with_drift": sum(bool(row["drifted"]) for row in rows),
            "drifted_features": sorted({feature for row in rows for feature in row["drifted"]}),
            "recalibration_kappa_gain": spread(
                [row["held_out_kappa_after"] - row["held_out_kappa_before"] for row in rows]
            ),
            "recalibration_ece": {
                "before": spread([row["held_out_ece_before"] for row in rows]),
                "after": spread([row["held_out_ece_after"] for row in rows]),
            },
        }
    report = {
        "benchmark": "external",
        "preset": args.preset,
        "valid_study_kappa": sites[0]["valid_study_kappa"],
        "patients_per_site": args.patients,
        "train_s": trained_s,
        "summary": summary,
        "sites": sites,
    }
    text = json.dumps(report, indent=2)
    print(text)
    if args.out:
        args.out.mkdir(parents=True, exist_ok=True)
        (args.out / "external.json").write_text(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
