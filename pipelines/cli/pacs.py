"""`mura pacs ...`: the research PACS side: synthetic DICOM studies to seed it with."""

from __future__ import annotations

from pathlib import Path

from pipelines.cli.common import add_json_flag, emit
from pipelines.cli.parsing import positive_int
from pipelines.settings import get_settings


def _seed(args) -> int:
    from pipelines.dicom.synth import LABELS_FILE, write_studies

    settings = get_settings()
    data = Path(args.data) if args.data else settings.data_dir
    out = Path(args.out) if args.out else settings.mura_home / "pacs" / "seed"
    try:
        written = write_studies(data, out, args.split, args.studies, args.seed)
    except FileNotFoundError as error:
        from pipelines.errors import DataError

        raise DataError(
            f"{error}: pass --data (the folder holding MURA-v1.1/) or run `mura data synth`"
        ) from None
    emit(
        written,
        args.json,
        f"wrote {written['images']} DICOM images in {written['studies']} studies to {out} "
        f"({written['unknown_body_part']} of a body part the model does not know); labels by "
        f"StudyInstanceUID in {out / LABELS_FILE}",
    )
    return 0


def register(subparsers) -> None:
    """Add the `pacs` command group."""
    pacs = subparsers.add_parser("pacs", help="the research PACS: synthetic DICOM studies")
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
    add_json_flag(seed)
    seed.set_defaults(handler=_seed)
