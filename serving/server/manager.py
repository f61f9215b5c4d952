"""Which versions of which models are loaded, their labels, and resolving a request to a servable.

Swaps never fail a request: a request takes a reference to its servable under the lock and runs
outside it; new versions are loaded before old ones are dropped, and labels only ever point at loaded
versions (TF Serving's rule).
"""

from __future__ import annotations

import logging
import threading
from dataclasses import dataclass
from pathlib import Path

from mura_core.contracts import parse_version
from serving.server.servable import ImageLimits, Servable, load_servable
from serving.server.status import ServingError

LOGGER = logging.getLogger(__name__)


@dataclass
class VersionStatus:
    """State of one version as GetModelStatus reports it."""

    state: str  # LOADING, AVAILABLE, END
    error_code: str = "OK"
    error_message: str = ""


def version_fingerprint(path: Path) -> tuple:
    """Every file of a version folder with its size and mtime: any change to any of them counts."""
    return tuple(
        sorted(
            (str(file.relative_to(path)), stat.st_size, stat.st_mtime_ns)
            for file in path.rglob("*")
            if file.is_file() and (stat := file.stat())
        )
    )


def versions_on_disk(base_path: str) -> list[int]:
    """Integer version folders under a model's base path that hold a saved_model.pb."""
    root = Path(base_path)
    if not root.is_dir():
        return []
    return sorted(
        int(p.name)
        for p in root.iterdir()
        if parse_version(p.name) is not None and (p / "saved_model.pb").is_file()
    )


def desired_versions(config) -> list[int]:
    """The versions a ModelConfig asks for, given what is on disk (latest N by default)."""
    on_disk = versions_on_disk(config.base_path)
    policy = config.model_version_policy
    kind = policy.WhichOneof("policy_choice")
    if kind == "all":
        return on_disk
    if kind == "specific":
        return sorted(set(policy.specific.versions) & set(on_disk))
    count = policy.latest.num_versions if kind == "latest" and policy.latest.num_versions else 1
    return on_disk[-count:]


