"""`mura data validate`: build the manifest of a MURA tree, run the GX gate, print the summary."""

from __future__ import annotations

from pathlib import Path

from mura_core.settings import get_settings
from pipelines.cli.common import add_json_flag, emit


def _validate(args) -> int:
    from pipelines.validation import validate_data_dir

    data_root = Path(args.data) if args.data else get_settings().data_dir
    report = validate_data_dir(
        data_root,
        project_dir=Path(args.project) if args.project else None,
        workers=args.workers,
        raise_on_failure=False,
    )
    emit(report.to_xcom(), args.json, report.summary)
    return 0 if report.success else 1


def add_validate_command(data_subparsers) -> None:
    """Add `validate` to the `mura data` command group."""
    help_text = (
        "validate a MURA tree with the Great Expectations gate (exit 1 on failure) and build Data Docs"
    )
    parser = data_subparsers.add_parser("validate", help=help_text, description=help_text)
    parser.add_argument("--data", help="folder holding MURA-v1.1/ (default: data/)")
    parser.add_argument("--project", help="GX project folder (default: <repo>/great_expectations)")
    parser.add_argument(
        "--workers", type=int, help="image-check processes (default: params.yaml, else every core)"
    )
    add_json_flag(parser)
    parser.set_defaults(handler=_validate)
