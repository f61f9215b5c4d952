"""The monitor against a real MLflow server and the local TF Serving: a clean release passes, a shifted
one asks for a retrain once, and shadow scoring over gRPC equals the challenger evaluated in-process."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import pytest

from tests.integration.registry_world import make_run, run_cli

pytestmark = [pytest.mark.integration, pytest.mark.slow]
SIZE = {"train_patients": 40, "valid_patients": 25}
GOOD = {"eval.study_kappa": 0.60, "eval.study_auroc": 0.80}
BETTER = {"eval.study_kappa": 0.66, "eval.study_auroc": 0.84}


def _release(root: Path, seed: int, shift: str | None = None):
    from pipelines.data.manifest import build_manifest
    from pipelines.data.synth import generate_synthetic

    generate_synthetic(root, seed=seed, shift=shift, **SIZE)
    frame = build_manifest(root).frame
    return frame[frame["image_path"].notna()].reset_index(drop=True)


@pytest.fixture(scope="module")
def watched(world, tmp_path_factory):
    """mura_binary: champion v1 and challenger v2 served as stable and canary, the champion's
    reference taken from a seed-7 release."""
    from pipelines.deployment.reconciler import reconcile
    from pipelines.monitoring.reference import store_reference
    from pipelines.registry.registration import register_run
    from pipelines.training.layers import load_model

    client = world["client"]
    champion_run = make_run(world, None, GOOD, seed=1)
    challenger_run = make_run(world, None, BETTER, seed=2)
    assert register_run(champion_run)["aliases"] == ["champion"]
    assert register_run(challenger_run)["aliases"] == ["challenger"]
    reconcile(models=["mura_binary"])
    root = tmp_path_factory.mktemp("reference")
    frame = _release(root, 7)
    model = load_model(client.download_artifacts(champion_run, "model/model.keras", str(root)))
    assert store_reference(client, champion_run, model, frame, root, limit=250, seed=0) > 100
    return {"client": client, "challenger_run": challenger_run}


def _params(**changes):
    from mura_core.config import load_config

    defaults = {"current_images": 250, "live_studies": 40, "min_live_kappa": -1.0}
    return dataclasses.replace(load_config().monitor, **{**defaults, **changes})


def test_a_clean_release_is_not_drift_and_both_models_are_scored_live(watched, tmp_path):
    from pipelines.monitoring.check import run_monitor

    check = run_monitor(tmp_path, _release(tmp_path, 8), params=_params())
    assert not check.drift and not check.retrain_needed, check.tests
    assert check.champion_version == 1 and check.challenger_version == 2
    assert check.live.challenger and check.live.comparison and check.live.state == "scored"
    assert check.live.champion["study"]["count"] >= 30
    run = watched["client"].get_run(check.mlflow_run_id)
    assert run.data.tags["monitor.drift"] == "false" and "drift.embedding.adjusted_p" in run.data.metrics


def test_shadow_scoring_over_grpc_equals_the_challenger_evaluated_in_process(watched, tmp_path):
    import json

    from pipelines.evaluation.metrics import Uncertainty, evaluate_predictions
    from pipelines.evaluation.predict import score_images
    from pipelines.monitoring.live import performance, score_served
    from pipelines.training.layers import load_model
    from serving.client import ServingClient

    frame = _release(tmp_path, 8)
    rows = frame[frame["split"] == "valid"].reset_index(drop=True)
    with ServingClient() as client:
        served = score_served(rows, tmp_path, "mura_binary", "canary", client)
    assert served.attrs["versions"] == [2]
    mlflow = watched["client"]
    run_id = watched["challenger_run"]
    model = load_model(mlflow.download_artifacts(run_id, "model/model.keras", str(tmp_path / "m")))
    class_map = json.loads(
        Path(mlflow.download_artifacts(run_id, "model/class_map.json", str(tmp_path / "c"))).read_text()
    )
    local = evaluate_predictions(
        score_images(model, rows, tmp_path, class_map), served.attrs["threshold"], 10
    )
    shadow = performance(served, Uncertainty(), 10)
    for level in ("image", "study"):
        assert shadow[level]["kappa"] == pytest.approx(local[level]["kappa"], abs=1e-9)
        assert shadow[level]["auroc"] == pytest.approx(local[level]["auroc"], abs=1e-6)


def test_a_shifted_release_asks_for_one_retrain_with_a_report(watched, tmp_path, tmp_path_factory, capsys):
    from pipelines.monitoring.check import run_monitor

    frame = _release(tmp_path, 9, shift="brightness")
    check = run_monitor(tmp_path, frame, params=_params())
    assert check.drift and "mean_intensity" in check.drifted_features and check.retrain_needed, check.reasons
    report = Path(
        watched["client"].download_artifacts(
            check.mlflow_run_id, "report/drift_report.html", str(tmp_path_factory.mktemp("report"))
        )
    )
    assert "Drift detected in" in report.read_text() and "mean_intensity" in report.read_text()

    # The same data again (say the retrain's model failed its gate): drift, but not asked twice.
    code, again = run_cli(["monitor", "--data", str(tmp_path), "--json"], capsys)
    assert code == 0 and again["drift"] and not again["retrain_needed"], again["reasons"]
    assert any(check.mlflow_run_id in reason for reason in again["reasons"])