class ModelManager:
    """Loads and unloads versions to follow the model configs; thread-safe."""

    def __init__(self, limits: ImageLimits | None = None, on_load=None):
        self._limits = limits or ImageLimits()
        self._on_load = on_load  # callback(model_path, status) for load metrics
        self._lock = threading.Lock()  # guards the maps below; held only for lookups and swaps
        self._reconcile_lock = threading.Lock()  # one reload or poll at a time
        self._configs: dict = {}
        self._servables: dict[str, dict[int, Servable]] = {}
        self._labels: dict[str, dict[str, int]] = {}
        self._status: dict[str, dict[int, VersionStatus]] = {}
        self._failed: dict[tuple[str, int], tuple] = {}  # (model, version) -> files when it failed

    def apply_config(self, model_configs: list) -> None:
        """Serve exactly these ModelConfigs: load, relabel, then unload; FAILED_PRECONDITION on a bad label."""
        with self._reconcile_lock:
            self._configs = {config.name: config for config in model_configs}
            self._reconcile(update_labels=True)

    def poll(self) -> None:
        """Pick up version folders that appeared or went away under the configured base paths."""
        with self._reconcile_lock:
            self._reconcile(update_labels=False)

    def _reconcile(self, update_labels: bool) -> None:
        wanted = {name: desired_versions(config) for name, config in self._configs.items()}
        for name, versions in wanted.items():
            for version in versions:
                if version not in self._servables.get(name, {}):
                    self._load(name, version, Path(self._configs[name].base_path) / str(version))
        label_error = None
        if update_labels:
            try:
                self._set_labels()
            except ServingError as error:
                label_error = error
        with self._lock:
            protected = {(name, v) for name, labels in self._labels.items() for v in labels.values()}
            for name in list(self._servables):
                keep = set(wanted.get(name, []))
                loaded = set(self._servables[name])
                if keep - loaded and loaded - keep:
                    # Availability first (TF Serving's default policy): a wanted version that failed to
                    # load does not take the last good one down with it.
                    keep.add(max(loaded - keep))
                for version in list(self._servables[name]):
                    if version not in keep and (name, version) not in protected:
                        del self._servables[name][version]  # in-flight requests keep their reference
                        self._status[name][version] = VersionStatus("END")
                        LOGGER.info("unloaded %s version %s", name, version)
                if not self._servables[name] and name not in self._configs:
                    del self._servables[name]
        if label_error is not None:
            raise label_error

    def _load(self, name: str, version: int, path: Path) -> None:
        stamp = version_fingerprint(path)
        if self._failed.get((name, version)) == stamp:
            return  # failed before and no file changed since: do not retry every poll
        with self._lock:
            self._status.setdefault(name, {})[version] = VersionStatus("LOADING")
        try:
            servable = load_servable(name, version, path, self._limits)
        except Exception as error:  # noqa: BLE001 - any load failure is reported in the version status
            LOGGER.error("loading %s version %s from %s failed: %s", name, version, path, error)
            self._failed[(name, version)] = stamp
            message = error.message if isinstance(error, ServingError) else str(error).splitlines()[0]
            with self._lock:
                self._status[name][version] = VersionStatus("END", "UNKNOWN", message)
            self._notify(path, "error")
            return
        with self._lock:
            self._servables.setdefault(name, {})[version] = servable
            self._status[name][version] = VersionStatus("AVAILABLE")
        self._failed.pop((name, version), None)
        self._notify(path, "success")
        LOGGER.info("loaded %s version %s from %s", name, version, path)

    def _notify(self, path: Path, status: str) -> None:
        if self._on_load is not None:
            self._on_load(str(path), status)

    def _set_labels(self) -> None:
        labels: dict[str, dict[str, int]] = {}
        with self._lock:
            for name, config in self._configs.items():
                loaded = self._servables.get(name, {})
                for label, version in config.version_labels.items():
                    if version not in loaded:
                        raise ServingError(
                            "FAILED_PRECONDITION",
                            f"Request to assign label to version {version} of model {name}, which is not "
                            "currently available for inference. Available versions are: "
                            f"{sorted(loaded)}. Load the version first, then assign the label.",
                        )
                    labels.setdefault(name, {})[label] = int(version)
            self._labels = labels

    def resolve(self, name: str, version: int | None = None, label: str | None = None) -> Servable:
        """The servable a request names (latest when neither version nor label is given)."""
        with self._lock:
            versions = self._servables.get(name, {})
            if label:
                version = self._labels.get(name, {}).get(label)
                if version is None:
                    raise ServingError("INVALID_ARGUMENT", f"Unrecognized servable version label: {label}")
            if version is None:
                if not versions:
                    raise ServingError("NOT_FOUND", f"Servable not found for request: Latest({name})")
                return versions[max(versions)]
            if version not in versions:
                raise ServingError(
                    "NOT_FOUND", f"Servable not found for request: Specific({name}, {version})"
                )
            return versions[version]

    def model_status(self, name: str, version: int | None = None, label: str | None = None) -> dict:
        """version -> VersionStatus for GetModelStatus (one version when given)."""
        with self._lock:
            known = dict(self._status.get(name, {}))
            if label:
                version = self._labels.get(name, {}).get(label)
                if version is None:
                    raise ServingError("INVALID_ARGUMENT", f"Unrecognized servable version label: {label}")
        if not known:
            raise ServingError("NOT_FOUND", f"Could not find any versions of model {name}")
        if version is not None:
            if version not in known:
                raise ServingError("NOT_FOUND", f"Could not find version {version} of model {name}")
            return {version: known[version]}
        return known

    def is_configured(self, name: str) -> bool:
        """Whether `name` is a model of the current config (metrics label only those)."""
        return name in self._configs

    def labels(self, name: str) -> dict[str, int]:
        """The current label -> version map of a model."""
        with self._lock:
            return dict(self._labels.get(name, {}))
