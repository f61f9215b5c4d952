"""Exceptions that carry a message meant for the person who ran the command."""


class MuraError(Exception):
    """Base class: the message says what was wrong and what to do."""


class ConfigError(MuraError, ValueError):
    """A parameter, preset or setting has a value that cannot be used."""


class DataError(MuraError):
    """The data on disk is not a usable MURA tree (missing file, wrong CSV shape, bad zip)."""


class DataValidationError(MuraError):
    """The data validation gate failed; the message is the readable summary."""

    def __init__(self, message: str, report: dict | None = None):
        super().__init__(message)
        self.report = report or {}


class ExportError(MuraError):
    """A model could not be exported as a TF Serving SavedModel, or the export check failed."""


class NothingToMonitor(MuraError):
    """The monitor has no champion to compare with yet (a fresh platform): not a failure."""


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
