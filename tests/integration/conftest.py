"""Fixtures shared by the integration tests."""

from __future__ import annotations

import pytest

from tests.integration.compose_file import resolve


@pytest.fixture(scope="module")
def resolved(tmp_path_factory) -> dict:
    """The compose file as `docker-compose config` resolves it (or the Python fallback)."""
    return resolve(tmp_path_factory.mktemp("compose"))
