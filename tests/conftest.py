"""Fixtures shared by every test folder: small synthetic MURA releases and an isolated MURA_HOME."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
os.environ.setdefault("DVC_NO_ANALYTICS", "1")


@pytest.fixture(scope="session")
def synthetic_root(tmp_path_factory) -> Path:
    """A clean synthetic release (60 train + 20 valid patients); the folder holding MURA-v1.1/. Read only."""
    from pipelines.data.synth import generate_synthetic

    root = tmp_path_factory.mktemp("synthetic")
    generate_synthetic(root, seed=11, train_patients=60, valid_patients=20)
    return root


@pytest.fixture(scope="session")
def synthetic_manifest(synthetic_root):
    """The manifest frame of `synthetic_root`."""
    from pipelines.data.manifest import build_manifest

    return build_manifest(synthetic_root).frame


@pytest.fixture
def mura_home(tmp_path, monkeypatch) -> Path:
    """MURA_HOME, the model base path and the MLflow store moved under tmp_path for one test."""
    home = tmp_path / "mura_home"
    monkeypatch.setenv("MURA_HOME", str(home))
    monkeypatch.setenv("MURA_MODEL_BASE_PATH", str(home / "serving" / "models"))
    monkeypatch.setenv("MLFLOW_TRACKING_URI", f"sqlite:///{home / 'mlflow.db'}")
    return home


def pytest_collection_modifyitems(config, items):
    """Markers tell the truth: everything under tests/integration is `integration`, under tests/e2e `e2e`."""
    for item in items:
        parts = Path(str(item.fspath)).parts
        if "integration" in parts:
            item.add_marker(pytest.mark.integration)
        elif "e2e" in parts:
            item.add_marker(pytest.mark.e2e)
