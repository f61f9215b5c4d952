"""`mura deploy`: make TF Serving equal to the registry (champion -> `stable`, challenger -> `canary`).

For every registered `mura_*` model: publish the aliased versions (hash-checked), rewrite
models.config in two phases when a label moves to a version not loaded yet (TF Serving only labels
loaded versions), reload, wait for AVAILABLE, smoke-predict (on every serving process: the embedded
stack runs two behind its gateway), and restore the previous config on any failure. Running it again
with nothing changed writes nothing.

The registered name serves the champion alone (label `stable`): TF Serving answers a request that
names no version with the highest loaded version, so only approved versions may be loaded there. The
challenger serves as `<model>_challenger` (label `canary`), from the same version folders.
"""

from __future__ import annotations

import contextlib
import logging
import os
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING

from mura_core.contracts import (
    CANARY,
    LABEL_OF_ALIAS,
    MODEL_NAME_PATTERN,
    STABLE,
    challenger_model_name,
)
from mura_core.errors import DeployError, RegistryError
from mura_core.stages import ModelServing, Reconciliation
from pipelines.deployment.publishing import DeployOptions, ensure_published, version_folder
from pipelines.deployment.serving_ops import ServingReplicas, sample_images
from pipelines.tracking import connect, tracking_errors

if TYPE_CHECKING:
    from mlflow.entities.model_registry import RegisteredModel

LOGGER = logging.getLogger(__name__)


def permission_denied(error: Exception) -> bool:
    """True for MLflow's answer to an account lacking a permission (HTTP 403)."""
    return getattr(error, "error_code", None) == "PERMISSION_DENIED" or "error code 403" in str(error)


def registered_models(client) -> list[RegisteredModel]:
    """Every registered model whose name follows the contract (`^mura_[a-z0-9_]+$`); others are skipped."""
    found: list[RegisteredModel] = []
    token = None
    while True:
        page = client.search_registered_models(max_results=100, page_token=token)
        found.extend(model for model in page if MODEL_NAME_PATTERN.fullmatch(model.name))
        token = page.token
        if not token:
            return found


def desired_labels(aliases: dict[str, str]) -> dict[str, int]:
    """label -> version wanted by the aliases (no canary when the challenger is the champion)."""
    labels = {}
    for alias, label in LABEL_OF_ALIAS.items():
        if aliases.get(alias) is not None:
            labels[label] = int(aliases[alias])
    if labels.get(CANARY) is not None and labels.get(CANARY) == labels.get(STABLE):
        del labels[CANARY]
    return labels


def served_models(model: str, aliases: dict[str, str]) -> dict[str, tuple[list[int], dict[str, int]]]:
    """TF Serving model name -> (versions, labels) the aliases ask for: the champion alone under the
    registered name, the challenger (if any, and not the champion) under `<model>_challenger`;
    empty for a name that should serve nothing."""
    labels = desired_labels(aliases)
    wanted = {model: ([labels[STABLE]], {STABLE: labels[STABLE]})}
    challenger = labels.get(CANARY)
    wanted[challenger_model_name(model)] = ([challenger], {CANARY: challenger}) if challenger else ([], {})
    return wanted


