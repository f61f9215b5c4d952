"""The inner loop stays fast: unit tests load none of the heavy frameworks.

`make test-unit` sets MURA_CHECK_LIGHT_IMPORTS=1, and the session then fails when a unit test (or the
code it calls) imported one. In the full run other folders load them anyway, so it is not checked there.
"""

from __future__ import annotations

import os
import sys

import pytest

HEAVY = ("tensorflow", "keras", "mlflow", "great_expectations", "dvc", "airflow", "jax", "torch")


@pytest.fixture(scope="session", autouse=True)
def no_heavy_imports():
    """Fail the unit session when a heavy framework was imported in this process."""
    yield
    loaded = sorted({name.split(".")[0] for name in sys.modules} & set(HEAVY))
    if loaded and os.environ.get("MURA_CHECK_LIGHT_IMPORTS") == "1":
        pytest.fail(f"unit tests imported {loaded}: move that test to tests/model or tests/integration")
