"""`mura retrain`: trigger the mura_retrain DAG with the form's fields, follow it, exit with its state;
`mura runs`: the retrain DAG's runs, or the MLflow training runs."""

from __future__ import annotations

import argparse
import sys
from typing import Any

from mura_core.contracts import APPROVE_TASK, RETRAIN_DAG, REVIEWER_ROLE
from pipelines.cli.common import add_json_flag, emit
from pipelines.cli.parsing import add_old_spellings, warn_deprecated
from pipelines.retrain_form import FormField, check_conf, retrain_form

# The approval step waits deferred (its trigger also watches the registry); awaiting_input is Airflow
# 3.3's own state of a human-in-the-loop task.
WAITING_FOR_A_PERSON = ("deferred", "awaiting_input")

# Schema type -> how the flag parses its text (arrays are comma separated).
_PARSERS = {"integer": int, "number": float, "string": str}


def _form() -> list[FormField]:
    from mura_core.config import load_config
    from mura_core.errors import MuraError
    from mura_core.settings import get_settings
    from pipelines.cli.parsing import preset_names

    default = get_settings().default_preset
    try:
        gate = load_config().gate
        presets, approval, choices = preset_names(), gate.approval, gate.approval_choices
    except MuraError:  # a broken params.yaml: Airflow's own check reports it when the run is triggered
        presets, approval, choices = [default], "required", ("required", "off")
    return retrain_form(default, presets, approval, choices)


class _OldApproval(argparse.Action):
    """`--[no-]auto-promote`, the spelling before the form's approval field: `--approval auto|off`."""

    def __init__(self, option_strings, dest, const=None, **kwargs):
        super().__init__(option_strings, dest, nargs=0, const=const, default=argparse.SUPPRESS, **kwargs)

    def __call__(self, parser, namespace, values, option_string=None):
        warn_deprecated(str(option_string), f"--approval {self.const}")
        setattr(namespace, self.dest, self.const)


def _schema_type(item: FormField) -> str:
    kinds = item.schema["type"]
    return next(kind for kind in ([kinds] if isinstance(kinds, str) else kinds) if kind != "null")


def _add_field(parser: argparse.ArgumentParser, item: FormField) -> None:
    flag, kind = "--" + item.name.replace("_", "-"), _schema_type(item)
    text = item.description
    enum = [value for value in item.schema.get("enum", []) if value is not None]
    if kind == "boolean":
        parser.add_argument(
            flag, dest=item.name, action=argparse.BooleanOptionalAction, default=None, help=text
        )
        return
    if kind == "array":
        choices = item.schema["items"].get("enum", [])
        parser.add_argument(
            flag,
            dest=item.name,
            type=lambda value: [name.strip() for name in value.split(",") if name.strip()],
            metavar="A[,B]",
            help=f"{text} Comma separated: {', '.join(choices)}",
        )
        return
    parser.add_argument(
        flag,
        dest=item.name,
        type=_PARSERS[kind],
        choices=enum or None,
        metavar=item.name.upper() if enum and len(enum) > 8 else None,
        help=text + (f" One of: {', '.join(map(str, enum))}." if enum and len(enum) > 8 else ""),
    )


def _print_changes(previous: dict[str, str], run_url: str = ""):
    """An on_change callback printing each task whose state moved (to stderr)."""

    def report(states: dict[str, str]) -> None:
        for task, state in states.items():
            if previous.get(task) != state:
                print(f"  {task:<28} {state}", file=sys.stderr, flush=True)
                if task == APPROVE_TASK and state in WAITING_FOR_A_PERSON:
                    print(
                        f"  a reviewer decides (Airflow user {REVIEWER_ROLE}): {run_url}/tasks/{APPROVE_TASK}/required_actions",
                        file=sys.stderr,
                        flush=True,
                    )
        previous.clear()
        previous.update(states)

    return report


def _retrain(args) -> int:
    from pipelines.stack import client_from_settings

    conf = {item.name: getattr(args, item.name) for item in _form() if getattr(args, item.name) is not None}
    check_conf(conf, _form())
    client = client_from_settings()
    client.unpause(RETRAIN_DAG)
    run_id = client.trigger(RETRAIN_DAG, conf)
    result: dict[str, Any] = {
        "dag_id": RETRAIN_DAG,
        "dag_run_id": run_id,
        "conf": conf,
        "url": _run_url(client, run_id),
    }
    if not args.json:  # with --json the document carries the run and its URL
        print(f"triggered {RETRAIN_DAG} run {run_id}: {result['url']}", file=sys.stderr, flush=True)
    if not args.wait:
        emit({**result, "state": "queued"}, args.json, run_id)
        return 0
    state = client.wait(
        RETRAIN_DAG, run_id, timeout=args.timeout, on_change=_print_changes({}, result["url"])
    )
    result.update(state=state, tasks=client.task_states(RETRAIN_DAG, run_id))
    emit(result, args.json, f"run {run_id} finished: {state}")
    return 0 if state == "success" else 1


def _run_url(client, run_id: str) -> str:
    return f"{client.base_url}/dags/{RETRAIN_DAG}/runs/{run_id}"


def _runs(args) -> int:
    if args.airflow:
        from pipelines.stack import client_from_settings

        runs = client_from_settings().runs(RETRAIN_DAG)[: args.limit]
        rows = [
            f"{run['dag_run_id']:<48} {run.get('state') or '-':<8} {str(run.get('start_date') or '-')[:19]}"
            for run in runs
        ]
        header = f"{'DAG RUN':<48} {'STATE':<8} STARTED (UTC)"
        emit(runs, args.json, "\n".join([header, *rows]) if rows else f"no runs of {RETRAIN_DAG} yet")
        return 0
    from pipelines.views import training_runs

    runs = training_runs(args.limit)
    header = (
        f"{'RUN':<32}  {'STARTED (UTC)':<16}  {'STATUS':<9} {'ARCH':<18} {'TASK':<16} STUDY KAPPA [95 % CI]"
    )
    rows = [
        f"{run['run_id']:<32}  {run['start'][:16]}  {run['status']:<9} {run['arch']:<18} {run['task']:<16} "
        f"{run['study_kappa']}"
        for run in runs
    ]
    emit(
        runs,
        args.json,
        "\n".join([header, *rows]) if rows else "no training runs yet: `mura train` or `mura retrain`",
    )
    return 0


def register(subparsers) -> None:
    """Add `retrain` and `runs`."""
    text = f"trigger the {RETRAIN_DAG} DAG in Airflow with the form's fields (all optional)"
    parser = subparsers.add_parser("retrain", help=text, description=text + "; the preset fills the rest.")
    for item in _form():
        _add_field(parser, item)
    add_old_spellings(parser)  # --arch, --augment true|false: `mura train`'s old spellings
    for old, mode in (("--auto-promote", "auto"), ("--no-auto-promote", "off")):  # before --approval
        parser.add_argument(old, dest="approval", action=_OldApproval, const=mode, help=argparse.SUPPRESS)
    parser.add_argument("--wait", action="store_true", help="follow the run's tasks and exit with its state")
    parser.add_argument("--timeout", type=float, default=3600.0, help="seconds --wait waits")
    add_json_flag(parser)
    parser.set_defaults(handler=_retrain)

    parser = subparsers.add_parser(
        "runs", help="list MLflow training runs (newest first), or --airflow DAG runs"
    )
    parser.add_argument("--airflow", action="store_true", help=f"list the {RETRAIN_DAG} DAG's runs instead")
    parser.add_argument("--limit", type=int, default=20, help="how many")
    add_json_flag(parser)
    parser.set_defaults(handler=_runs)