class Reconciler:
    """Runs one reconcile pass over the registered models against the serving replicas."""

    def __init__(self, client, options: DeployOptions, target: ServingReplicas):
        self.client, self.options, self.target = client, options, target

    def _write(self, name: str, versions: list[int], labels: dict[str, int], folder: str) -> None:
        from serving import remove_model, set_served_versions

        if not versions:
            remove_model(name, self.options.config_path)
            return
        set_served_versions(
            name,
            versions,
            labels,
            self.options.config_path,
            self.options.model_base_path,
            self.options.server_base_path,
            folder,
        )

    def _reload(self) -> None:
        if self.options.reload == "grpc":
            from serving import read_models_config

            self.target.reload_config(read_models_config(self.options.config_path))

    def _transition(self, name: str, versions: list[int], labels: dict[str, int], folder: str) -> None:
        """Serve `versions` with `labels` as `name`: load new versions first, then move labels and unload
        the rest (no versions: stop serving the name)."""
        from serving import served_versions

        timeout = self.options.available_timeout_seconds
        current_versions, current_labels = served_versions(name, self.options.config_path)
        new = sorted(set(versions) - set(current_versions))
        if new:  # also for a name new to the server: TF Serving labels only versions already loaded
            self._write(name, sorted(set(current_versions) | set(versions)), current_labels, folder)
            self._reload()
            self.target.wait_available(name, new, timeout)
        self._write(name, versions, labels, folder)
        self._reload()
        if versions:
            self.target.wait_available(name, versions, timeout)
            self.target.wait_labels(name, labels, timeout)

    def _restore(
        self, backup: bytes | None, old: dict[str, tuple[list[int], dict[str, int]]], folder: str
    ) -> str:
        """Put the previous models.config back (two-phase for the server); returns a note on how it went."""
        notes = []
        for name, (versions, labels) in old.items():
            try:
                self._transition(name, versions, labels, folder)
            except (DeployError, RegistryError) as error:
                notes.append(f"the server did not take the old config of {name} back: {error}")
        path = Path(self.options.config_path)
        if backup is None:
            path.unlink(missing_ok=True)
        else:
            temporary = path.with_name(f".{path.name}.{uuid.uuid4().hex[:8]}")
            temporary.write_bytes(backup)
            os.replace(temporary, path)  # byte-identical to before, whatever the server said
        if backup is not None and not notes:
            try:
                self._reload()
            except DeployError as error:
                notes.append(f"reloading the old config failed: {error}")
        return "previous models.config restored" + "".join(f"; {note}" for note in notes)

    def _in_sync(self, name: str, versions: list[int], labels: dict[str, int]) -> bool:
        from serving import served_versions

        if served_versions(name, self.options.config_path) != (versions, labels):
            return False
        # The file is right; check the server too (it may have restarted or missed a reload).
        return all(self.target.label_version(name, label) == version for label, version in labels.items())

    def _record(self, model: str, labels: dict[str, int]) -> list[str]:
        """Tag versions with serving.label / serving.deployed_at; only differences are written."""
        from pipelines.registry import now_utc, sync_history

        changes = []
        label_of = {version: label for label, version in labels.items()}
        for found in self.client.search_model_versions(f"name='{model}'"):
            version, current = int(found.version), found.tags.get("serving.label")
            wanted = label_of.get(version)
            if wanted is not None and current != wanted:
                self.client.set_model_version_tag(model, str(version), "serving.label", wanted)
                self.client.set_model_version_tag(model, str(version), "serving.deployed_at", now_utc())
                changes.append(f"v{version} -> {wanted}")
            elif wanted is None and current:
                self.client.delete_model_version_tag(model, str(version), "serving.label")
                self.client.set_model_version_tag(model, str(version), "serving.undeployed_at", now_utc())
                changes.append(f"v{version} undeployed")
        try:
            sync_history(self.client, model)
        except Exception as error:  # noqa: BLE001 - only a refused permission is expected here
            if not permission_denied(error):
                raise
            # The deployer account may tag versions, not models: an account that may (the DAG's
            # `pipeline`, a reviewer's promotion) records a champion moved elsewhere.
            LOGGER.info("champion history of %s not synced: this MLflow account may not tag models", model)
        return changes

    def reconcile_model(self, registered) -> ModelServing:
        """Bring one model in line; DeployError (config restored) when any step fails."""
        from serving import prune_versions, served_versions

        model = registered.name
        labels = desired_labels(registered.aliases)
        if STABLE not in labels:
            return ModelServing(model, changed=False, skipped="no champion alias: nothing to serve")
        wanted = served_models(model, registered.aliases)
        old = {name: served_versions(name, self.options.config_path) for name in wanted}
        old_versions = {version for versions, _ in old.values() for version in versions}
        published, quarantined = [], []
        for version in sorted(set(labels.values())):
            # A version already served was checked when it went in; others are checked now.
            done = ensure_published(
                self.client, model, version, self.options, verify_on_disk=version not in old_versions
            )
            if done["published"]:
                published.append(version)
            if done["quarantined"]:
                quarantined.append(done["quarantined"])
        changed = bool(published)
        # Loads before unloads: a challenger's new name first, the champion next, a name left empty last.
        order = sorted(wanted, key=lambda name: (not wanted[name][0], name == model))
        stale = [name for name in order if not self._in_sync(name, *wanted[name])]
        if stale:
            path = Path(self.options.config_path)
            backup = path.read_bytes() if path.is_file() else None
            try:
                for name in stale:
                    self._transition(name, *wanted[name], folder=model)
                    for label, version in sorted(wanted[name][1].items()):
                        images = sample_images(
                            version_folder(self.options, model, version), self.options.smoke_images
                        )
                        self.target.smoke_predict(name, label, version, images)
            except (DeployError, RegistryError) as error:
                note = self._restore(backup, {name: old[name] for name in stale}, model)
                raise DeployError(f"{model}: deploy failed, {note}: {error}") from error
            changed = True
        with tracking_errors(self.client, f"recording the deployment of {model}"):
            tags = self._record(model, labels)
        pruned = prune_versions(
            model, base_path=self.options.model_base_path, config_path=self.options.config_path
        )
        return ModelServing(
            model,
            changed=changed or bool(tags) or bool(pruned),
            labels=labels,
            served={name: wanted[name][1] for name in wanted if wanted[name][0]},
            published=published,
            quarantined=quarantined,
            tags=tags,
            pruned=pruned,
        )


