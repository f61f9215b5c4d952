"""Typed settings from the environment (names and defaults of DESIGN.md) and params.yaml."""

from __future__ import annotations

import os
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Any

import yaml

from pipelines.errors import ConfigError

REPO_ROOT = Path(__file__).resolve().parent.parent


@dataclass(frozen=True)
class Settings:
    """Where state lives and how the parts reach each other."""

    repo_root: Path
    mura_home: Path
    data_dir: Path
    model_base_path: Path
    serving_grpc: str
    serving_rest: str
    mlflow_tracking_uri: str
    airflow_url: str
    default_preset: str
    params_file: Path
    dvc_remote: str | None = None  # MURA_DVC_REMOTE: DVC remote name (default: .dvc/config's)
    dvc_s3_endpoint: str | None = None  # MURA_DVC_S3_ENDPOINT: overrides the s3 remote's endpointurl

    @property
    def models_config_path(self) -> Path:
        """The TF Serving `models.config` inside the model base path."""
        return self.model_base_path / "models.config"

    @property
    def dvc_local_remote(self) -> Path:
        """The folder used as the default DVC remote of the embedded stack."""
        return self.mura_home / "dvc-remote"


def get_settings(environ: dict[str, str] | None = None) -> Settings:
    """Resolve settings now (never at import time) from `environ` (default: os.environ)."""
    env = os.environ if environ is None else environ
    repo_root = Path(env.get("MURA_REPO_ROOT", REPO_ROOT)).resolve()
    mura_home = Path(env.get("MURA_HOME", repo_root / ".mura")).expanduser().resolve()
    model_base = Path(env.get("MURA_MODEL_BASE_PATH", mura_home / "serving" / "models")).expanduser()
    tracking = env.get("MLFLOW_TRACKING_URI") or f"sqlite:///{mura_home / 'mlflow' / 'mlflow.db'}"
    return Settings(
        repo_root=repo_root,
        mura_home=mura_home,
        data_dir=Path(env.get("MURA_DATA_DIR", repo_root / "data")).expanduser().resolve(),
        model_base_path=model_base.resolve(),
        serving_grpc=env.get("MURA_SERVING_GRPC", "127.0.0.1:8500"),
        serving_rest=env.get("MURA_SERVING_REST", "127.0.0.1:8501"),
        mlflow_tracking_uri=tracking,
        airflow_url=env.get("AIRFLOW_URL", "http://127.0.0.1:8080"),
        default_preset=env.get("MURA_DEFAULT_PRESET", "cpu_smoke"),
        params_file=Path(env.get("MURA_PARAMS_FILE", repo_root / "params.yaml")).resolve(),
        dvc_remote=env.get("MURA_DVC_REMOTE") or None,
        dvc_s3_endpoint=env.get("MURA_DVC_S3_ENDPOINT") or None,
    )


@lru_cache(maxsize=8)
def _read_params(path: str, mtime: float) -> dict[str, Any]:
    with open(path, encoding="utf-8") as handle:
        loaded = yaml.safe_load(handle) or {}
    if not isinstance(loaded, dict):
        raise ConfigError(f"{path}: expected a mapping at the top level")
    return loaded


def load_params(path: Path | None = None) -> dict[str, Any]:
    """The parsed params.yaml (cached until the file changes)."""
    path = path or get_settings().params_file
    if not path.is_file():
        raise ConfigError(f"{path}: parameters file not found")
    return _read_params(str(path), path.stat().st_mtime)


def params_section(name: str, path: Path | None = None) -> dict[str, Any]:
    """One top-level section of params.yaml, e.g. `validation` or `gate`."""
    params = load_params(path)
    if name not in params:
        raise ConfigError(f"params.yaml has no '{name}' section")
    return params[name]
