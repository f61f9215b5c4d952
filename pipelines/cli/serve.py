"""`mura serve` (flags of tensorflow_model_server), `mura predict` and `mura export RUN_ID`."""

from __future__ import annotations

import logging
import os
import shutil
from pathlib import Path

from pipelines.cli.common import add_json_flag, emit
from pipelines.errors import DataError

# Flags handed unchanged to tensorflow_model_server when it is installed.
TF_SERVING_FLAGS = (
    "port", "rest_api_port", "model_config_file", "model_config_file_poll_wait_seconds", "model_name",
    "model_base_path", "file_system_poll_wait_seconds", "monitoring_config_file",
)  # fmt: skip


def register(subparsers) -> None:
    """Add the serve, predict and export commands."""
    serve = subparsers.add_parser("serve", help="serve SavedModels over TF Serving's gRPC and REST APIs")
    serve.add_argument("--port", type=int, default=8500, help="gRPC port (default 8500)")
    serve.add_argument("--rest_api_port", type=int, default=8501, help="REST port (default 8501)")
    serve.add_argument(
        "--model_config_file", help="ModelServerConfig text file (default: the one in MURA_MODEL_BASE_PATH)"
    )
    serve.add_argument(
        "--model_config_file_poll_wait_seconds", type=float, help="re-read the config every N s (0: never)"
    )
    serve.add_argument(
        "--model_name", default="default", help="model name when serving one --model_base_path"
    )
    serve.add_argument("--model_base_path", help="folder of integer version folders of one model")
    serve.add_argument("--file_system_poll_wait_seconds", type=float, help="look for new versions every N s")
    serve.add_argument("--monitoring_config_file", help="MonitoringConfig text file (Prometheus metrics)")
    serve.add_argument("--bind_address", default="127.0.0.1", help="local server only: address to listen on")
    serve.add_argument(
        "--local", action="store_true", help="use the local server even if tensorflow_model_server exists"
    )
    serve.set_defaults(handler=handle_serve)

    predict = subparsers.add_parser(
        "predict", help="ask the serving endpoint about an image or a study folder"
    )
    predict.add_argument("path", metavar="IMAGE_OR_STUDY_DIR", type=Path)
    predict.add_argument("--model", default="mura_binary", help="served model name (default mura_binary)")
    choice = predict.add_mutually_exclusive_group()
    choice.add_argument("--label", help="version label, e.g. stable or canary")
    choice.add_argument("--version", type=int, help="model version number")
    predict.add_argument("--rest", action="store_true", help="use the REST API instead of gRPC")
    predict.add_argument("--target", help="host:port (default MURA_SERVING_GRPC / MURA_SERVING_REST)")
    add_json_flag(predict)
    predict.set_defaults(handler=handle_predict)

    export = subparsers.add_parser("export", help="export a training run's model as a TF Serving SavedModel")
    export.add_argument("run_id", metavar="RUN_ID")
    export.add_argument("--out", type=Path, help="also keep the SavedModel in this new folder")
    export.add_argument("--samples", type=Path, help="folder of sample images for the warm-up file")
    add_json_flag(export)
    export.set_defaults(handler=handle_export)


def _serve_options(args) -> dict:
    from pipelines.settings import get_settings, params_section

    section = params_section("serving")
    config_file = args.model_config_file
    if not config_file and not args.model_base_path:
        config_file = str(get_settings().models_config_path)  # the embedded default's repository
        if not Path(config_file).is_file():
            raise DataError(
                f"{config_file} does not exist: publish a model first, or pass --model_config_file"
            )
    config_wait = args.model_config_file_poll_wait_seconds
    file_wait = args.file_system_poll_wait_seconds
    return {
        "port": args.port,
        "rest_api_port": args.rest_api_port,
        "model_config_file": config_file or "",
        "model_config_file_poll_wait_seconds": section["model_config_file_poll_wait_seconds"]
        if config_wait is None
        else config_wait,
        "model_name": args.model_name,
        "model_base_path": args.model_base_path or "",
        "file_system_poll_wait_seconds": section["file_system_poll_wait_seconds"]
        if file_wait is None
        else file_wait,
        "monitoring_config_file": args.monitoring_config_file or "",
    }


def handle_serve(args) -> int:
    """Run tensorflow_model_server if installed, else the local server, until interrupted."""
    options = _serve_options(args)
    binary = shutil.which("tensorflow_model_server")
    if binary and not args.local:
        flags = [f"--{name}={options[name]}" for name in TF_SERVING_FLAGS if options[name] not in ("", None)]
        os.execv(binary, [binary, *flags])
    from serving.server import options_from_params, start_server

    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    handle = start_server(options_from_params(bind_address=args.bind_address, **options))
    print(
        f"mura serve: gRPC on {args.bind_address}:{handle.grpc_port}, REST on http://{args.bind_address}:{handle.rest_port}",
        flush=True,
    )
    try:
        handle.wait()
    except KeyboardInterrupt:
        pass
    finally:
        handle.stop()
    return 0


def handle_predict(args) -> int:
    """Print the seed-style sentence and the probability for an image or a study folder."""
    from serving.client import ServingClient, body_part_from_path

    if not args.path.exists():
        raise DataError(f"{args.path} does not exist: pass a PNG/JPEG image or a study folder")
    with ServingClient(args.target, protocol="rest" if args.rest else "grpc") as client:
        if args.path.is_dir():
            result = client.predict_study(args.path, args.model, args.version, args.label)
        else:
            result = client.predict_image(args.path, args.model, args.version, args.label)
            result.setdefault("body_part", body_part_from_path(args.path))
    part = result.get("body_part") or "the study"
    if "class_probabilities" in result or args.model.endswith("14cls"):
        sentence = f"{part} is {result['label']}."
    else:
        sentence = f"X-ray of {part} is {result['label']}."
    result["sentence"] = sentence
    version = f" v{result['version']}" if result.get("version") else ""
    emit(
        result,
        args.json,
        f"{sentence} (abnormal probability {result['abnormal_probability']:.3f}, {args.model}{version})",
    )
    return 0


def handle_export(args) -> int:
    """Export RUN_ID's model and log it under the run's tf_serving/ artifacts."""
    from pipelines.export import export_run
    from serving.client import study_images

    samples = None
    if args.samples:
        samples = [path.read_bytes() for path in study_images(args.samples)]
    result = export_run(args.run_id, out_dir=args.out, sample_images=samples)
    emit(
        result,
        args.json,
        f"exported {result['model_name']} of run {args.run_id} to its tf_serving/ artifacts",
    )
    return 0
