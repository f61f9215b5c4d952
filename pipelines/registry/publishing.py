"""Bring a registered version's SavedModel into the TF Serving model base path, hash-checked, atomically."""

from __future__ import annotations

import tempfile
from dataclasses import dataclass
from pathlib import Path

from pipelines.contracts import check_model_name
from pipelines.registry.hashing import HASH_TAG, verify_digest
from pipelines.registry.tracking import tracking_errors


@dataclass(frozen=True)
class DeployOptions:
    """Where the reconciler publishes and which server it drives (settings + params.yaml gate.deploy)."""

    model_base_path: Path
    config_path: Path
    grpc_target: str
    reload: str
    available_timeout_seconds: float
    smoke_images: int
    request_timeout_seconds: float
    server_base_path: str | None = None  # the base path as the server sees it (e.g. /models in compose)

    @classmethod
    def from_settings(cls, **overrides) -> DeployOptions:
        """Options from get_settings() and params.yaml `deploy`, then non-None `overrides`."""
        import dataclasses

        from pipelines.config import load_config
        from pipelines.errors import ConfigError
        from pipelines.settings import get_settings

        settings = get_settings()
        values = {
            "model_base_path": settings.model_base_path,
            "config_path": settings.models_config_path,
            "grpc_target": settings.serving_grpc,
            **dataclasses.asdict(load_config().deploy),
        }
        values.update({key: value for key, value in overrides.items() if value is not None})
        if values["reload"] not in ("grpc", "poll"):
            raise ConfigError(f"deploy reload={values['reload']!r}: use grpc or poll")
        return cls(**values)


def version_folder(options: DeployOptions, model_name: str, version: int) -> Path:
    """`<model base>/<model>/<version>`, after checking the name against the contract (no `..`, no `/`)."""
    return Path(options.model_base_path) / check_model_name(model_name) / str(int(version))


def ensure_published(
    client, model_name: str, version: int, options: DeployOptions, verify_on_disk: bool
) -> bool:
    """Publish `version` unless it is on disk (then hash-check it when asked); True when it was published now.

    The download lands in a scratch folder and is checked against the registered hash before
    serving.repository.publish_version renames it into place, so nothing half-written or tampered
    ever appears under the model base path.
    """
    import mlflow

    from serving.repository import publish_version

    target = version_folder(options, model_name, version)
    with tracking_errors(client, f"reading {model_name} v{version}"):
        expected = client.get_model_version(model_name, str(version)).tags.get(HASH_TAG)
    if (target / "saved_model.pb").is_file():
        if verify_on_disk:
            verify_digest(target, expected, f"{model_name} v{version} at {target}")
        return False
    with tempfile.TemporaryDirectory(prefix=f"mura-deploy-{model_name}-{version}-") as scratch:
        with tracking_errors(client, f"downloading {model_name} v{version}"):
            uri = client.get_model_version_download_uri(model_name, str(version))
            local = Path(
                mlflow.artifacts.download_artifacts(
                    artifact_uri=uri, dst_path=scratch, tracking_uri=client.tracking_uri
                )
            )
        verify_digest(local, expected, f"{model_name} v{version} downloaded from {uri}")
        publish_version(local, model_name, int(version), options.model_base_path)
    return True
