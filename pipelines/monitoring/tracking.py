"""A monitor check as an MLflow run of experiment `mura-monitoring`: metrics, tags, a self-contained
HTML report and the raw results."""

from __future__ import annotations

import dataclasses
import json
import math
import tempfile
from pathlib import Path

from mura_core.contracts import part_slug
from mura_core.stages import MonitorCheck
from pipelines.tracking import experiment_id

EXPERIMENT = "mura-monitoring"


def check_metrics(check: MonitorCheck) -> dict[str, float]:
    """MLflow metric names of a check: drift.<feature>.p_value/effect, live.<model>.study_kappa, ..."""
    metrics = {"drift.detected": float(check.drift), "retrain_needed": float(check.retrain_needed)}
    for test in check.tests:
        metrics[f"drift.{test['feature']}.adjusted_p"] = test["adjusted_p"]
        metrics[f"drift.{test['feature']}.effect"] = test["effect"]
    for role in ("champion", "challenger"):
        report = getattr(check.live, role)
        if not report:
            continue
        for name in ("kappa", "auroc", "kappa_ci_low", "kappa_ci_high", "auroc_ci_low", "auroc_ci_high"):
            metrics[f"live.{role}.study_{name}"] = report["study"].get(name, math.nan)
        for part, values in report["per_part"].items():
            metrics[f"live.{role}.{part_slug(part)}.study_kappa"] = values["study"].get("kappa", math.nan)
    return {key: float(value) for key, value in metrics.items() if value is not None and value == value}


def log_check(client, check: MonitorCheck) -> MonitorCheck:
    """Log the check as a finished run; the check with its run id and the report's artifact URI."""
    from pipelines.monitoring.report import render_report

    run = client.create_run(
        experiment_id(client, EXPERIMENT),
        run_name=f"{check.model}-v{check.champion_version}-{check.data_md5[:8]}",
        tags={
            "monitor.model": check.model,
            "monitor.champion_version": str(check.champion_version),
            "monitor.challenger_version": str(check.challenger_version or ""),
            "monitor.data_md5": check.data_md5,
            "monitor.drift": str(check.drift).lower(),
            "monitor.retrain_requested": str(check.retrain_needed).lower(),
            "monitor.reasons": "; ".join(check.reasons)[:4000] or "none",
            "monitor.live": check.live.state[:4000],  # a failed live check must be visible in the run
        },
    )
    run_id = run.info.run_id
    for key, value in sorted(check_metrics(check).items()):
        client.log_metric(run_id, key, value)
    where = f"runs:/{run_id}/report/drift_report.html"
    check = dataclasses.replace(check, mlflow_run_id=run_id, report=where)
    with tempfile.TemporaryDirectory() as folder:
        render_report(check, Path(folder) / "drift_report.html")
        (Path(folder) / "check.json").write_text(json.dumps(check.to_xcom(), indent=2), encoding="utf-8")
        client.log_artifacts(run_id, folder, artifact_path="report")
    client.set_terminated(run_id)
    return check


def latest_check(client, model: str) -> MonitorCheck | None:
    """The newest logged check of `model`, or None when it was never monitored."""
    experiment = client.get_experiment_by_name(EXPERIMENT)
    if experiment is None:
        return None
    runs = client.search_runs(
        [experiment.experiment_id],
        f"tags.`monitor.model` = '{model}'",
        order_by=["start_time DESC"],
        max_results=1,
    )
    if not runs:
        return None
    with tempfile.TemporaryDirectory() as folder:
        path = client.download_artifacts(runs[0].info.run_id, "report/check.json", folder)
        return MonitorCheck.from_xcom(json.loads(Path(path).read_text(encoding="utf-8")))
