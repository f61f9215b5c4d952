"""The TF Serving model base path: `<base>/<model>/<version>/` SavedModels and `models.config`.

Publishing copies into a hidden staging folder on the same file system and renames it to the
version number, so a polling server never sees a half-written version. `models.config` is a
`tensorflow.serving.ModelServerConfig` in text format, read and written with the real protos.
"""

from __future__ import annotations

import os
import shutil
import uuid
from pathlib import Path

from mura_core.contracts import check_model_name, parse_version
from mura_core.errors import ConfigError
from serving.errors import RepositoryError

STAGING_PREFIX = ".staging-"


def _base(base_path: Path | None) -> Path:
    if base_path is not None:
        return Path(base_path)
    from mura_core.settings import get_settings

    return get_settings().model_base_path


def model_dir(model_name: str, base_path: Path | None = None) -> Path:
    """`<base>/<model_name>`, after checking the name against the contract (no `..`, no `/`)."""
    try:
        check_model_name(model_name)
    except ConfigError as error:
        raise RepositoryError(str(error)) from None
    return _base(base_path) / model_name


def _config_path(config_path: Path | None) -> Path:
    if config_path is not None:
        return Path(config_path)
    from mura_core.settings import get_settings

    return get_settings().models_config_path


def published_versions(model_name: str, base_path: Path | None = None) -> list[int]:
    """Versions of `model_name` on disk (integer folders holding a saved_model.pb), ascending."""
    folder = model_dir(model_name, base_path)
    if not folder.is_dir():
        return []
    return sorted(
        int(entry.name)
        for entry in folder.iterdir()
        if parse_version(entry.name) is not None and (entry / "saved_model.pb").is_file()
    )


def publish_version(
    saved_model_dir: Path, model_name: str, version: int | None = None, base_path: Path | None = None
) -> Path:
    """Copy a SavedModel into `<base>/<model_name>/<version>` atomically; version defaults to latest+1."""
    source = Path(saved_model_dir)
    if not (source / "saved_model.pb").is_file():
        raise RepositoryError(f"{source} has no saved_model.pb: pass a SavedModel folder (serving.export)")
    folder = model_dir(model_name, base_path)
    folder.mkdir(parents=True, exist_ok=True)
    if version is None:
        version = max(published_versions(model_name, base_path), default=0) + 1
    if int(version) < 1:
        raise RepositoryError(f"version {version} of {model_name}: versions are positive integers")
    target = folder / str(int(version))
    if target.exists():
        raise RepositoryError(f"{target} already exists: versions are immutable, publish a new number")
    staging = folder / f"{STAGING_PREFIX}{version}-{uuid.uuid4().hex[:8]}"
    try:
        shutil.copytree(source, staging)
        os.rename(staging, target)  # atomic on one file system: the server sees all or nothing
    finally:
        if staging.exists():
            shutil.rmtree(staging, ignore_errors=True)
    return target


def read_models_config(config_path: Path | None = None):
    """The ModelServerConfig in `models.config` (an empty model_config_list when the file is absent)."""
    from google.protobuf import text_format
    from tensorflow_serving.config import model_server_config_pb2

    path = _config_path(config_path)
    config = model_server_config_pb2.ModelServerConfig()
    if not path.is_file():
        config.model_config_list.SetInParent()
        return config
    try:
        text_format.Parse(path.read_text(), config)
    except text_format.ParseError as error:
        raise RepositoryError(f"{path} is not a ModelServerConfig text proto: {error}") from error
    if config.WhichOneof("config") != "model_config_list":
        raise RepositoryError(f"{path}: only model_config_list configs are supported")
    return config


def write_models_config(config, config_path: Path | None = None) -> Path:
    """Write a ModelServerConfig as text, atomically (temporary file then rename)."""
    from google.protobuf import text_format

    path = _config_path(config_path)
    path.parent.mkdir(parents=True, exist_ok=True)
    temporary = path.with_name(f".{path.name}.{uuid.uuid4().hex[:8]}")
    temporary.write_text(text_format.MessageToString(config))
    os.replace(temporary, path)
    return path


def find_model(config, model_name: str):
    """The ModelConfig entry of `model_name`, or None."""
    for entry in config.model_config_list.config:
        if entry.name == model_name:
            return entry
    return None


