"""Server options (the flags of tensorflow_model_server) and reading the model and monitoring configs."""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path

from mura_core.settings import SERVING_GRPC_PORT, SERVING_REST_PORT
from serving.errors import RepositoryError


@dataclass
class ServerOptions:
    """What `tensorflow_model_server` is told on its command line (same names). Unset, the poll intervals
    are params.yaml `serving`'s (what `mura serve` and compose pass the real binary), not the binary's
    own defaults: one home for them."""

    port: int = SERVING_GRPC_PORT
    rest_api_port: int = SERVING_REST_PORT
    model_config_file: str = ""
    model_config_file_poll_wait_seconds: float = field(
        default_factory=lambda: _serving_params().model_config_file_poll_wait_seconds
    )
    model_name: str = "default"
    model_base_path: str = ""
    file_system_poll_wait_seconds: float = field(
        default_factory=lambda: _serving_params().file_system_poll_wait_seconds
    )
    monitoring_config_file: str = ""
    enable_batching: bool = False
    batching_parameters_file: str = ""
    # Not TF Serving flags: where to listen, and the local server's limits (params.yaml `serving`,
    # their one home).
    bind_address: str = "127.0.0.1"
    max_request_bytes: int = field(default_factory=lambda: _serving_params().max_request_bytes)
    max_image_pixels: int = field(default_factory=lambda: _serving_params().max_image_pixels)
    max_image_side: int = field(default_factory=lambda: _serving_params().max_image_side)
    grpc_workers: int = field(default_factory=lambda: _serving_params().grpc_workers)
    max_request_batch_size: int = field(default_factory=lambda: _serving_params().max_request_batch_size)


def _serving_params():
    from mura_core.config import load_config

    return load_config().serving


def options_from_params(**overrides) -> ServerOptions:
    """ServerOptions with the local-server limits from params.yaml `serving`, then non-None `overrides`."""
    return ServerOptions(**{key: value for key, value in overrides.items() if value is not None})


def read_model_configs(options: ServerOptions) -> list:
    """The ModelConfigs to serve: from --model_config_file, else one model from --model_name/--model_base_path."""
    from tensorflow_serving.config import model_server_config_pb2

    if options.model_config_file:
        from serving.repository import read_models_config

        path = Path(options.model_config_file)
        if not path.is_file():
            raise RepositoryError(f"--model_config_file {path} does not exist")
        config = read_models_config(path)
        models = list(config.model_config_list.config)
        for model in models:
            if not model.base_path:
                raise RepositoryError(f"{path}: model {model.name!r} has no base_path")
            if model.model_platform not in ("", "tensorflow"):
                raise RepositoryError(
                    f"{path}: model {model.name!r} platform {model.model_platform!r} is not tensorflow"
                )
        return models
    if options.model_base_path:
        model = model_server_config_pb2.ModelConfig(
            name=options.model_name,
            base_path=str(Path(options.model_base_path).resolve()),
            model_platform="tensorflow",
        )
        return [model]
    raise RepositoryError("nothing to serve: pass --model_config_file, or --model_name and --model_base_path")


def read_monitoring_path(monitoring_config_file: str) -> str | None:
    """The Prometheus path of a MonitoringConfig text proto when enabled there, else None."""
    if not monitoring_config_file:
        return None
    path = Path(monitoring_config_file)
    if not path.is_file():
        raise RepositoryError(f"--monitoring_config_file {path} does not exist")
    text = path.read_text()
    # MonitoringConfig is not shipped in tensorflow-serving-api; its one block is parsed here.
    block = re.search(r"prometheus_config\s*:?\s*\{([^}]*)\}", text)
    if block is None or not re.search(r"enable\s*:\s*true", block.group(1)):
        return None
    found = re.search(r'path\s*:\s*"([^"]*)"', block.group(1))
    return found.group(1) if found else "/monitoring/prometheus/metrics"
