"""A monitor check as the few lines a person reads (`mura monitor`, `make demo`)."""

from __future__ import annotations


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
