"""`mura serve` (flags of tensorflow_model_server), `mura predict` and `mura export RUN_ID`."""

from __future__ import annotations

import os
import sys
from pathlib import Path

from mura_core.contracts import DEFAULT_MODEL
from mura_core.errors import DataError
from pipelines.cli.common import add_json_flag, add_write_back_flag, emit

IN_THE_STUDY = Path("<in the study>")  # `--explain` without OUT_DIR: with --pacs, overlays go to the PACS


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
        "predict",
        help="ask the serving endpoint about an image, a study, or each study under a patient or "
        "study-type folder",
    )
    predict.add_argument(
        "path",
        nargs="?",
        metavar="IMAGE_OR_FOLDER",
        type=Path,
        help="a PNG/JPEG image, a study folder, or a patient or study-type folder (each study under it); "
        "a DICOM file or a folder of them (one answer per StudyInstanceUID, the study type from "
        "BodyPartExamined)",
    )
    predict.add_argument(
        "--pacs",
        metavar="STUDY_UID",
        help="a study of the PACS (MURA_PACS_URL), retrieved over DICOMweb (WADO-RS), instead of a path",
    )
    add_write_back_flag(predict, "with --pacs: ")
    predict.add_argument(
        "--model", default=DEFAULT_MODEL, help=f"served model name (default {DEFAULT_MODEL})"
    )
    choice = predict.add_mutually_exclusive_group()
    choice.add_argument("--label", help="version label, e.g. stable or canary")
    choice.add_argument("--version", type=int, help="model version number")
    predict.add_argument("--rest", action="store_true", help="use the REST API instead of gRPC")
    predict.add_argument("--target", help="host:port (default MURA_SERVING_GRPC / MURA_SERVING_REST)")
    predict.add_argument(
        "--explain",
        metavar="OUT_DIR",
        type=Path,
        nargs="?",
        const=IN_THE_STUDY,
        help="also write one Grad-CAM++ overlay PNG per image into OUT_DIR (the model's explain signature); "
        "with --pacs and no OUT_DIR: store them in the study as a Secondary Capture series",
    )
    add_json_flag(predict)
    predict.set_defaults(handler=handle_predict)

    export = subparsers.add_parser("export", help="export a training run's model as a TF Serving SavedModel")
    export.add_argument("run_id", metavar="RUN_ID", help="MLflow run id of a training run (`mura runs`)")
    export.add_argument("--out", type=Path, help="also keep the SavedModel in this new folder")
    export.add_argument("--samples", type=Path, help="folder of sample images for the warm-up file")
    add_json_flag(export)
    export.set_defaults(handler=handle_export)


def exec_server(flags: list[str]) -> int:
    """Become the server process (`python -m serving.server`, which runs tensorflow_model_server where
    installed); its own parser checks the flags, so `mura serve --help` lists them."""
    os.execv(sys.executable, [sys.executable, "-m", "serving.server", *flags])
    return 1  # not reached: execv replaces this process


def _sentence(result: dict, model: str, what: str) -> str:
    """The seed project's sentence: "X-ray of XR_WRIST is abnormal." (14-class: "XR_WRIST is abnormal.")."""
    part = result.get("body_part")
    if "class_probabilities" in result or model.endswith("14cls"):
        return f"{part or 'This ' + what} is {result['label']}."
    return f"X-ray of {part} is {result['label']}." if part else f"This {what} is {result['label']}."


def _answered_by(args, version: int | None) -> str:
    label = f", label {args.label}" if args.label else ""
    return f"answered by {args.model} version {version if version is not None else '?'}{label}"


def _served_version(client, args) -> int | None:
    """The version REST answered with (its :predict reply does not say): the labelled or newest available."""
    states = client.model_status(args.model, args.version, args.label)
    available = [entry["version"] for entry in states if entry["state"] == "AVAILABLE"]
    return max(available) if available else None


