"""Reaching the MLflow tracking server; alias-name checks and registry look-ups."""

from __future__ import annotations

import contextlib
import re
from collections.abc import Iterator
from pathlib import Path

from mura_core.contracts import CHALLENGER, CHAMPION
from mura_core.errors import RegistryError, TrackingUnavailableError

# MLflow reserves these alias names for its own version references.
RESERVED_ALIAS = re.compile(r"^(latest|v\d+)$", re.IGNORECASE)


def tracking_uri() -> str:
    """The configured MLFLOW_TRACKING_URI (the embedded store under MURA_HOME when unset)."""
    from mura_core.settings import get_settings

    return get_settings().mlflow_tracking_uri


def check_reachable(uri: str, timeout_seconds: float = 5.0) -> None:
    """Raise TrackingUnavailableError naming `uri` when an HTTP tracking server does not answer /health."""
    if not uri.startswith(("http://", "https://")):
        return
    import requests

    try:
        response = requests.get(f"{uri.rstrip('/')}/health", timeout=timeout_seconds)
    except requests.RequestException as error:
        raise TrackingUnavailableError(
            f"MLflow tracking server {uri} is not reachable ({type(error).__name__}); start it "
            "(`mura mlflow-server` or `mura up`) or point MLFLOW_TRACKING_URI at a running one"
        ) from error
    if response.status_code != 200:
        raise TrackingUnavailableError(
            f"MLflow tracking server {uri} answered /health with HTTP {response.status_code}; "
            "check MLFLOW_TRACKING_URI and the server's --allowed-hosts"
        )


def connect(uri: str | None = None):
    """An MlflowClient for `uri` (default: the settings) after checking that the server answers."""
    import mlflow

    uri = uri or tracking_uri()
    if uri.startswith("sqlite:///"):
        Path(uri.removeprefix("sqlite:///")).parent.mkdir(parents=True, exist_ok=True)
    check_reachable(uri)
    return mlflow.MlflowClient(tracking_uri=uri, registry_uri=uri)


@contextlib.contextmanager
def tracking_errors(client, doing: str) -> Iterator[None]:
    """Turn MLflow and connection errors met while `doing` something into RegistryErrors naming the URI."""
    import requests
    from mlflow.exceptions import MlflowException

    uri = client.tracking_uri
    try:
        yield
    except requests.RequestException as error:
        raise TrackingUnavailableError(
            f"MLflow tracking server {uri} failed while {doing}: {error}"
        ) from error
    except MlflowException as error:
        message = str(error.message if hasattr(error, "message") else error).splitlines()[0]
        if (
            "Max retries exceeded" in message
            or "ConnectionError" in message
            or "Connection refused" in message
        ):
            raise TrackingUnavailableError(
                f"MLflow tracking server {uri} is not reachable while {doing}"
            ) from error
        if "error code 401" in message or "error code 403" in message:
            raise RegistryError(_refusal(uri, doing, "401" in message)) from error
        raise RegistryError(f"{doing} failed on {uri}: {message}") from error


def _refusal(uri: str, doing: str, unauthenticated: bool) -> str:
    """What to do when MLflow's basic-auth refused a request."""
    import os

    user = os.environ.get("MLFLOW_TRACKING_USERNAME")
    if unauthenticated:
        return (
            f"MLflow at {uri} refused the login {'of ' + repr(user) if user else '(none given)'} while "
            f"{doing} (HTTP 401): set MLFLOW_TRACKING_USERNAME and MLFLOW_TRACKING_PASSWORD "
            "(`mura accounts` says which account does what)"
        )
    return (
        f"MLflow account {user!r} may not do this: {doing} was refused on {uri} (HTTP 403); "
        "use an account that may (`mura accounts`): moving champion/challenger needs `reviewer`"
    )


def check_alias_name(alias: str) -> str:
    """Refuse MLflow's reserved alias names (`latest`, `v<N>`) and empty or odd ones."""
    if RESERVED_ALIAS.match(alias or ""):
        raise RegistryError(
            f"alias {alias!r} is reserved by MLflow (latest and v<N> name versions already); "
            f"use {CHAMPION!r} to go live or {CHALLENGER!r} for a canary"
        )
    if not re.fullmatch(r"[A-Za-z0-9_\-]+", alias or ""):
        raise RegistryError(f"alias {alias!r}: use letters, digits, '-' and '_' only")
    return alias


def get_registered(client, model_name: str):
    """A RegisteredModel, or RegistryError saying how to create it."""
    from mlflow.exceptions import MlflowException

    try:
        return client.get_registered_model(model_name)
    except MlflowException as error:
        if "RESOURCE_DOES_NOT_EXIST" not in str(error.error_code):
            raise
        raise RegistryError(
            f"no registered model {model_name!r}; register a run first (`mura register RUN_ID`)"
        ) from error


def get_version(client, model_name: str, version: int | str):
    """A ModelVersion, or RegistryError saying which versions exist."""
    from mlflow.exceptions import MlflowException

    get_registered(client, model_name)
    try:
        return client.get_model_version(model_name, str(version))
    except MlflowException as error:
        if "RESOURCE_DOES_NOT_EXIST" not in str(error.error_code):
            raise
        existing = sorted(
            int(found.version) for found in client.search_model_versions(f"name='{model_name}'")
        )
        raise RegistryError(
            f"{model_name} has no version {version} (versions: {existing or 'none'})"
        ) from error


def version_metrics(model_version) -> dict[str, float]:
    """The `eval.*` metrics recorded as tags on a model version."""
    metrics = {}
    for key, value in model_version.tags.items():
        if key.startswith("eval."):
            try:
                metrics[key] = float(value)
            except ValueError:
                continue
    return metrics


def experiment_id(client, name: str) -> str:
    """The id of MLflow experiment `name`, created when missing (with a SQLite store, its artifacts
    beside the store, not under whoever's current directory)."""
    from mura_core.settings import get_settings

    found = client.get_experiment_by_name(name)
    if found is not None:
        return found.experiment_id
    uri = get_settings().mlflow_tracking_uri
    location = None
    if uri.startswith("sqlite:///"):
        location = (Path(uri.removeprefix("sqlite:///")).parent / "artifacts").as_uri()
    return client.create_experiment(name, artifact_location=location)
