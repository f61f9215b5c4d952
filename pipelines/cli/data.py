"""`mura data ...`: synthetic data, import, manifest, statistics, validation and DVC versioning."""

from __future__ import annotations

import argparse
from pathlib import Path

from mura_core.config import load_config
from mura_core.settings import get_settings
from pipelines.cli.common import add_json_flag, emit


def _data_dir(args) -> Path:
    return Path(args.data) if args.data else get_settings().data_dir


def _synth(args) -> int:
    from pipelines.data import generate_synthetic

    defaults = load_config().data.synth
    out = Path(args.out) if args.out else get_settings().data_dir
    summary = generate_synthetic(
        out,
        seed=defaults.seed if args.seed is None else args.seed,
        train_patients=defaults.train_patients if args.train_patients is None else args.train_patients,
        valid_patients=defaults.valid_patients if args.valid_patients is None else args.valid_patients,
        fault=args.fault,
        shift=args.shift,
    )
    summary["matches_data_dvc"] = _matches_pointer(out)
    emit(
        summary,
        args.json,
        f"wrote {summary['images']} images in {summary['studies']} studies "
        f"({summary['patients']} patients) to {summary['root']}"
        + (f" with fault {args.fault}" if args.fault else "")
        + (f" drawn with shift {args.shift}" if args.shift else "")
        + {True: "; identical to data.dvc", False: "; differs from data.dvc", None: ""}[
            summary["matches_data_dvc"]
        ],
    )
    return 0


def _matches_pointer(out: Path) -> bool | None:
    """Whether the folder now equals the committed data.dvc (None when out is not the versioned data/)."""
    from pipelines.data import folder_md5, pointer_md5

    settings = get_settings()
    if out.resolve() != (settings.repo_root / "data").resolve():
        return None
    pointer = pointer_md5(settings.repo_root)
    return None if pointer is None else folder_md5(out)[0] == pointer


def _import(args) -> int:
    from pipelines.data import import_release

    result = import_release(
        Path(args.source), _data_dir(args), force=args.force, repo_root=get_settings().repo_root
    )
    emit(result, args.json, f"imported {result['files']} files into {result['root']}")
    return 0


def _manifest(args) -> int:
    from pipelines.data import build_manifest, write_manifest

    result = build_manifest(_data_dir(args))
    out = Path(args.out) if args.out else get_settings().mura_home / "manifest.parquet"
    write_manifest(result.frame, out)
    counts = result.frame.groupby("split").size().to_dict()
    emit(
        {"path": str(out), "rows": len(result.frame), "splits": counts, "problems": result.problem_counts()},
        args.json,
        f"wrote {len(result.frame)} rows to {out} (splits {counts}; problems {result.problem_counts() or 'none'})",
    )
    return 0


def _stats(args) -> int:
    from pipelines.data import barplot_per_bodypart, build_manifest, summary_table

    result = build_manifest(_data_dir(args))
    table = summary_table(result.frame)
    plot = barplot_per_bodypart(
        result.frame,
        Path(args.plot)
        if args.plot
        else get_settings().mura_home / "reports" / "barplot_per_bodypart_train.png",
    )
    emit(
        {"table": table.to_dict(orient="records"), "plot": str(plot), "problems": result.problem_counts()},
        args.json,
        f"{table.to_string(index=False)}\n\nbar plot: {plot}",
    )
    return 0


def _dvc_result(result: dict, as_json: bool, verb: str) -> int:
    emit(
        result,
        as_json,
        f"{verb}: data {result['dvc_md5']} ({result['nfiles']} files), git rev {result['rev'][:12]}",
    )
    return 0


def _pull(args) -> int:
    from pipelines.data import dvc

    return _dvc_result(dvc.pull(rev=args.rev, remote=args.remote).to_xcom(), args.json, "pulled")


def _push(args) -> int:
    from pipelines.data import dvc
    from pipelines.stack import announce_data_version

    result = dvc.add_and_push(remote=args.remote)
    result["announced"] = announce_data_version(result)
    _dvc_result(result, args.json, "pushed")
    if not args.json:
        print(f"  {result['announced']}")
    return 0


def _status(args) -> int:
    from pipelines.data import dvc

    result = dvc.status(remote=args.remote)
    remote = "holds it" if result["remote_in_sync"] else f"lacks {result['missing_count']} file(s)"
    summary = (
        f"data {result['dvc_md5']}: workspace {'clean' if result['workspace_clean'] else 'modified'}, "
        f"remote {remote}, "
        f"data.dvc {'committed' if result['pointer_committed'] else 'not committed'}"
    )
    emit(result, args.json, "\n".join([summary, *(f"  - {line}" for line in result["advice"])]))
    return 0 if result["in_sync"] else 1


