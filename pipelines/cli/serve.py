"""`mura serve` (flags of tensorflow_model_server), `mura predict` and `mura export RUN_ID`."""

from __future__ import annotations

import os
import sys
from pathlib import Path

from pipelines.cli.common import add_json_flag, emit
from pipelines.errors import DataError


def register(subparsers) -> None:
    """Add the serve, predict and export commands."""
    serve = subparsers.add_parser(
        "serve",
        help="serve SavedModels over TF Serving's gRPC and REST APIs (flags of tensorflow_model_server)",
        add_help=False,
    )
    serve.add_argument("flags", nargs="*", help="see `mura serve --help`")
    serve.set_defaults(handler=lambda args: exec_server(args.flags))

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


def exec_server(flags: list[str]) -> int:
    """Become the server process (`python -m serving.server`, which runs tensorflow_model_server where
    installed); its own parser checks the flags, so `mura serve --help` lists them."""
    os.execv(sys.executable, [sys.executable, "-m", "serving.server", *flags])
    return 1  # not reached: execv replaces this process


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
