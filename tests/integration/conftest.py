"""Fixtures shared by the integration tests."""

from __future__ import annotations

import pytest

from tests.integration.compose_file import resolve
from tests.integration.registry_world import WEBHOOK_CACHE_TTL_S


@pytest.fixture(scope="module")
def resolved(tmp_path_factory) -> dict:
    """The compose file as `docker-compose config` resolves it (or the Python fallback)."""
    return resolve(tmp_path_factory.mktemp("compose"))


@pytest.fixture(scope="module")
def world(tmp_path_factory):
    """A real MLflow server, two local TF-Serving servers on one models.config (the embedded stack's
    serving process and its replica), and the env pointing at them."""
    from pipelines.tracking.server import start_tracking_server
    from serving.repository import read_models_config, write_models_config
    from serving.server import ServerOptions, start_server

    home = tmp_path_factory.mktemp("registry_home")
    tracking = start_tracking_server(
        home,
        environment={
            "MLFLOW_WEBHOOK_ALLOWED_SCHEMES": "http,https",
            "MLFLOW_WEBHOOK_ALLOW_PRIVATE_IPS": "true",
            "MLFLOW_WEBHOOK_CACHE_TTL": str(WEBHOOK_CACHE_TTL_S),
        },
    )
    base = home / "serving" / "models"
    config_path = write_models_config(read_models_config(base / "models.config"), base / "models.config")
    options = ServerOptions(
        port=0,
        rest_api_port=0,
        model_config_file=str(config_path),
        model_config_file_poll_wait_seconds=0,
        file_system_poll_wait_seconds=0,
    )
    serving, replica = start_server(options), start_server(options)
    patch = pytest.MonkeyPatch()
    for name, value in {
        "MURA_HOME": str(home),
        "MURA_MODEL_BASE_PATH": str(base),
        "MLFLOW_TRACKING_URI": tracking.uri,
        "MURA_SERVING_GRPC": serving.grpc_target,
        "MURA_SERVING_REST": serving.rest_url,
        "MURA_SERVING_REPLICA_GRPC": replica.grpc_target,
        "MURA_SERVING_REPLICA_REST": replica.rest_url,
    }.items():
        patch.setenv(name, value)
    import mlflow

    client = mlflow.MlflowClient(tracking.uri, registry_uri=tracking.uri)
    experiment_id = client.create_experiment("mura")
    try:
        yield {
            "tracking": tracking,
            "serving": serving,
            "replica": replica,
            "client": client,
            "experiment": experiment_id,
            "base": base,
            "config": config_path,
            "home": home,
        }
    finally:
        patch.undo()
        serving.stop()
        replica.stop()
        tracking.stop()
