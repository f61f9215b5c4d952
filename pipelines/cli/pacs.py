"""`mura pacs ...`: the research PACS: synthetic DICOM studies to seed it with, and its study list."""

from __future__ import annotations

from pathlib import Path

from mura_core.contracts import DEFAULT_MODEL
from mura_core.settings import get_settings
from pipelines.cli.common import add_json_flag, add_write_back_flag, emit, printable
from pipelines.cli.parsing import positive_int


def _seed(args) -> int:
    from pipelines.dicom import LABELS_FILE, write_studies

    settings = get_settings()
    data = Path(args.data) if args.data else settings.data_dir
    out = Path(args.out) if args.out else settings.mura_home / "pacs" / "seed"
    try:
        written = write_studies(data, out, args.split, args.studies, args.seed)
    except FileNotFoundError as error:
        from mura_core.errors import DataError

        raise DataError(
            f"{error}: pass --data (the folder holding MURA-v1.1/) or run `mura data synth`"
        ) from None
    text = (
        f"wrote {written['images']} DICOM images in {written['studies']} studies to {out} "
        f"({written['unknown_body_part']} of a body part the model does not know); labels by "
        f"StudyInstanceUID in {out / LABELS_FILE}"
    )
    if args.push:
        from pipelines.pacs import PacsClient, push_folder

        pushed = push_folder(PacsClient(settings), out)
        written["pushed"] = pushed
        text += (
            f"; stored {pushed['instances']} instances of {pushed['studies']} studies in {settings.pacs_url}"
        )
    emit(written, args.json, text)
    return 0


def _push(args) -> int:
    from pipelines.pacs import PacsClient, push_folder

    settings = get_settings()
    pushed = push_folder(PacsClient(settings), Path(args.folder))
    lines = [f"stored {pushed['instances']} instances of {pushed['studies']} studies in {settings.pacs_url}"]
    if pushed["skipped"]:
        lines.append(
            f"skipped {len(pushed['skipped'])} files (not readable DICOM, or no study/instance UID):"
        )
        lines += [f"  {printable(name)}" for name in pushed["skipped"]]
    lines += [f"refused study {uid}: {reason}" for uid, reason in pushed["refused"].items()]
    if not pushed["instances"] and not pushed["refused"] and not pushed["skipped"]:
        lines.append(f"no DICOM file under {printable(args.folder)}: nothing was stored")
    emit(pushed, args.json, "\n".join(lines))
    return 1 if pushed["refused"] or not pushed["instances"] else 0  # something the user meant was not stored


def _studies(args) -> int:
    from pipelines.pacs import PacsClient

    settings = get_settings()
    found = PacsClient(settings).studies(args.date, args.body_part, args.accession, args.limit)
    lines = [f"{'STUDY INSTANCE UID':66} {'DATE':8}  {'MOD':5} {'IMAGES':>6}  BODY PART"]
    lines += [
        f"{study.study_uid:66} {study.date:8}  {study.modalities:5} {study.images:6d}  {study.body_parts or '-'}"
        for study in found
    ]
    lines.append(f"{len(found)} stud{'y' if len(found) == 1 else 'ies'} in {settings.pacs_url}")
    emit([study.to_dict() for study in found], args.json, "\n".join(lines))
    return 0


def _predict(args) -> int:
    from pipelines.cli.serve import IN_THE_STUDY, _predict_pacs

    args.pacs, args.path, args.label, args.version = args.study_uid, None, None, None
    args.explain = IN_THE_STUDY if args.explain else None
    return _predict_pacs(args)


def register(subparsers) -> None:
    """Add the `pacs` command group."""
    pacs = subparsers.add_parser(
        "pacs", help="the research PACS: store your DICOM studies or synthetic ones, list them, answer one"
    )
    commands = pacs.add_subparsers(dest="pacs_command", required=True, metavar="COMMAND")
    text = (
        "write synthetic DICOM studies (CR/DX, 12-bit, windows and VOI LUTs, MONOCHROME1/2, lossless "
        "compressed syntaxes, made-up patients) from a MURA-layout release, labels beside them"
    )
    seed = commands.add_parser("seed", help=text, description=text)
    seed.add_argument("--data", help="folder holding MURA-v1.1/ (default: data/)")
    seed.add_argument("--out", help="where the studies go (default: $MURA_HOME/pacs/seed)")
    seed.add_argument("--split", choices=("valid", "train"), default="valid", help="which split's studies")
    seed.add_argument("--studies", type=positive_int, help="at most this many studies (default: all)")
    seed.add_argument("--seed", type=int, default=7, help="random seed of the made-up identities")
    seed.add_argument(
        "--push", action="store_true", help="also store them in the PACS (STOW-RS to MURA_PACS_URL)"
    )
    add_json_flag(seed)
    seed.set_defaults(handler=_seed)
    text = (
        "store your own DICOM files in the research PACS (STOW-RS, one request per study; files that are "
        "not DICOM are skipped and named)"
    )
    push = commands.add_parser("push", help=text, description=text)
    push.add_argument("folder", metavar="PATH", help="a DICOM file, or a folder searched for DICOM files")
    add_json_flag(push)
    push.set_defaults(handler=_push)
    text = "list the PACS' studies (QIDO-RS): UID, date, modality, images, body part; no patient identifier"
    studies = commands.add_parser("studies", help=text, description=text)
    studies.add_argument("--date", help="StudyDate: YYYYMMDD or a range YYYYMMDD-YYYYMMDD")
    studies.add_argument("--body-part", help="BodyPartExamined of a series, e.g. WRIST")
    studies.add_argument("--accession", help="AccessionNumber (sent as a filter, never printed)")
    studies.add_argument("--limit", type=positive_int, help="at most this many (default: every study)")
    add_json_flag(studies)
    studies.set_defaults(handler=_studies)
    text = (
        "answer a study of the PACS with the served champion and store the answer in it as a DICOM SR "
        "(once per model version); the same as `mura predict --pacs STUDY_UID`"
    )
    predict = commands.add_parser("predict", help=text, description=text)
    predict.add_argument("study_uid", metavar="STUDY_UID", help="StudyInstanceUID (`mura pacs studies`)")
    predict.add_argument(
        "--model", default=DEFAULT_MODEL, help=f"served model name (default {DEFAULT_MODEL})"
    )
    add_write_back_flag(predict, "")
    predict.add_argument(
        "--explain",
        action="store_true",
        help="also store one Grad-CAM++ overlay per image in the study (a Secondary Capture series)",
    )
    predict.add_argument("--rest", action="store_true", help="use the REST API instead of gRPC")
    predict.add_argument("--target", help="host:port (default MURA_SERVING_GRPC / MURA_SERVING_REST)")
    add_json_flag(predict)
    predict.set_defaults(handler=_predict)
