"""Model behaviour on synthetic MURA: learning, 14-class parts, resume after a kill, MLflow contents, CLI."""

import json

import keras
import pytest
from mlflow.tracking import MlflowClient

from pipelines.data.manifest import build_manifest, write_manifest
from pipelines.data.synth import generate_synthetic
from pipelines.evaluation import evaluate_run
from pipelines.training import train
from pipelines.training.fit import read_state

pytestmark = pytest.mark.slow
# The committed synthetic sample (generation is byte for byte): the data every model here trains on.
SAMPLE = {"seed": 7, "train_patients": 400, "valid_patients": 100}
# Learns at all, not how well (that is benchmarks/bench_model_quality.py): `ci_tiny` on SAMPLE, training
# seeds 1-20 (benchmarks/bench_fixture_learning.py, 2 cores): binary valid study AUROC median 0.954,
# range 0.929-0.969; 14-class image study-type accuracy median 0.994, range 0.972-0.997. A model that
# learned nothing scores about 0.5 and 1/7 (0.14). The 14-class tail is longer than 20 seeds show: a CI
# run stopped early at epoch 5 and restored epoch 2 (its 14-class holdout accuracy peaked there) with a
# study-type accuracy of 0.896, so that floor sits far below the spread, still 4x chance.
LEARNS_AUROC = 0.75
LEARNS_PART_ACCURACY = 0.6


@pytest.fixture(scope="module")
def synthetic(tmp_path_factory):
    """The committed sample + manifest, with MURA_HOME and MLflow in a temporary folder."""
    root = tmp_path_factory.mktemp("mura")
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("MURA_HOME", str(root / "home"))
        patch.setenv("MLFLOW_TRACKING_URI", f"sqlite:///{root / 'home' / 'mlflow.db'}")
        generate_synthetic(root / "data", **SAMPLE)
        manifest = write_manifest(build_manifest(root / "data").frame, root / "manifest.parquet")
        yield {"data": root / "data", "manifest": manifest, "root": root}


@pytest.fixture(scope="module")
def binary_run(synthetic):
    """The baseline CNN trained once with the `ci_tiny` preset and evaluated; most tests here read it."""
    result = train({"preset": "ci_tiny", "task": "binary"}, synthetic["manifest"], synthetic["data"])
    evaluation = evaluate_run(result.run_id)
    return result, evaluation


def test_baseline_learns_abnormality_at_all(binary_run):
    result, evaluation = binary_run
    assert result.model_name == "mura_binary"
    assert evaluation.metrics["eval.study_auroc"] > LEARNS_AUROC, evaluation.table
    assert "Overall" in evaluation.table


def test_lineage_is_the_hash_of_the_data_read_and_never_claims_an_unpushed_version(binary_run, synthetic):
    from pipelines.data.dvc import pointer_md5
    from pipelines.data.versioning import folder_md5

    tags = MlflowClient().get_run(binary_run[0].run_id).data.tags
    assert tags["data.md5"] == folder_md5(synthetic["data"])[0]
    # The same bytes as the committed sample (generation is deterministic), but this MURA_HOME's DVC
    # remote holds none of it: not versioned, and data.dvc_md5 does not pretend otherwise.
    assert tags["data.md5"] == pointer_md5()
    assert tags["data.versioned"] == "false" and tags["data.dvc_md5"] == tags["data.rev"] == "unversioned"
    assert tags["code.dirty"] in ("true", "false") and len(tags["code.git_sha"]) == 40


