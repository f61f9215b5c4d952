"""`mura monitor`: the monitor's checks by hand (the DAG mura_monitor runs the same function)."""

from __future__ import annotations

from pipelines.cli.common import add_json_flag, emit, json_stdout_guard
from pipelines.monitoring import summary


def _monitor(args) -> int:
    import dataclasses
    from pathlib import Path

    from mura_core.config import load_config
    from mura_core.settings import get_settings
    from pipelines.monitoring import run_monitor

    params = load_config().monitor
    if args.model:
        params = dataclasses.replace(params, model=args.model)
    with json_stdout_guard(args):
        check = run_monitor(Path(args.data) if args.data else get_settings().data_dir, params=params)
    emit(check.to_xcom(), args.json, summary(check))
    return 0


def register(subparsers) -> None:
    """Add `mura monitor`."""
    parser = subparsers.add_parser(
        "monitor",
        help="check a release for drift against the champion's training data and score it live "
        "(champion, challenger in shadow); logged to MLflow experiment mura-monitoring",
    )
    parser.add_argument("--data", help="folder holding MURA-v1.1/ (default: data/)")
    parser.add_argument("--model", help="served model to watch (default: params.yaml monitor.model)")
    add_json_flag(parser)
    parser.set_defaults(handler=_monitor)
