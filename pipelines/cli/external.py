"""`mura external ...`: external validation on a site's own studies: import them (de-identified,
gated, versioned), then measure a registered version on them."""

from __future__ import annotations

from pathlib import Path

from mura_core.contracts import DEFAULT_CHAMPION
from pipelines.cli.common import add_json_flag, emit, json_stdout_guard


def _import(args) -> int:
    from pipelines.external import import_site, import_summary_lines

    if (args.source is None) == (args.pacs is None):
        from mura_core.errors import ConfigError

        raise ConfigError(
            "give the studies either as DICOM_DIR or with --pacs [QUERY], not both and not neither"
        )
    with json_stdout_guard(args):
        result = import_site(
            args.site,
            Path(args.labels),
            folder=Path(args.source) if args.source else None,
            pacs_query=args.pacs,
            push=args.dvc_push,
        )
    emit(result.to_dict(), args.json, "\n".join(import_summary_lines(result)))
    return 0 if result.gate.get("success") else 1


def _validate(args) -> int:
    from pipelines.evaluation import json_safe
    from pipelines.external import validate_site, validation_summary_lines

    with json_stdout_guard(args):
        result = validate_site(args.site, args.model, args.recalibrate, args.register)
    emit(json_safe(result), args.json, "\n".join(validation_summary_lines(result)))  # NaN is not JSON: null
    return 0


def register(subparsers) -> None:
    """Add the `external` command group."""
    external = subparsers.add_parser(
        "external", help="external validation: a site's own DICOM studies, de-identified, versioned, measured"
    )
    commands = external.add_subparsers(dest="external_command", required=True, metavar="COMMAND")
    text = (
        "import a site's labelled studies (a DICOM folder, or the PACS) de-identified (DICOM PS3.15 basic "
        "profile) into external/SITE/ as a MURA-layout release, check it with the data gate and version it "
        "with DVC; the key to the pseudonyms stays in $MURA_HOME/secrets (0600). Exit 1 when the gate fails"
    )
    intake = commands.add_parser("import", help=text, description=text)
    intake.add_argument("source", nargs="?", metavar="DICOM_DIR", help="folder of the site's DICOM files")
    intake.add_argument(
        "--pacs",
        nargs="?",
        const="labelled",
        metavar="QUERY",
        help="retrieve the studies from the PACS (MURA_PACS_URL): without QUERY the labels file's studies; "
        "or filters date=YYYYMMDD[-YYYYMMDD],body-part=WRIST",
    )
    intake.add_argument(
        "--labels", required=True, help="CSV with a header: StudyInstanceUID,label (0/1)[,study_type]"
    )
    intake.add_argument("--site", required=True, help="the site's name: lower-case letters, digits, - and _")
    intake.add_argument(
        "--no-push", dest="dvc_push", action="store_false", help="do not `dvc add` and push the release"
    )
    add_json_flag(intake)
    intake.set_defaults(handler=_import)
    text = (
        "measure a registered version on a site's release: study kappa and AUROC with 95 %% intervals per "
        "study type beside its MURA valid numbers, sensitivity and specificity, calibration, drift against "
        "its training images; an MLflow run in experiment mura-external with an HTML report, listed on the "
        "version's model card"
    )
    validate = commands.add_parser("validate", help=text, description=text.replace("%%", "%"))
    validate.add_argument("--site", required=True, help="a site imported with `mura external import`")
    validate.add_argument(
        "--model",
        default=DEFAULT_CHAMPION,
        help=f"MODEL, MODEL@alias or MODEL/VERSION (default {DEFAULT_CHAMPION})",
    )
    validate.add_argument(
        "--recalibrate",
        action="store_true",
        help="also fit the site's own operating point on part of its patients and report the rest before and after",
    )
    validate.add_argument(
        "--register",
        action="store_true",
        help="with --recalibrate: register the site's operating point as a new version of the same weights "
        "(tagged with the site; no alias, not gated: it never replaces the original by itself)",
    )
    add_json_flag(validate)
    validate.set_defaults(handler=_validate)