def _write_overlays(client, args, results: list[dict], what: str, version, encoded=None) -> None:
    """One overlay PNG per image under args.explain, named after its study and file; paths recorded.
    `encoded`: the images' bytes by path where they are not the files themselves (DICOM)."""
    from serving import overlay_png

    args.explain.mkdir(parents=True, exist_ok=True)
    written = 0
    for result in results:
        items = result.get("images") or [result]
        paths = [Path(item["path"]) for item in items]
        images = [encoded[str(path)] if encoded else path.read_bytes() for path in paths]
        explained = client.explain_images(images, args.model, args.version, args.label)
        for item, path, image, explanation in zip(items, paths, images, explained, strict=True):
            name = (
                "_".join(part for part in (*path.parent.parts[-2:], path.stem) if part)
                if what == "study"
                else path.stem
            )
            title = (
                f"{path.parent.name}/{path.name}: {result['label']} ({what} probability "
                f"{result['abnormal_probability']:.3f}; this image {explanation['abnormal_probability']:.3f})\n"
                f"{args.model} version {version if version is not None else '?'}"
                + (f", label {args.label}" if args.label else "")
            )
            target = args.explain / f"{name}.png"
            target.write_bytes(overlay_png(image, explanation["heatmap"], title))
            item["overlay"] = str(target)
            written += 1
    print(f"wrote {written} Grad-CAM++ overlay(s) to {args.explain}", file=sys.stderr)


def _predict_dicom(args, studies: list, refused: list[dict]) -> int:
    """DICOM studies: one answer per study (by StudyInstanceUID), its type from BodyPartExamined; a study
    the model cannot be asked about is refused with its reason, never guessed."""
    from serving import ServingClient

    with ServingClient(args.target, protocol="rest" if args.rest else "grpc") as client:
        results = [
            client.predict_encoded_study(
                study.images,
                study.names,
                study.study_uid,
                study.study_type,
                args.model,
                args.version,
                args.label,
            )
            for study in studies
        ]
        version = results[0].get("version") if results else None
        if results and version is None:
            version = _served_version(client, args)
        if args.explain and results:
            encoded = {
                name: image
                for study in studies
                for name, image in zip(study.names, study.images, strict=True)
            }
            _write_overlays(client, args, results, "study", version, encoded)
    for result in results:
        result.update(
            sentence=_sentence(result, args.model, "study"), version=version, version_label=args.label
        )
    lines = [
        f"study {result['study']}: {result['sentence']} ({len(result['images'])} image(s): abnormal probability "
        f"{result['abnormal_probability']:.3f}, threshold {result['threshold']:.3f})"
        for result in results
    ]
    lines += [f"refused {item['study']}: {item['reason']}" for item in refused]
    if results:
        lines.append(
            f"{len(results)} stud{'y' if len(results) == 1 else 'ies'} answered, {len(refused)} refused; {_answered_by(args, version)}"
        )
    document = {
        "model": args.model,
        "version": version,
        "version_label": args.label,
        "studies": results,
        "refused": refused,
    }
    emit(document, args.json, "\n".join(lines))
    return 1 if refused else 0


def _predict_pacs(args) -> int:
    """A study of the PACS: retrieved, answered by the champion, the answer stored back in the study as
    a DICOM SR (once per model version) unless --no-write-back."""
    from mura_core.settings import get_settings
    from pipelines.dicom import limit_decode_memory
    from pipelines.pacs import PacsClient, answer_study
    from serving import ServingClient

    if args.path is not None:
        raise DataError("give a path or --pacs STUDY_UID, not both")
    if args.label or args.version is not None:
        raise DataError("--pacs asks the champion of --model; --label and --version do not apply")
    if args.explain not in (None, IN_THE_STUDY):
        raise DataError("with --pacs, --explain takes no OUT_DIR: the overlays are stored in the study")
    if args.explain and not args.write_back:
        raise DataError(
            "--explain with --pacs stores overlays in the study; it cannot go with --no-write-back"
        )
    settings = get_settings()
    limit_decode_memory()
    with ServingClient(args.target, protocol="rest" if args.rest else "grpc") as serving:
        result = answer_study(
            PacsClient(settings), serving, args.pacs, args.model, args.write_back, overlays=bool(args.explain)
        )
    if result["status"] == "refused":
        emit(result, args.json, f"refused study {result['study']}: {result['reason']}")
        return 1
    stored = {
        "answered": (
            " The report is stored in the study (DICOM SR"
            + (", and one Grad-CAM++ Secondary Capture per image)." if args.explain else ").")
        )
        if args.write_back
        else "",
        "already": " The study holds this version's report already.",
    }[result["status"]]
    text = (
        f"X-ray of {result['body_part']} is {result['label']}. (study {result['study']}, {result['images']} "
        f"image(s): abnormal probability {result['abnormal_probability']:.3f}, threshold "
        f"{result['threshold']:.3f}; answered by {result['model']} version {result['version']}){stored}"
    )
    emit(result, args.json, text)
    return 0


