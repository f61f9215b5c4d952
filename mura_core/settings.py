"""Typed settings from the environment: where state lives and how the parts reach each other.

params.yaml (training, evaluation, gate and serving parameters) is read by mura_core.config.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parent.parent
# The one default of each address (docs/ARCHITECTURE.md, "Ports, state and settings").
SERVING_GRPC_PORT, SERVING_REST_PORT = 8500, 8501  # tensorflow_model_server's own defaults
MLFLOW_PORT = 5000
DEFAULT_SERVING_GRPC = f"127.0.0.1:{SERVING_GRPC_PORT}"
DEFAULT_SERVING_REST = f"127.0.0.1:{SERVING_REST_PORT}"
# The embedded stack's second serving process: the gateway fails over to it while the first restarts.
DEFAULT_SERVING_REPLICA_GRPC = "127.0.0.1:8510"
DEFAULT_SERVING_REPLICA_REST = "127.0.0.1:8511"
DEFAULT_GATEWAY_GRPC = "127.0.0.1:8443"  # the TLS inference gateway (serving/gateway.py)
DEFAULT_GATEWAY_REST = "127.0.0.1:8444"
DEFAULT_AIRFLOW_URL = "http://127.0.0.1:8080"
EMBEDDED_MLFLOW_URL = f"http://127.0.0.1:{MLFLOW_PORT}"
DEFAULT_PRESET = "cpu_smoke"
DEFAULT_PACS_URL = "http://127.0.0.1:8042/dicom-web"  # the research PACS' DICOMweb root (Orthanc)


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
    airflow_execution_url: str  # MURA_AIRFLOW_EXECUTION_URL: the tasks' API (default: AIRFLOW_URL's port + 1)
    default_preset: str
    params_file: Path
    dvc_remote: str | None = None  # MURA_DVC_REMOTE: DVC remote name (default: .dvc/config's)
    dvc_s3_endpoint: str | None = None  # MURA_DVC_S3_ENDPOINT: overrides the s3 remote's endpointurl
    gateway_grpc: str = DEFAULT_GATEWAY_GRPC  # MURA_GATEWAY_GRPC
    gateway_rest: str = DEFAULT_GATEWAY_REST  # MURA_GATEWAY_REST
    serving_tls_ca: Path | None = None  # MURA_SERVING_TLS_CA: certificate to trust; set -> TLS (the gateway)
    serving_token: str | None = None  # MURA_SERVING_TOKEN: the gateway's bearer token (both sides)
    pacs_url: str = DEFAULT_PACS_URL  # MURA_PACS_URL: DICOMweb root of the PACS (QIDO, WADO, STOW)
    pacs_user: str | None = None  # MURA_PACS_USER / MURA_PACS_PASSWORD: its login (default: the
    pacs_password: str | None = None  #   embedded stack's, $MURA_HOME/secrets/pacs.json)
    external_dir: Path | None = None  # MURA_EXTERNAL_DIR: sites' releases (default <repo>/external)
    # MURA_SERVING_REPLICA_GRPC / _REST: the embedded stack's second serving process (empty: none).
    serving_replica_grpc: str = DEFAULT_SERVING_REPLICA_GRPC
    serving_replica_rest: str = DEFAULT_SERVING_REPLICA_REST

    @property
    def models_config_path(self) -> Path:
        """The TF Serving `models.config` inside the model base path."""
        return self.model_base_path / "models.config"

    @property
    def serving_replicas(self) -> tuple[tuple[str, str], ...]:
        """(gRPC, REST) of every serving process of the embedded stack: the first, then the replica."""
        replica = (self.serving_replica_grpc, self.serving_replica_rest)
        return ((self.serving_grpc, self.serving_rest),) + ((replica,) if all(replica) else ())

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
        external_dir=Path(env.get("MURA_EXTERNAL_DIR", repo_root / "external")).expanduser().resolve(),
        model_base_path=model_base.resolve(),
        serving_grpc=env.get("MURA_SERVING_GRPC", DEFAULT_SERVING_GRPC),
        serving_rest=env.get("MURA_SERVING_REST", DEFAULT_SERVING_REST),
        mlflow_tracking_uri=tracking,
        airflow_url=env.get("AIRFLOW_URL", DEFAULT_AIRFLOW_URL),
        airflow_execution_url=env.get("MURA_AIRFLOW_EXECUTION_URL")
        or _next_port(env.get("AIRFLOW_URL", DEFAULT_AIRFLOW_URL)),
        default_preset=env.get("MURA_DEFAULT_PRESET", DEFAULT_PRESET),
        params_file=Path(env.get("MURA_PARAMS_FILE", repo_root / "params.yaml")).resolve(),
        dvc_remote=env.get("MURA_DVC_REMOTE") or None,
        dvc_s3_endpoint=env.get("MURA_DVC_S3_ENDPOINT") or None,
        gateway_grpc=env.get("MURA_GATEWAY_GRPC", DEFAULT_GATEWAY_GRPC),
        gateway_rest=env.get("MURA_GATEWAY_REST", DEFAULT_GATEWAY_REST),
        serving_tls_ca=Path(env["MURA_SERVING_TLS_CA"]).expanduser()
        if env.get("MURA_SERVING_TLS_CA")
        else None,
        serving_token=env.get("MURA_SERVING_TOKEN") or None,
        pacs_url=env.get("MURA_PACS_URL", DEFAULT_PACS_URL).rstrip("/"),
        pacs_user=env.get("MURA_PACS_USER") or None,
        pacs_password=env.get("MURA_PACS_PASSWORD") or None,
        # The default replica comes with the default server: MURA_SERVING_GRPC naming another server
        # means no replica unless MURA_SERVING_REPLICA_* name one too.
        serving_replica_grpc=env.get(
            "MURA_SERVING_REPLICA_GRPC", "" if "MURA_SERVING_GRPC" in env else DEFAULT_SERVING_REPLICA_GRPC
        ),
        serving_replica_rest=env.get(
            "MURA_SERVING_REPLICA_REST", "" if "MURA_SERVING_REST" in env else DEFAULT_SERVING_REPLICA_REST
        ),
    )


def _next_port(url: str) -> str:
    """`url` with its port plus one (the embedded stack's execution API beside Airflow's own)."""
    from urllib.parse import urlsplit

    parts = urlsplit(url)
    return f"{parts.scheme}://{parts.hostname}:{(parts.port or 80) + 1}"
