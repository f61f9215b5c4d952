"""Errors of the serving package; each message says what was wrong and what to do."""

from __future__ import annotations

from mura_core.errors import MuraError


class RepositoryError(MuraError):
    """The TF Serving model base path or models.config is not in a usable state."""


class ServingClientError(MuraError):
    """A prediction request failed; `code` is the gRPC status name (NOT_FOUND, UNAVAILABLE...)."""

    def __init__(self, message: str, code: str = "UNKNOWN"):
        super().__init__(message)
        self.code = code