def ensure_model(config, model_name: str, base_path: Path | str):
    """The ModelConfig of `model_name`, added (platform tensorflow) when missing."""
    entry = find_model(config, model_name)
    if entry is None:
        entry = config.model_config_list.config.add(name=model_name, model_platform="tensorflow")
    entry.base_path = str(base_path)
    return entry


def set_served_versions(
    model_name: str,
    versions: list[int],
    labels: dict[str, int] | None = None,
    config_path: Path | None = None,
    base_path: Path | None = None,
    server_base_path: str | None = None,
    folder: str | None = None,
) -> Path:
    """Serve exactly `versions` of a model (specific policy) with `labels`; rewrites models.config.

    `server_base_path` is the model base path as the server sees it (e.g. `/models` in a container);
    by default the local one. `folder` is the model folder the versions live in when it is not the
    served name's own (a challenger serves from its registered model's folder). Every version must be
    published, and every label must point at one of `versions` (TF Serving's rule: a label names a
    loaded version).
    """
    folder = folder or model_name
    on_disk = set(published_versions(folder, base_path))
    missing = sorted(set(versions) - on_disk)
    if missing:
        raise RepositoryError(f"{model_name} versions {missing} are not published under {_base(base_path)}")
    labels = dict(labels or {})
    for label, version in labels.items():
        if version not in versions:
            raise RepositoryError(
                f"label {label!r} -> version {version} of {model_name}: that version is not served; "
                "serve it first, wait until it is AVAILABLE, then move the label"
            )
    config = read_models_config(config_path)
    root = server_base_path or str(_base(base_path))
    entry = ensure_model(config, model_name, f"{root.rstrip('/')}/{check_model_name(folder)}")
    entry.model_version_policy.specific.Clear()
    entry.model_version_policy.specific.versions.extend(sorted(set(versions)))
    entry.version_labels.clear()
    for label, version in sorted(labels.items()):
        entry.version_labels[label] = int(version)
    return write_models_config(config, config_path)


def remove_model(model_name: str, config_path: Path | None = None) -> bool:
    """Stop serving `model_name` (its entry leaves models.config); False when it was not there."""
    config = read_models_config(config_path)
    entries = config.model_config_list.config
    kept = [entry for entry in entries if entry.name != model_name]
    if len(kept) == len(entries):
        return False
    del entries[:]
    entries.extend(kept)
    write_models_config(config, config_path)
    return True


def served_versions(model_name: str, config_path: Path | None = None) -> tuple[list[int], dict[str, int]]:
    """The specific versions and labels of `model_name` in models.config (empty when absent)."""
    entry = find_model(read_models_config(config_path), model_name)
    if entry is None:
        return [], {}
    return list(entry.model_version_policy.specific.versions), dict(entry.version_labels)


def set_version_label(
    model_name: str, label: str, version: int, config_path: Path | None = None, base_path: Path | None = None
) -> Path:
    """Point `label` (stable/canary) at `version`, which must already be among the served versions."""
    versions, labels = served_versions(model_name, config_path)
    if version not in versions:
        raise RepositoryError(
            f"cannot label version {version} of {model_name} {label!r}: it is not served "
            f"(served: {versions}); add it with set_served_versions first"
        )
    labels[label] = int(version)
    return set_served_versions(model_name, versions, labels, config_path, base_path)


def prune_versions(
    model_name: str, keep: int | None = None, base_path: Path | None = None, config_path: Path | None = None
) -> list[int]:
    """Delete all but the newest `keep` versions on disk, never one that models.config serves."""
    if keep is None:
        from mura_core.config import load_config

        keep = load_config().serving.keep_versions
    if keep < 1:
        raise RepositoryError(f"keep={keep}: keep at least one version")
    versions = published_versions(model_name, base_path)
    protected = set(versions[-keep:])
    for entry in read_models_config(config_path).model_config_list.config:
        if Path(entry.base_path).name == model_name:  # its own entry, and any serving from its folder
            protected |= set(entry.model_version_policy.specific.versions) | set(
                entry.version_labels.values()
            )
    removed = []
    for version in versions:
        if version in protected:
            continue
        shutil.rmtree(model_dir(model_name, base_path) / str(version))
        removed.append(version)
    return removed