def test_run_holds_lineage_metrics_and_artifacts(binary_run, tmp_path):
    result, evaluation = binary_run
    client = MlflowClient()
    run = client.get_run(result.run_id)
    assert client.get_experiment(run.info.experiment_id).name == "mura"
    assert run.info.status == "FINISHED"
    tags = run.data.tags
    for key in (
        "code.git_sha",
        "data.dvc_md5",
        "data.rev",
        "data.manifest_hash",
        "pkg.keras",
        "pkg.tensorflow",
    ):
        assert tags.get(key), key
    assert (tags["train.arch"], tags["train.task"], tags["model_name"]) == (
        "baseline_cnn",
        "binary",
        "mura_binary",
    )
    assert run.data.params["image_size"] == "[64, 64]" and run.data.params["preset"] == "ci_tiny"
    history = client.get_metric_history(result.run_id, "train.loss")
    assert len(history) >= 2 and sorted(m.step for m in history) == list(range(len(history)))
    assert client.get_metric_history(result.run_id, "holdout.loss")
    for key in ("eval.study_kappa", "eval.study_auroc", "eval.wrist.study_kappa", "eval.image_auroc"):
        assert key in run.data.metrics, key
    artifacts = {
        a.path
        for folder in ("model", "plots", "config", "environment", "evaluation", "evaluation/figures", "data")
        for a in client.list_artifacts(result.run_id, folder)
    }
    for path in (
        "model/model.keras",
        "model/class_map.json",
        "plots/learning_curves.png",
        "config/resolved_config.json",
        "environment/versions.json",
        "evaluation/metrics.json",
        "evaluation/figures/roc_per_part.png",
        "evaluation/figures/reliability_study.png",
        "evaluation/figures/confusion_study.png",
        "data/manifest.parquet",
        "model/operating_point.json",
        "evaluation/holdout_studies.csv",
    ):
        assert path in artifacts, path
    for key in (
        "holdout.study_kappa",
        "eval.study_kappa_ci_low",
        "eval.study_ece_raw",
        "calibration.threshold",
    ):
        assert key in run.data.metrics, key

    def files(folder: str) -> list[str]:
        found = []
        for item in client.list_artifacts(result.run_id, folder):
            found += files(item.path) if item.is_dir else [item.path]
        return found

    # One copy of the model per run: the evaluation does not log the model it downloaded.
    assert [path for path in files("") if path.endswith("model.keras")] == ["model/model.keras"]
    local = client.download_artifacts(result.run_id, "model", str(tmp_path))
    class_map = json.loads(open(f"{local}/class_map.json").read())
    assert class_map == {
        **class_map,
        "task": "binary",
        "model_name": "mura_binary",
        "arch": "baseline_cnn",
        "image_size": [64, 64],
        "classes": ["normal", "abnormal"],
    }
    model = keras.saving.load_model(f"{local}/model.keras")
    assert model.output_shape == (None, 1)


def test_champion_rescored_on_the_same_holdout_matches_its_stored_predictions(binary_run, synthetic):
    """The gate's fallback (score the champion on a new holdout) gives what evaluation stored."""
    import pandas as pd

    from pipelines.evaluation.holdout import scored_holdout_studies, stored_holdout_studies

    run_id = binary_run[0].run_id
    stored, threshold = stored_holdout_studies(MlflowClient(), run_id)
    rescored, rescored_threshold = scored_holdout_studies(
        run_id, pd.read_parquet(synthetic["manifest"]), synthetic["data"]
    )
    assert rescored_threshold == threshold and list(rescored["study_id"]) == list(stored["study_id"])
    assert (rescored["probability"] - stored["probability"]).abs().max() < 1e-5


def test_14cls_learns_the_body_part_at_all(synthetic):
    result = train({"preset": "ci_tiny", "task": "14cls"}, synthetic["manifest"], synthetic["data"])
    evaluation = evaluate_run(result.run_id)
    assert result.model_name == "mura_14cls"
    assert 0.0 <= evaluation.report["body_part_accuracy"]["study"] <= 1.0, evaluation.table
    assert evaluation.metrics["eval.image_body_part_accuracy"] > LEARNS_PART_ACCURACY, evaluation.table


class SimulatedKill(Exception):
    """Stands in for a worker killed after an epoch."""


class KillAfterFirstEpoch(keras.callbacks.Callback):
    def on_epoch_end(self, epoch, logs=None):
        raise SimulatedKill(f"killed after epoch {epoch}")


class EpochRecorder(keras.callbacks.Callback):
    def __init__(self):
        super().__init__()
        self.epochs = []

    def on_epoch_begin(self, epoch, logs=None):
        self.epochs.append(epoch)


def test_interrupted_run_resumes_and_finishes(synthetic):
    work_dir = synthetic["root"] / "work"
    config = {
        "preset": "ci_tiny",
        "task": "binary:XR_WRIST",
        "image_size": 48,
        "epochs": 3,
        "augment": True,  # the augmentation's random stream is part of what resumes
        "early_stopping_patience": 5,
    }
    with pytest.raises(SimulatedKill):
        train(
            config,
            synthetic["manifest"],
            synthetic["data"],
            work_dir=work_dir,
            extra_callbacks=(KillAfterFirstEpoch(),),
        )
    state = read_state(work_dir)
    client = MlflowClient()
    assert client.get_run(state["run_id"]).info.status == "FAILED"
    recorder = EpochRecorder()
    result = train(
        config, synthetic["manifest"], synthetic["data"], work_dir=work_dir, extra_callbacks=(recorder,)
    )
    assert result.run_id == state["run_id"]
    assert recorder.epochs == [1, 2]  # epoch 0 was not trained again
    assert client.get_run(result.run_id).info.status == "FINISHED"
    assert sorted(m.step for m in client.get_metric_history(result.run_id, "train.loss")) == [0, 1, 2]
    assert not work_dir.exists()
    assert result.model_name == "mura_binary_wrist"


