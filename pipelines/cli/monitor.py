"""`mura monitor`: the monitor's checks by hand (the DAG mura_monitor runs the same function)."""

from __future__ import annotations

from pipelines.cli.common import add_json_flag, emit, json_stdout_guard


def _number(value, digits: int = 3, sign: str = "") -> str:
    return "n/a" if value is None or value != value else f"{value:{sign}.{digits}f}"


def summary(check) -> str:
    """A few lines a person reads: the verdict, each drifted feature, live kappa, the ask."""
    lines = [
        f"{check.model} champion v{check.champion_version} on data {check.data_md5}: "
        + (f"DRIFT in {', '.join(check.drifted_features)}" if check.drift else "no drift")
    ]
    for test in check.tests:
        if test["drifted"]:
            lines.append(
                f"  {test['feature']:<15} {test['test']}: effect {_number(test['effect'])}, "
                f"adjusted p {_number(test['adjusted_p'], 4)} "
                f"({test['reference']} -> {test['current']})"
            )
    live = check.live
    if live.champion:
        study = live.champion["study"]
        lines.append(
            f"  live            champion study kappa {_number(study['kappa'])} "
            f"[{_number(study.get('kappa_ci_low'), 2)}, {_number(study.get('kappa_ci_high'), 2)}] "
            f"on {live.studies} studies over gRPC"
        )
    if live.comparison:
        change = live.comparison
        low, high = change.kappa_change_ci
        lines.append(
            f"  shadow          challenger - champion kappa {_number(change.kappa_change, sign='+')} "
            f"[{_number(low, sign='+')}, {_number(high, sign='+')}]"
        )
    if live.error or live.skipped:
        lines.append(f"  live            {live.error or live.skipped}")
    lines.append(
        f"  retrain         {'REQUESTED' if check.retrain_needed else 'not requested'}"
        + (f": {'; '.join(check.reasons)}" if check.reasons else "")
    )
    if check.recommendation:
        lines.append(f"  recommendation  {check.recommendation}")
    lines.append(f"  report          {check.report} (MLflow experiment mura-monitoring)")
    return "\n".join(lines)


def _monitor(args) -> int:
    import dataclasses
    from pathlib import Path

    from mura_core.config import load_config
    from mura_core.settings import get_settings
    from pipelines.monitoring.check import run_monitor

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
