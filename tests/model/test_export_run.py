"""`mura export RUN_ID`: download a training run's model from MLflow, export it, log it under tf_serving/."""

from __future__ import annotations

import json

import pytest

from mura_core import contracts

pytestmark = pytest.mark.slow


def test_export_run_logs_saved_model(tmp_path, monkeypatch, capsys):
    import keras
    import mlflow

    from pipelines.cli import main
    from serving import samples

    monkeypatch.setenv("MURA_HOME", str(tmp_path / "home"))
    monkeypatch.setenv("MLFLOW_TRACKING_URI", f"sqlite:///{tmp_path / 'mlflow.db'}")
    mlflow.set_tracking_uri(f"sqlite:///{tmp_path / 'mlflow.db'}")
    model = samples.tiny_keras_model("binary:XR_ELBOW", (24, 24))
    class_map = contracts.class_map("binary:XR_ELBOW", "tiny", (24, 24))
    model_file = tmp_path / "model.keras"
    keras.saving.save_model(model, model_file)
    (tmp_path / "class_map.json").write_text(json.dumps(class_map))
    with mlflow.start_run() as run:
        mlflow.log_artifact(str(model_file), artifact_path="model")
        mlflow.log_artifact(str(tmp_path / "class_map.json"), artifact_path="model")
    study = tmp_path / "study"
    study.mkdir()
    (study / "image1.png").write_bytes(samples.sample_png(40, 50))
    assert main(["export", run.info.run_id, "--samples", str(study), "--json"]) == 0
    result = json.loads(capsys.readouterr().out)
    assert result["model_name"] == "mura_binary_elbow"
    listed = {item.path for item in mlflow.MlflowClient().list_artifacts(run.info.run_id, "tf_serving")}
    assert "tf_serving/saved_model.pb" in listed and "tf_serving/assets.extra" in listed
    assert main(["export", "0123456789abcdef0123456789abcdef"]) == 1
    assert "mura: error:" in capsys.readouterr().err