def test_cli_train_runs_the_dag_s_steps_and_its_run_is_tagged_as_the_dag_s(synthetic, capsys):
    """`mura train` re-implemented the DAG's combine and evaluate steps: its runs had no data-gate tags
    and evaluated on another manifest. It now composes the DAG's step functions; its run and the DAG
    steps' run of the same config carry the same tag names and metric names."""
    from mura_core.stages import DataVersion
    from pipelines.cli import main
    from pipelines.flows import retrain as steps

    args = [
        "train",
        "--preset",
        "ci_tiny",
        "--data",
        str(synthetic["data"]),
        "--manifest",
        str(synthetic["manifest"]),
        "--epochs",
        "1",
        "--json",
    ]
    assert main(args) == 0
    output = json.loads(capsys.readouterr().out)
    assert output["runs"][0]["arch"] == "baseline_cnn"
    assert "eval.study_kappa" in output["metrics"]
    assert main(["evaluate", output["run_id"], "--json"]) == 0
    evaluated = json.loads(capsys.readouterr().out)
    assert evaluated["metrics"]["eval.study_kappa"] == pytest.approx(output["metrics"]["eval.study_kappa"])
    # The DAG's tasks, in-process and in order, on the same data and config.
    manifest = steps.build_manifest(
        DataVersion(dvc_md5="parity.dir", rev="r", data_rev="d"), synthetic["data"]
    )
    plan = steps.plan_candidates({"preset": "ci_tiny", "epochs": 1}, manifest, steps.validate_data(manifest))
    (trained,) = steps.combine_members([steps.train_candidate(candidate) for candidate in plan])
    evaluation = steps.evaluate_candidate(trained)  # export logs files only: no tag or metric to compare
    client = MlflowClient()
    cli_run, dag_run = (client.get_run(run_id).data for run_id in (output["run_id"], trained.run_id))
    assert cli_run.tags["validation.success"] == dag_run.tags["validation.success"] == "True"
    assert set(cli_run.tags) == set(dag_run.tags)
    assert set(cli_run.metrics) == set(dag_run.metrics)
    assert set(output["metrics"]) == set(evaluation.metrics)
    with pytest.raises(SystemExit) as usage:  # a usage error: argparse's exit code 2, before any import
        main(["train", "--architectures", "vgg16", "--data", str(synthetic["data"])])
    assert usage.value.code == 2 and "unknown architecture vgg16" in capsys.readouterr().err
    assert main(["train", "--architectures", "xception", "--image-size", "64"]) == 1
    assert "too small for xception" in capsys.readouterr().err


def test_tune_logs_nested_trials_and_writes_a_preset(synthetic):
    from pipelines.training.presets import resolve_config
    from pipelines.training.tuning import tune

    result = tune(
        {"preset": "ci_tiny", "image_size": 48, "epochs": 1},
        synthetic["manifest"],
        synthetic["data"],
        max_trials=2,
        preset_name="tuned_test",
    )
    client = MlflowClient()
    parent = client.get_run(result["run_id"])
    children = client.search_runs(
        [parent.info.experiment_id], filter_string=f"tags.mlflow.parentRunId = '{result['run_id']}'"
    )
    assert len(children) == 2
    assert all("learning_rate" in child.data.params for child in children)
    # ci_tiny keeps the epoch with the best holdout AUC (as cpu_smoke), and the tuner ranks trials by it.
    assert result["objective"] == "auc"
    scores = [child.data.metrics["tune.holdout_auc"] for child in children]
    assert result["best_score"] == pytest.approx(max(scores))
    tuned = resolve_config("tuned_test")
    assert tuned.learning_rate == pytest.approx(result["best"]["learning_rate"])


def test_ensemble_run_is_one_model_averaging_its_members(synthetic, tmp_path):
    """Two members (seeds 1, 2) combined into one run; its export serves the mean of the members."""
    import numpy as np
    import tensorflow as tf

    from pipelines.export import export_run
    from pipelines.flows.retrain import train_evaluate_export
    from pipelines.training.layers import load_model
    from serving import samples

    overrides = {"image_size": 48, "epochs": 1, "ensemble": 2, "seed": 1}
    (result,) = train_evaluate_export("ci_tiny", overrides, synthetic["data"], synthetic["manifest"])
    client = MlflowClient()
    run = client.get_run(result["run_id"])
    assert json.loads(run.data.tags["ensemble.members"]) == result["members"] and len(result["members"]) == 2
    seeds = [client.get_run(member).data.params["seed"] for member in result["members"]]
    assert seeds == ["1", "2"]
    assert "eval.study_kappa_ci_low" in result["metrics"] and "holdout.study_kappa" in result["metrics"]
    members = [
        load_model(client.download_artifacts(member, "model/model.keras", str(tmp_path / member)))
        for member in result["members"]
    ]
    saved = tmp_path / "saved"
    images = [samples.sample_png(90, 70, seed=index) for index in range(3)]
    export_run(result["run_id"], out_dir=saved, sample_images=images)
    from pipelines.training.preprocessing import decode_and_resize

    prepare = tf.function(lambda image: decode_and_resize(image, (48, 48)))
    pixels = tf.stack([prepare(tf.constant(image)) for image in images])
    expected = np.mean([np.asarray(member(pixels))[:, 0] for member in members], axis=0)
    served = tf.saved_model.load(str(saved)).signatures["serving_default"](image_bytes=tf.constant(images))
    np.testing.assert_allclose(served["raw_probability"].numpy(), expected, atol=1e-5)


