"""`mura up | down | status`: the embedded stack on one machine."""

from __future__ import annotations

import os
import sys

from pipelines.cli.common import add_json_flag, emit

ROOT_WARNING = (
    "warning: the embedded stack runs as root, so do its services (only the gateway's workers drop, to "
    "mura-gateway): it is one user's stack, so run it as an unprivileged user of its own (SECURITY.md)"
)


def _duration(seconds: int) -> str:
    hours, rest = divmod(int(seconds), 3600)
    return f"{hours}h{rest // 60:02d}m" if hours else f"{rest // 60}m{rest % 60:02d}s"


def _describe(report: dict) -> str:
    lines = [
        f"{name:24} {'healthy' if entry['healthy'] else entry['state'].lower():8} pid {entry['pid'] or '-':<8} "
        f"up {_duration(entry['uptime_s']):>8}  restarts {entry['restarts']}"
        for name, entry in report["services"].items()
    ]
    urls = report["urls"]
    lines += [
        "",
        f"Airflow UI   {urls['airflow']}  (user {report['airflow_user']}, password {report['airflow_password']}; "
        f"approvals: user {report['airflow_reviewer']}, password {report['airflow_reviewer_password']}, "
        "the same login in MLflow)",
        f"MLflow UI    {urls['mlflow']}  (user {report['mlflow_user']}, password {report['mlflow_password']}; "
        f"every account's login: {report['mlflow_accounts']})",
        f"TF Serving   gRPC {urls['serving_grpc']}, REST {urls['serving_rest']}",
        *(
            [
                f"Gateway      TLS gRPC {urls['gateway_grpc']}, REST {urls['gateway_rest']}  "
                f"(MURA_SERVING_TLS_CA={urls['gateway_certificate']}, MURA_SERVING_TOKEN={urls['gateway_token']})"
            ]
            if "gateway_grpc" in urls
            else [
                "Gateway      not started: install nginx (`apt-get install nginx`) for TLS in front of TF Serving"
            ]
        ),
        *(
            [
                f"PACS         DICOMweb {urls['pacs']}, Orthanc {urls['pacs_explorer']}  "
                f"(people: admin_user/admin_password in {urls['pacs_credentials']})"
            ]
            if "pacs" in urls
            else ["PACS         not started: install Orthanc (`apt-get install orthanc orthanc-dicomweb`)"]
        ),
        f"State        {report['mura_home']}  (stop with 'mura down')",
    ]
    return "\n".join(lines)


def _up(args) -> int:
    from pipelines.stack import up

    report = up()
    emit(report, args.json, _describe(report))
    if os.geteuid() == 0:
        print(ROOT_WARNING, file=sys.stderr)
    return 0


def _down(args) -> int:
    from pipelines.stack import down

    result = down()
    emit(result, args.json, "stopped: " + (", ".join(result["stopped"]) or "nothing was running"))
    return 0


def _status(args) -> int:
    from pipelines.stack import status

    report = status()
    emit(report, args.json, _describe(report))
    return 0 if report["healthy"] else 3


def _backup(args) -> int:
    import time
    from pathlib import Path

    from mura_core.settings import get_settings
    from pipelines.stack import backup, paused

    out = Path(args.out or f"mura-backup-{time.strftime('%Y%m%dT%H%M%SZ', time.gmtime())}.tar.gz")
    settings = get_settings()
    with paused(settings, "pacs"):  # Orthanc holds its index locked: it pauses for the copy (seconds)
        result = backup(settings, out)
    emit(
        result,
        args.json,
        f"backed up {result['files']} files ({result['databases']} SQLite databases, "
        f"{result['bytes'] / 1e6:.1f} MB) of {result['mura_home']} to {result['archive']} "
        "(mode 0600: it holds the stack's secrets)",
    )
    return 0


def _restore(args) -> int:
    from mura_core.settings import get_settings
    from pipelines.stack import restore, running_services

    settings = get_settings()
    result = restore(settings, args.archive, running_services(settings), force=args.force)
    aside = (
        f"; the state that was there is kept in {', '.join(result['moved_aside'])}"
        if result["moved_aside"]
        else ""
    )
    emit(
        result,
        args.json,
        f"restored {', '.join(result['restored'])} as of {result['created']}{aside}; start it with 'mura up'",
    )
    return 0


def register(subparsers) -> None:
    """Add `up`, `down` and `status`."""
    for name, handler, text in (
        ("up", _up, "start MLflow, the serving process and Airflow in the background and wait for health"),
        ("down", _down, "stop every process 'mura up' started"),
        ("status", _status, "each service's health and URL, and the Airflow admin password"),
    ):
        parser = subparsers.add_parser(name, help=text, description=text)
        add_json_flag(parser)
        parser.set_defaults(handler=handler)
    text = "write the embedded stack's whole state (MURA_HOME) to one archive; safe while it runs"
    backup = subparsers.add_parser("backup", help=text, description=text)
    backup.add_argument("--out", help="archive to write (default: mura-backup-<UTC time>.tar.gz here)")
    add_json_flag(backup)
    backup.set_defaults(handler=_backup)
    text = "put a `mura backup` archive back in MURA_HOME (the stack must be stopped)"
    restore = subparsers.add_parser("restore", help=text, description=text)
    restore.add_argument("archive", metavar="ARCHIVE", help="a file written by `mura backup`")
    restore.add_argument(
        "--force",
        action="store_true",
        help="move state already in MURA_HOME aside (kept) instead of refusing",
    )
    add_json_flag(restore)
    restore.set_defaults(handler=_restore)
