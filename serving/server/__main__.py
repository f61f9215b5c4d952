"""`python -m serving.server`: the local TF-Serving-compatible server with tensorflow_model_server's flags.

`mura serve` execs this (or `tensorflow_model_server` itself where it is on PATH), so the server is a
process of its own and nothing in `pipelines` imports it.
"""

from __future__ import annotations

import argparse
import logging
import os
import shutil
import sys
from pathlib import Path

from mura_core.settings import SERVING_GRPC_PORT, SERVING_REST_PORT

# Flags handed unchanged to tensorflow_model_server when it is installed.
TF_SERVING_FLAGS = (
    "port", "rest_api_port", "model_config_file", "model_config_file_poll_wait_seconds", "model_name",
    "model_base_path", "file_system_poll_wait_seconds", "monitoring_config_file", "enable_batching",
    "batching_parameters_file",
)  # fmt: skip


def build_parser() -> argparse.ArgumentParser:
    """tensorflow_model_server's flags (same names and defaults) plus the local server's own."""
    parser = argparse.ArgumentParser(
        prog="mura serve", description="serve SavedModels over TF Serving's gRPC and REST APIs"
    )
    parser.add_argument(
        "--port", type=int, default=SERVING_GRPC_PORT, help=f"gRPC port (default {SERVING_GRPC_PORT})"
    )
    parser.add_argument(
        "--rest_api_port",
        type=int,
        default=SERVING_REST_PORT,
        help=f"REST port (default {SERVING_REST_PORT})",
    )
    parser.add_argument(
        "--model_config_file", help="ModelServerConfig text file (default: the one in MURA_MODEL_BASE_PATH)"
    )
    parser.add_argument(
        "--model_config_file_poll_wait_seconds",
        type=float,
        help="re-read the config every N s (0: never; default params.yaml serving)",
    )
    parser.add_argument(
        "--model_name", default="default", help="model name when serving one --model_base_path"
    )
    parser.add_argument("--model_base_path", help="folder of integer version folders of one model")
    parser.add_argument(
        "--file_system_poll_wait_seconds",
        type=float,
        help="look for new versions every N s (default params.yaml serving)",
    )
    parser.add_argument("--monitoring_config_file", help="MonitoringConfig text file (Prometheus metrics)")
    parser.add_argument(
        "--enable_batching",
        nargs="?",
        const="true",
        default="false",
        choices=("true", "false"),
        help="batch concurrent Predicts of one model (TF Serving's flag)",
    )
    parser.add_argument(
        "--batching_parameters_file", help="BatchingParameters text file (TF Serving's format)"
    )
    parser.add_argument("--bind_address", default="127.0.0.1", help="local server only: address to listen on")
    parser.add_argument(
        "--max_request_batch_size",
        type=int,
        help="local server only: most items in one request (default params.yaml serving.max_request_batch_size)",
    )
    parser.add_argument(
        "--local", action="store_true", help="use the local server even if tensorflow_model_server exists"
    )
    return parser


def resolve_options(args) -> dict:
    """The flag values with the embedded default's config file and params.yaml's poll intervals filled in."""
    from mura_core.config import load_config
    from mura_core.settings import get_settings
    from serving.errors import RepositoryError

    params = load_config().serving
    config_file = args.model_config_file
    if not config_file and not args.model_base_path:
        config_file = str(get_settings().models_config_path)  # the embedded default's repository
        if not Path(config_file).is_file():
            raise RepositoryError(
                f"{config_file} does not exist: publish a model first, or pass --model_config_file"
            )
    config_wait = args.model_config_file_poll_wait_seconds
    file_wait = args.file_system_poll_wait_seconds
    return {
        "port": args.port,
        "rest_api_port": args.rest_api_port,
        "model_config_file": config_file or "",
        "model_config_file_poll_wait_seconds": (
            params.model_config_file_poll_wait_seconds if config_wait is None else config_wait
        ),
        "model_name": args.model_name,
        "model_base_path": args.model_base_path or "",
        "file_system_poll_wait_seconds": params.file_system_poll_wait_seconds
        if file_wait is None
        else file_wait,
        "monitoring_config_file": args.monitoring_config_file or "",
        "enable_batching": args.enable_batching == "true",
        "batching_parameters_file": args.batching_parameters_file or "",
    }


def main(argv: list[str] | None = None) -> int:
    """Run tensorflow_model_server if installed, else the local server, until interrupted."""
    from mura_core.errors import MuraError
    from mura_core.logs import configure_logging

    args = build_parser().parse_args(argv)
    configure_logging()
    try:
        options = resolve_options(args)
    except MuraError as error:
        print(f"mura serve: {error}", file=sys.stderr)
        return 1
    binary = shutil.which("tensorflow_model_server")
    if binary and not args.local:
        flags = [
            f"--{name}={str(options[name]).lower() if isinstance(options[name], bool) else options[name]}"
            for name in TF_SERVING_FLAGS
            if options[name] not in ("", None, False)
        ]
        os.execv(binary, [binary, *flags])
    from serving.server import options_from_params, start_server

    try:
        handle = start_server(
            options_from_params(
                bind_address=args.bind_address, max_request_batch_size=args.max_request_batch_size, **options
            )
        )
    except MuraError as error:
        print(f"mura serve: {error}", file=sys.stderr)
        return 1
    logging.getLogger("serving.server").info(
        "gRPC on %s:%s, REST on http://%s:%s",
        args.bind_address,
        handle.grpc_port,
        args.bind_address,
        handle.rest_port,
    )
    print(
        f"mura serve: gRPC on {args.bind_address}:{handle.grpc_port}, "
        f"REST on http://{args.bind_address}:{handle.rest_port}",
        flush=True,
    )
    try:
        handle.wait()
    except KeyboardInterrupt:
        pass
    finally:
        handle.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
