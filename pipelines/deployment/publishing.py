"""Bring a registered version's SavedModel into the TF Serving model base path, hash-checked, atomically.

The reconciler owns the model base path: a version folder there that is not what the registry
registered under that number (a hand-copied model, a half-written folder) is moved aside into the
quarantine folder, kept for inspection and logged, and the registered version is published in its place.
"""

from __future__ import annotations

import logging
import shutil
import tempfile
import uuid
from dataclasses import dataclass
from pathlib import Path

from mura_core.contracts import GATE_SIGNATURE_TAG, check_model_name
from mura_core.errors import IntegrityError
from pipelines.registry import HASH_TAG, verify_digest
from pipelines.tracking import tracking_errors

LOGGER = logging.getLogger(__name__)


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
    quarantine_path: Path  # where folders of the base path that the registry does not account for go
    models: tuple[str, ...]  # params.yaml deploy.models: the only registered models it publishes
    server_base_path: str | None = None  # the base path as the server sees it (e.g. /models in compose)
    replica_targets: tuple[str, ...] = ()  # the other serving processes on the same models.config

    @classmethod
    def from_settings(cls, **overrides) -> DeployOptions:
        """Options from get_settings() and params.yaml `deploy`, then non-None `overrides`."""
        import dataclasses

        from mura_core.config import load_config
        from mura_core.errors import ConfigError
        from mura_core.settings import get_settings

        settings = get_settings()
        values = {
            "model_base_path": settings.model_base_path,
            "config_path": settings.models_config_path,
            "grpc_target": settings.serving_grpc,
            "quarantine_path": settings.mura_home / "serving" / "quarantine",
            "replica_targets": tuple(grpc for grpc, _ in settings.serving_replicas[1:]),
            **dataclasses.asdict(load_config().deploy),
        }
        if overrides.get("grpc_target") is not None and overrides.get("replica_targets") is None:
            values["replica_targets"] = ()  # another server than the stack's: not the stack's replica
        values.update({key: value for key, value in overrides.items() if value is not None})
        if values["reload"] not in ("grpc", "poll"):
            raise ConfigError(f"deploy reload={values['reload']!r}: use grpc or poll")
        return cls(**values)


def version_folder(options: DeployOptions, model_name: str, version: int) -> Path:
    """`<model base>/<model>/<version>`, after checking the name against the contract (no `..`, no `/`)."""
    return Path(options.model_base_path) / check_model_name(model_name) / str(int(version))


def vouched_hash(model_name: str, entry) -> str:
    """The content hash the gate's signed verdict states for this version; IntegrityError when no
    verdict signed by the pipeline covers it (a version made or retagged by another login)."""
    from pipelines.registry import Verdict, verify_key, why_untrusted

    verdict = Verdict.of(model_name, entry)
    problem = why_untrusted(verdict, entry.tags.get(GATE_SIGNATURE_TAG), verify_key())
    if problem:
        raise IntegrityError(
            f"{model_name} v{entry.version} is not published: no gate verdict signed by the pipeline "
            f"vouches for its bytes ({problem}); register and gate the run again (`mura register RUN_ID`)"
        )
    if not verdict.sha256:
        raise IntegrityError(
            f"{model_name} v{entry.version} has no {HASH_TAG} tag: it was not registered by `mura "
            "register`; register the run again"
        )
    return verdict.sha256


def quarantine(folder: Path, options: DeployOptions, reason: str) -> Path:
    """Move `folder` out of the model base path into the quarantine (kept, never deleted); where it went."""
    from pipelines.registry import now_utc

    stamp = now_utc().replace(":", "").replace("-", "")
    destination = (
        Path(options.quarantine_path) / folder.parent.name / f"{folder.name}-{stamp}-{uuid.uuid4().hex[:6]}"
    )
    destination.parent.mkdir(parents=True, exist_ok=True)
    shutil.move(str(folder), str(destination))
    LOGGER.warning("%s: %s; moved to %s for inspection", folder, reason, destination)
    return destination


def ensure_published(
    client, model_name: str, version: int, options: DeployOptions, verify_on_disk: bool
) -> dict:
    """Publish `version` unless it is on disk (then hash-check it when asked); what was done:
    `published` (now), `quarantined` (the foreign folder moved aside first, or None).

    The download lands in a scratch folder and is checked against the registered hash before
    serving.repository.publish_version renames it into place, so nothing half-written or tampered
    ever appears under the model base path.
    """
    import mlflow

    from serving import publish_version

    target = version_folder(options, model_name, version)
    with tracking_errors(client, f"reading {model_name} v{version}"):
        expected = vouched_hash(model_name, client.get_model_version(model_name, str(version)))
    moved = None
    if target.exists():
        if not (target / "saved_model.pb").is_file():
            moved = quarantine(target, options, "no saved_model.pb: not a complete SavedModel")
        elif not verify_on_disk:
            return {"published": False, "quarantined": None}
        else:
            try:
                verify_digest(target, expected, f"{model_name} v{version} at {target}")
                return {"published": False, "quarantined": None}
            except IntegrityError as error:
                moved = quarantine(target, options, f"not the registered version ({error})")
    with tempfile.TemporaryDirectory(prefix=f"mura-deploy-{model_name}-{version}-") as scratch:
        with tracking_errors(client, f"downloading {model_name} v{version}"):
            uri = client.get_model_version_download_uri(model_name, str(version))
            local = Path(
                mlflow.artifacts.download_artifacts(
                    artifact_uri=uri, dst_path=scratch, tracking_uri=client.tracking_uri
                )
            )
        try:
            verify_digest(local, expected, f"{model_name} v{version} downloaded from {uri}")
        except IntegrityError as error:
            raise IntegrityError(
                f"{error}: the run's artifact no longer holds what was registered (exported again, or "
                "tampered with), so it is not deployed; restore it, or register a newly trained run"
            ) from error
        publish_version(local, model_name, int(version), options.model_base_path)
    if moved is not None:
        LOGGER.warning(
            "%s v%s: the registered version is published in place of the quarantined folder",
            model_name,
            version,
        )
    return {"published": True, "quarantined": str(moved) if moved else None}