def test_pointing_game_scores_grad_cam_against_the_drawn_boxes(binary_run, synthetic, tmp_path):
    """The pointing game runs on a trained model; its hit rate is a quality measured over seeds in
    benchmarks/bench_model_quality.py, not asserted here."""
    from pipelines.evaluation.pointing import pointing_game
    from pipelines.training.layers import load_model

    result, _ = binary_run
    path = MlflowClient().download_artifacts(result.run_id, "model/model.keras", str(tmp_path))
    pointed = pointing_game(load_model(path), synthetic["data"])
    assert pointed["images"] > 100
    for key in ("hit_rate", "strict_hit_rate", "random_point_rate", "strict_random_point_rate"):
        assert 0.0 <= pointed[key] <= 1.0, pointed
    # The chance baseline is a property of the drawn boxes: a uniformly random point lands within 3 % of
    # the image's side of one about 7 % of the time.
    assert 0.0 < pointed["random_point_rate"] < 0.15, pointed
    assert pointed["strict_random_point_rate"] <= pointed["random_point_rate"], pointed


def test_registered_version_has_a_model_card_that_renders_offline(binary_run, tmp_path, monkeypatch):
    """Registration writes the card; it renders in headless Chromium with every request refused and holds
    the per-type kappa table with intervals and Grad-CAM overlays. Written again after a decision, the
    card keeps its overlays without loading the model (the approval step used to load it again)."""
    import os
    from pathlib import Path

    from playwright.sync_api import sync_playwright

    from pipelines.cards import fetch_card
    from pipelines.export import export_run
    from pipelines.registry.registration import register_run

    run_id = binary_run[0].run_id
    export_run(run_id)
    registered = register_run(run_id)
    client = MlflowClient()
    entry = client.get_model_version(registered["model"], str(registered["version"]))
    assert entry.tags["card.path"].endswith(f"model_card/v{registered['version']}/card.html")
    assert entry.tags["card.path"] in entry.description
    card = fetch_card(client, registered["model"], registered["version"], tmp_path / "card")
    markdown = (card.parent / "card.md").read_text()
    assert "Research use only" in markdown and "| Overall |" in markdown
    pictures = sorted(path.read_bytes() for path in (card.parent / "overlays").glob("*.png"))
    assert pictures, "the Markdown card links its overlays"

    from pipelines.registry.registration import republish_card
    from pipelines.training import layers

    def no_model(path):
        raise AssertionError(f"the model was loaded again from {path}")

    monkeypatch.setattr(layers, "load_model", no_model)
    _, where = republish_card(registered["model"], registered["version"], client)
    assert where == entry.tags["card.path"]
    again = fetch_card(client, registered["model"], registered["version"], tmp_path / "again")
    assert sorted(path.read_bytes() for path in (again.parent / "overlays").glob("*.png")) == pictures
    assert again.read_text().count('class="overlay"') == card.read_text().count('class="overlay"') > 0
    monkeypatch.undo()

    artifacts = Path(os.environ.get("MURA_TEST_ARTIFACTS", "test-artifacts"))
    artifacts.mkdir(parents=True, exist_ok=True)
    refused: list[str] = []
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(
            executable_path="/usr/bin/chromium", args=["--no-sandbox", "--disable-gpu"]
        )
        page = browser.new_page(viewport={"width": 1200, "height": 900})
        page.route(
            "**/*",
            lambda route: (
                route.continue_()
                if route.request.url.startswith(("file:", "data:"))
                else (refused.append(route.request.url), route.abort())
            ),
        )
        page.goto(card.as_uri())
        page.wait_for_load_state("load")
        rows = page.locator("#kappa-table tbody tr")
        assert rows.count() == 8  # seven study types and overall
        overall = rows.last.inner_text()
        assert overall.startswith("Overall") and "[" in overall and "0.705" in overall, overall
        overlays = page.locator("img.overlay")
        assert overlays.count() >= 1
        assert all(
            page.evaluate(
                "(image) => image.complete && image.naturalWidth > 0", overlays.nth(index).element_handle()
            )
            for index in range(overlays.count())
        )
        page.screenshot(path=str(artifacts / "model_card.png"), full_page=True)
        browser.close()
    assert refused == []
