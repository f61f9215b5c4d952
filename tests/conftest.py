"""Fixtures shared by every test folder: small synthetic MURA releases and an isolated MURA_HOME."""

from __future__ import annotations

import os
import time
from collections import Counter
from pathlib import Path

import pytest

from tests.testing_doc import TIERS, file_seconds  # one list of tiers for the summary and docs/TESTING.md

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
    """Markers tell the truth: everything under tests/integration is `integration`, under tests/e2e `e2e`.
    The longest files run first (by docs/TESTING.md, the last full run's times): `make test` hands whole
    files to two workers (xdist --dist loadfile), and a long file started last would finish alone."""
    for item in items:
        parts = Path(str(item.fspath)).parts
        if "integration" in parts:
            item.add_marker(pytest.mark.integration)
        elif "e2e" in parts:
            item.add_marker(pytest.mark.e2e)
    seconds = file_seconds()
    items.sort(key=lambda item: -seconds.get(item.nodeid.split("::")[0], 0.0))  # stable: file order kept


_tier_seconds: Counter[str] = Counter()
_tier_tests: Counter[str] = Counter()
_session_started = time.monotonic()


def _tier(nodeid: str) -> str:
    """The tier of a test: the folder under tests/ it lives in."""
    parts = nodeid.split("/")
    return parts[1] if len(parts) > 2 and parts[0] == "tests" and parts[1] in TIERS else "other"


def pytest_runtest_logreport(report):
    """Add each phase's time to its tier (a session fixture counts where it is first set up)."""
    tier = _tier(report.nodeid)
    _tier_seconds[tier] += report.duration
    if report.when == "call":
        _tier_tests[tier] += 1


def pytest_terminal_summary(terminalreporter):
    """The cost of each tier, so every change's cost shows in the CI log."""
    if not _tier_seconds:
        return
    terminalreporter.section("time per tier")
    for tier in (*TIERS, "other"):
        if _tier_tests[tier] or _tier_seconds[tier]:
            terminalreporter.write_line(
                f"{tier:<12} {_tier_seconds[tier]:8.1f} s  {_tier_tests[tier]:4d} tests"
            )
    wall = time.monotonic() - _session_started
    workers = terminalreporter.config.getoption("numprocesses", None)
    if workers:  # the tiers ran side by side: their sum is more than the wall time
        terminalreporter.write_line(f"{'wall':<12} {wall:8.1f} s  ({workers} workers)")
    else:
        rest = wall - sum(_tier_seconds.values())
        terminalreporter.write_line(f"{'collection':<12} {max(rest, 0.0):8.1f} s  (imports, start-up)")