@contextlib.contextmanager
def exclusive(model_base_path: Path, timeout_seconds: float) -> Iterator[None]:
    """One reconciler at a time per model base path (the deploy DAG, the webhook and a user may overlap)."""
    import fcntl

    Path(model_base_path).mkdir(parents=True, exist_ok=True)
    with open(Path(model_base_path) / ".reconcile.lock", "w") as handle:
        deadline = time.monotonic() + timeout_seconds
        while True:
            try:
                fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except BlockingIOError:
                if time.monotonic() > deadline:
                    raise DeployError(
                        f"another `mura deploy` holds {handle.name} for over {timeout_seconds:.0f}s; try again later"
                    ) from None
                time.sleep(0.5)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def reconcile(
    client=None, options: DeployOptions | None = None, models: list[str] | None = None
) -> Reconciliation:
    """One reconcile pass over every `mura_*` model (or `models`); DeployError listing the failures."""
    client = client or connect()
    options = options or DeployOptions.from_settings()
    with exclusive(options.model_base_path, 2 * options.available_timeout_seconds + 60):
        return _reconcile_all(client, options, models)


def _reconcile_all(client, options: DeployOptions, models: list[str] | None) -> Reconciliation:
    target = ServingReplicas((options.grpc_target, *options.replica_targets), options.request_timeout_seconds)
    results: list[ModelServing] = []
    failures: list[str] = []
    try:
        with tracking_errors(client, "listing registered models"):
            found = registered_models(client)
        failures.extend(
            f"{name} is not served: params.yaml deploy.models does not list it"
            for name in models or ()
            if name not in options.models
        )
        reconciler = Reconciler(client, options, target)
        for registered in found:
            if registered.name not in options.models:
                # A login that registered a model of its own must not get it served.
                LOGGER.warning("%s is not in params.yaml deploy.models: not served", registered.name)
                continue
            if models and registered.name not in models:
                continue
            try:
                results.append(reconciler.reconcile_model(registered))
            except RegistryError as error:  # one broken model must not stop the others
                LOGGER.error("%s", error)
                failures.append(str(error))
    finally:
        target.close()
    if failures:
        raise DeployError("; ".join(failures))
    return Reconciliation(results, changed=any(result.changed for result in results))
