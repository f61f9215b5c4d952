"""Errors of the registry, gate, promotion and deployment steps; each says what to do next."""

from __future__ import annotations

from pipelines.errors import MuraError


class RegistryError(MuraError):
    """A registry operation was refused or failed (unknown model or version, gate refusal...)."""


class TrackingUnavailableError(RegistryError):
    """The MLflow tracking server could not be reached; the message names its URI."""


class IntegrityError(RegistryError):
    """A SavedModel's content hash differs from the one recorded at registration."""


class DeployError(RegistryError):
    """The reconciler could not bring serving in line with the registry; the old config was restored."""


class WebhookRejected(RegistryError):
    """A webhook delivery failed its signature, timestamp or replay check."""

    def __init__(self, message: str, status: int = 401):
        super().__init__(message)
        self.status = status