def handle_predict(args) -> int:
    """The seed-style sentence for an image, a study, or each study under a patient/study-type folder;
    DICOM files and folders of them by study."""
    from pipelines.dicom import dicom_files, limit_decode_memory, load_studies
    from serving import ServingClient, body_part_from_path, study_folders

    if args.pacs:
        return _predict_pacs(args)
    if args.path is None:
        hint = f" (--explain took {args.explain} as its OUT_DIR: put the path first)" if args.explain else ""
        raise DataError("give an image, a study folder or DICOM files, or --pacs STUDY_UID" + hint)
    if args.explain == IN_THE_STUDY:
        raise DataError("--explain needs OUT_DIR for files (only a --pacs study keeps its overlays itself)")
    if not args.path.exists():
        raise DataError(f"{args.path} does not exist: pass a PNG/JPEG image, a DICOM file or a study folder")
    dicom = dicom_files(args.path)
    if dicom:
        limit_decode_memory()
        return _predict_dicom(args, *load_studies(dicom))
    with ServingClient(args.target, protocol="rest" if args.rest else "grpc") as client:
        if args.path.is_file():
            results = [client.predict_image(args.path, args.model, args.version, args.label)]
            results[0].setdefault("body_part", body_part_from_path(args.path))
            what = "image"
        else:
            what = "study"
            results = [
                client.predict_study(folder, args.model, args.version, args.label)
                for folder in study_folders(args.path)
            ]
        version = results[0].get("version")
        if version is None:
            version = _served_version(client, args)
        if args.explain:
            _write_overlays(client, args, results, what, version)
    for result in results:
        result.update(sentence=_sentence(result, args.model, what), version=version, version_label=args.label)
    return _emit_answers(args, results, what, version)


def _emit_answers(args, results: list[dict], what: str, version) -> int:
    """One image's or study's answer as a sentence, or a line per study and a count; the exit code."""
    by = _answered_by(args, version)
    if len(results) == 1:
        result = results[0]
        scope = (
            "this image alone, not its whole study"
            if what == "image"
            else f"study of {len(result['images'])} image{'s' if len(result['images']) > 1 else ''}"
        )
        threshold = f", threshold {result['threshold']:.3f}" if "threshold" in result else ""
        text = (
            f"{result['sentence']} ({scope}: abnormal probability {result['abnormal_probability']:.3f}"
            f"{threshold}; {by})"
        )
        emit(result, args.json, text)
        return 0
    abnormal = sum(result["label"] == "abnormal" for result in results)
    lines = [
        f"{Path(result['study']).relative_to(args.path)}: {result['sentence']} "
        f"(abnormal probability {result['abnormal_probability']:.3f})"
        for result in results
    ]
    summary = f"{len(results)} studies: {abnormal} abnormal, {len(results) - abnormal} normal; {by}"
    emit(
        {"model": args.model, "version": version, "version_label": args.label, "studies": results},
        args.json,
        "\n".join([*lines, summary]),
    )
    return 0


def handle_export(args) -> int:
    """Export RUN_ID's model and log it under the run's tf_serving/ artifacts."""
    from pipelines.export import export_run
    from serving import study_images

    samples = None
    if args.samples:
        samples = [path.read_bytes() for path in study_images(args.samples)]
    result = export_run(args.run_id, out_dir=args.out, sample_images=samples)
    emit(
        result.to_xcom(),
        args.json,
        f"exported {result.model_name} of run {args.run_id} to its tf_serving/ artifacts",
    )
    return 0
