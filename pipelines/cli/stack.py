"""`mura up | down | status`: the embedded stack on one machine."""

from __future__ import annotations

from pipelines.cli.common import add_json_flag, emit


def _describe(report: dict) -> str:
    lines = [
        f"{name:24} {'healthy' if entry['healthy'] else ('running' if entry['running'] else 'stopped'):8} "
        f"pid {entry['pid'] or '-'}"
        for name, entry in report["services"].items()
    ]
    urls = report["urls"]
    lines += [
        "",
        f"Airflow UI   {urls['airflow']}  (user {report['airflow_user']}, password {report['airflow_password']})",
        f"MLflow UI    {urls['mlflow']}  (user {report['mlflow_user']}, password {report['mlflow_password']}; "
        f"every account's login: {report['mlflow_accounts']})",
        f"TF Serving   gRPC {urls['serving_grpc']}, REST {urls['serving_rest']}",
        *(
            [
                f"Gateway      TLS gRPC {urls['gateway_grpc']}, REST {urls['gateway_rest']}  "
                f"(MURA_SERVING_TLS_CA={urls['gateway_certificate']})"
            ]
            if "gateway_grpc" in urls
            else [
                "Gateway      not started: install nginx (`apt-get install nginx`) for TLS in front of TF Serving"
            ]
        ),
        f"State        {report['mura_home']}  (stop with 'mura down')",
    ]
    return "\n".join(lines)


def _up(args) -> int:
    from pipelines.stack.control import up

    report = up()
    emit(report, args.json, _describe(report))
    return 0


def _down(args) -> int:
    from pipelines.stack.control import down

    result = down()
    emit(result, args.json, "stopped: " + (", ".join(result["stopped"]) or "nothing was running"))
    return 0


def _status(args) -> int:
    from pipelines.stack.control import status

    report = status()
    emit(report, args.json, _describe(report))
    return 0 if report["healthy"] else 3


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
