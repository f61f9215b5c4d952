"""The retrain and deploy DAGs' task bodies: one call each into data, validation, training, registry.

Everything passed between tasks is a small JSON dict (it travels as XCom). Importing this module is
cheap (no TensorFlow, MLflow, GX or DVC) because DAG files import it at parse time for the
choices of their trigger form.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

from pipelines.contracts import BODY_PARTS
from pipelines.errors import ConfigError
from pipelines.settings import get_settings, load_params

# Kept in step with pipelines.training.zoo.ARCHITECTURES by a unit test (the zoo imports Keras).
ARCHITECTURE_CHOICES = [
    "baseline_cnn",
    "densenet121",
    "densenet169",
    "resnet50",
    "resnet152",
    "inception_v3",
    "xception",
    "efficientnetv2_b0",
    "efficientnetv2_s",
    "mobilenet_v3_small",
]
TASK_CHOICES = ["binary", "14cls", *(f"binary:{part}" for part in BODY_PARTS)]
PRESET_CHOICES = sorted(load_params().get("presets", {}) or {"cpu_smoke": {}})
OVERRIDE_KEYS = (
    "task",
    "architectures",
    "epochs",
    "image_size",
    "batch_size",
    "learning_rate",
    "fine_tune_layers",
    "augment",
)


def pull_data(data_rev: str | None = None) -> dict:
    """DVC pull of `data/` (at git revision `data_rev` of data.dvc when given); the data version."""
    from pipelines.data import dvc

    return dvc.pull(rev=data_rev or None)


def build_manifest(data_version: dict) -> dict:
    """Build and store the manifest of the pulled data; its path and counts."""
    from pipelines.data.manifest import build_manifest as build
    from pipelines.data.manifest import write_manifest

    settings = get_settings()
    result = build(settings.data_dir)
    name = str(data_version.get("dvc_md5", "unversioned")).replace(".dir", "")
    path = write_manifest(result.frame, settings.mura_home / "manifests" / f"{name}.parquet")
    return {
        "manifest_path": str(path),
        "data_root": str(settings.data_dir),
        "rows": len(result.frame),
        "problems": result.problem_counts(),
        "data_version": data_version,
    }


def validate_data(manifest: dict) -> dict:
    """The GX gate on the manifest: raises DataValidationError (the summary) when the data is bad."""
    from pipelines.validation import validate_manifest_file

    report = validate_manifest_file(Path(manifest["manifest_path"]), Path(manifest["data_root"]))
    print(report["summary"])  # the task log shows what was checked
    return {"success": report["success"], "docs": report.get("data_docs") or ""}


def plan_candidates(params: dict[str, Any], manifest: dict, validation: dict) -> list[dict]:
    """One training candidate per architecture, with the resolved config checked before any training."""
    from pipelines.training.presets import resolve_config

    overrides = {key: params[key] for key in OVERRIDE_KEYS if params.get(key) not in (None, "", [])}
    if isinstance(overrides.get("image_size"), int):
        overrides["image_size"] = [overrides["image_size"]] * 2
    preset = params.get("preset") or get_settings().default_preset
    config = resolve_config(preset, overrides)
    if not config.architectures:
        raise ConfigError("no architecture to train")
    return [
        {
            "preset": preset,
            "overrides": {**overrides, "architectures": [arch]},
            "manifest": manifest,
            "validation": validation,
        }
        for arch in config.architectures
    ]


def train_candidate(candidate: dict) -> dict:
    """Train one candidate (one MLflow run); the run id and final training metrics."""
    from pipelines.training.run import train

    config = {"preset": candidate["preset"], **candidate["overrides"]}
    manifest = candidate["manifest"]
    result = train(config, manifest["manifest_path"], manifest["data_root"])
    return {**candidate, **result.to_dict()}


def evaluate_candidate(trained: dict) -> dict:
    """Study-level evaluation of one trained run on `valid`; its eval.* metrics."""
    from pipelines.evaluation import evaluate_run

    metrics = evaluate_run(trained["run_id"])["metrics"]
    return {**trained, "eval": {key: value for key, value in metrics.items() if key.startswith("eval.")}}


def best_candidate(evaluated: list[dict]) -> dict:
    """The candidate with the highest study-level kappa (a missing or undefined kappa ranks last)."""
    if not evaluated:
        raise ConfigError("no evaluated candidate to register")

    def kappa(candidate: dict) -> float:
        value = candidate["eval"].get("eval.study_kappa")
        return float("-inf") if value is None or math.isnan(value) else float(value)

    return max(evaluated, key=kappa)


def select_and_register(evaluated: list[dict], auto_promote: bool = False) -> dict:
    """Export the candidate with the best study-level kappa, register it, gate it, apply the promotion rule."""
    from mlflow.tracking import MlflowClient

    from pipelines.export import export_run
    from pipelines.registry.registration import register_run
    from pipelines.registry.tracking import connect

    best = best_candidate(evaluated)
    client: MlflowClient = connect()
    validation = best.get("validation", {})
    client.set_tag(best["run_id"], "validation.success", str(validation.get("success", "unknown")))
    client.set_tag(best["run_id"], "validation.docs", validation.get("docs") or "unknown")
    export_run(best["run_id"])
    registered = register_run(best["run_id"], auto_promote=auto_promote, client=client)
    ranking = {candidate["arch"]: candidate["eval"].get("eval.study_kappa") for candidate in evaluated}
    return {**registered, "model_name": registered["model"], "candidates": ranking}


def gate(registered: dict) -> dict:
    """The gate's verdict on the registered version (recorded as tags by registration); printed for the log."""
    verdict = registered["gate"]
    print(
        f"{registered['model']} v{registered['version']}: gate {verdict['status']} ({verdict['reason']}); "
        f"aliases {registered.get('aliases') or 'none'}"
    )
    return {
        "model": registered["model"],
        "version": registered["version"],
        **verdict,
        "aliases": registered.get("aliases"),
    }


def deploy(verdict: dict | None = None) -> dict:
    """Reconcile TF Serving with the registry aliases (champion -> stable, challenger -> canary)."""
    from pipelines.registry.reconciler import reconcile

    return reconcile()