def _diff(args) -> int:
    from pipelines.data import diff_revisions

    result = diff_revisions(args.rev_a, args.rev_b, remote=args.remote)
    lines = [
        f"{result['a']['md5']} ({args.rev_a}) -> {result['b']['md5']} ({args.rev_b})",
        f"images: {len(result['added'])} added, {len(result['removed'])} removed, {len(result['changed'])} changed; "
        f"studies: {len(result['label_flipped'])} label(s) flipped, {len(result['studies_added'])} added, "
        f"{len(result['studies_removed'])} removed",
        *(f"  {group:<20} {counts}" for group, counts in result["counts"].items()),
        *(
            f"  flipped {item['study']} {item['from']} -> {item['to']}"
            for item in result["label_flipped"][:50]
        ),
    ]
    emit(result, args.json, "\n".join(lines))
    return 0


def _add(subparsers, name: str, handler, help_text: str) -> argparse.ArgumentParser:
    parser = subparsers.add_parser(name, help=help_text, description=help_text)
    add_json_flag(parser)
    parser.set_defaults(handler=handler)
    return parser


def _add_synth(commands) -> None:
    """`mura data synth`: its options, the named faults and drifts included."""
    synth = _add(commands, "synth", _synth, "write a synthetic MURA-v1.1 release (tree + 4 CSVs)")
    synth.add_argument("--out", help="folder to write MURA-v1.1/ into (default: data/)")
    synth.add_argument("--seed", type=int, help="random seed (default: params.yaml data.synth.seed)")
    synth.add_argument("--train-patients", type=int, help="patients in train (default: params.yaml)")
    synth.add_argument("--valid-patients", type=int, help="patients in valid (default: params.yaml)")
    from pipelines.data import FAULTS

    synth.add_argument("--fault", choices=FAULTS, help="inject one named data fault")
    from pipelines.data import SHIFTS

    synth.add_argument(
        "--shift",
        choices=tuple(SHIFTS),
        help="draw a drifted (still valid) release: exposure, scanner noise, resolution, study-type "
        "mix, label prevalence, or another hospital (other_site: darker exposures, a hand clinic's mix)",
    )


def _add_dvc_commands(commands) -> None:
    """`mura data pull`, `push`, `status` and `diff`: the data's versions in DVC."""
    pull = _add(commands, "pull", _pull, "fetch data/ from the DVC remote (optionally at a git revision)")
    pull.add_argument("--rev", help="git revision whose data.dvc to pull")
    pull.add_argument("--remote", help="DVC remote name (default: the configured default, 'local')")
    push = _add(
        commands,
        "push",
        _push,
        "dvc add data/ (updates data.dvc), push to the remote, and announce the new version to Airflow",
    )
    push.add_argument("--remote", help="DVC remote name (default: 'local')")
    status = _add(
        commands,
        "status",
        _status,
        "whether data/ matches data.dvc, data.dvc is committed and the remote holds it",
    )
    status.add_argument("--remote", help="DVC remote name (default: 'local')")
    diff = _add(
        commands, "diff", _diff, "images added/removed/changed and labels flipped between two data versions"
    )
    diff.add_argument("rev_a", metavar="REV_A", help="git revision of data.dvc (commit, tag, branch)")
    diff.add_argument("rev_b", metavar="REV_B", help="the revision to compare REV_A with")
    diff.add_argument("--remote", help="DVC remote name (default: 'local')")


def register(subparsers) -> None:
    """Add the `data` command group."""
    data = subparsers.add_parser("data", help="MURA data: synth, import, manifest, stats, validate, DVC")
    commands = data.add_subparsers(dest="data_command", required=True, metavar="COMMAND")
    _add_synth(commands)
    imported = _add(commands, "import", _import, "import a MURA-v1.1 folder or the official zip into data/")
    imported.add_argument("source", metavar="SRC", help="a MURA-v1.1 folder or the official MURA-v1.1.zip")
    imported.add_argument("--data", help="target data folder (default: data/)")
    imported.add_argument(
        "--force",
        action="store_true",
        help="replace data no remote holds (it is pushed first, so it stays pullable)",
    )
    manifest = _add(commands, "manifest", _manifest, "build the manifest parquet of a MURA tree")
    manifest.add_argument("--data", help="folder holding MURA-v1.1/ (default: data/)")
    manifest.add_argument("--out", help="parquet path (default: $MURA_HOME/manifest.parquet)")
    stats = _add(
        commands, "stats", _stats, "images/studies/patients/abnormal ratio per part and split + bar plot"
    )
    stats.add_argument("--data", help="folder holding MURA-v1.1/ (default: data/)")
    stats.add_argument("--plot", help="where to write the bar plot PNG")
    _add_dvc_commands(commands)
    try:
        from pipelines.cli.data_validate import add_validate_command
    except ModuleNotFoundError:
        return
    add_validate_command(commands)
