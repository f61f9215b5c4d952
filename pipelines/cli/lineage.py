"""`mura lineage MODEL[@alias|/version]` and `mura lineage --data REV`: where a model comes from."""

from __future__ import annotations

from mura_core.errors import ConfigError
from pipelines.cli.common import add_json_flag, emit


def _text(report: dict) -> str:
    data, training, evaluation, gate, serving = (
        report["data"],
        report["training"],
        report["evaluation"],
        report["gate"],
        report["serving"],
    )
    lines = [
        f"{report['model']} v{report['version']}  aliases: {', '.join(report['aliases']) or 'none'}",
        f"  data        md5 {data['md5']} (versioned: {data['versioned']}); data.dvc commit {data['data_dvc_commit']}",
        f"              manifest {data['manifest_hash']}; root {data['root']}",
        f"  validation  success {report['validation']['success']}; Data Docs {report['validation']['docs']}",
        f"  airflow     {report['airflow']['dag_run_id'] or 'not from a DAG run'}"
        + (f"  {report['airflow']['url']}" if report["airflow"]["url"] else ""),
        f"  training    run {training['run_id']}: {training['arch']} {training['task']}, preset {training['preset']} "
        f"with {training['overrides'] or 'no overrides'}; "
        f"code {str(training['code_sha'])[:12]} (dirty: {training['code_dirty']})",
        f"  evaluation  study kappa {_number(evaluation['study_kappa'])}{_interval(evaluation.get('study_kappa_ci'))}, "
        f"AUROC {_number(evaluation['study_auroc'])}{_interval(evaluation.get('study_auroc_ci'))} (valid, 95 % bootstrap)",
        f"              threshold {_number(evaluation.get('threshold'))}, ECE {_number(evaluation.get('study_ece'))}; "
        f"holdout study kappa {_number(evaluation.get('holdout_study_kappa'))}",
    ]
    for part, values in evaluation["per_part"].items():
        lines.append(
            f"              {part:<9} kappa {_number(values.get('study_kappa'))}  AUROC {_number(values.get('study_auroc'))}"
        )
    lines.append(f"  gate        {gate['status']}: {gate['reason']}")
    if gate["signature_problem"]:
        lines.append(f"              not trusted: {gate['signature_problem']}")
    if gate["forced_by"]:
        lines.append(f"              forced by {gate['forced_by']}: {gate['forced_reason']}")
    approval = report["approval"]
    if approval["decision"]:
        note = f" ({approval['note']})" if approval["note"] else ""
        lines.append(
            f"  approval    {approval['decision']} by {approval['by']} in Airflow run {approval['dag_run_id']} "
            f"at {approval['at']}{note}"
        )
    for event in report["alias_history"]:
        lines.append(
            f"  alias       {event['at']} {event['by']}: {event['alias']} -> v{event['version']} ({event['action']})"
        )
    where = ", ".join(serving["labels"]) or "not served"
    check = {
        True: "served files match the registered hash",
        False: "SERVED FILES DIFFER FROM THE REGISTERED HASH",
        None: "no files published",
    }
    lines.append(
        f"  serving     {where}; deployed {serving['deployed_at'] or 'never'}; {check[serving['hash_matches']]}"
    )
    return "\n".join(lines)


def _interval(bounds) -> str:
    if not bounds or None in bounds:
        return ""
    return f" [{bounds[0]:.3f}, {bounds[1]:.3f}]"


def _number(value) -> str:
    return "n/a" if value is None else f"{float(value):.3f}"


def _lineage(args) -> int:
    from pipelines.views import lineage

    if bool(args.spec) == bool(args.data):
        raise ConfigError("give MODEL[@alias|/version] or --data REV, not both or neither")
    if args.data:
        result = lineage.versions_trained_on(args.data)
        rows = [
            f"  {item['model']} v{item['version']}  aliases {', '.join(item['aliases']) or 'none'}; "
            f"served as {item['served_label'] or '-'}; gate {item['gate']}"
            for item in result["versions"]
        ]
        text = f"data {result['data_md5']}: {len(rows)} version(s)" + ("\n" + "\n".join(rows) if rows else "")
        emit(result, args.json, text)
        return 0
    report = lineage.version_lineage(args.spec)
    emit(report, args.json, _text(report))
    return 0


def register(subparsers) -> None:
    """Add `mura lineage`."""
    parser = subparsers.add_parser(
        "lineage",
        help="where a model version comes from and where it serves (or: versions trained on --data REV)",
    )
    parser.add_argument("spec", nargs="?", metavar="MODEL[@alias|/version]", help="default alias: champion")
    parser.add_argument("--data", metavar="REV", help="git revision of data.dvc, or a DVC md5 ending in .dir")
    add_json_flag(parser)
    parser.set_defaults(handler=_lineage)
