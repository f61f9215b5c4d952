"""The monitor's live check when serving does not answer: never a silent gap in the retrain trigger."""

from __future__ import annotations

import logging

import pandas as pd

from mura_core.config import load_config
from mura_core.ports import free_port
from pipelines.monitoring.check import _live
from serving.samples import sample_png


def test_a_live_check_serving_cannot_answer_is_logged_and_recorded_in_the_run(tmp_path, monkeypatch, caplog):
    """It used to become {"error": ...} with no log line, so nobody saw that the live-kappa trigger
    could not fire."""
    target = f"127.0.0.1:{free_port()}"  # nothing listens there
    monkeypatch.setenv("MURA_SERVING_GRPC", target)
    rows = []
    for study in range(3):
        path = f"valid/XR_HAND/patient0000{study}/study1_negative/image1.png"
        (tmp_path / path).parent.mkdir(parents=True)
        (tmp_path / path).write_bytes(sample_png(24, 24, seed=study))
        rows.append({"image_path": path, "split": "valid", "study_id": path.rsplit("/", 1)[0], "label": 0})
    config = load_config()

    with caplog.at_level(logging.ERROR, logger="pipelines.monitoring.check"):
        live = _live("mura_binary", None, pd.DataFrame(rows), tmp_path, config.monitor, config.evaluation)

    assert target in live.error
    assert "live-kappa retrain trigger could not be evaluated" in caplog.text and target in caplog.text
    assert live.state.startswith(f"failed: the served models did not answer at {target}")
