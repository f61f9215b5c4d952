"""`mura register | promote | card | rollback | deploy | mlflow-server | webhook`: the MLflow registry side."""

from __future__ import annotations

import argparse
import os
import sys
import time

from mura_core.errors import ConfigError
from mura_core.settings import MLFLOW_PORT
from pipelines.cli.common import add_json_flag, emit


def _register(args) -> int:
    from mura_core.contracts import Approval
    from pipelines.registry import register_run

    # No reviewer is asked outside a retrain: --auto-promote is auto, --no-auto-promote off, neither
    # follows params.yaml gate.approval (auto, else off).
    approval = None if args.auto_promote is None else Approval.AUTO if args.auto_promote else Approval.OFF
    result = register_run(args.run_id, approval=approval)
    aliases = ", ".join(result["aliases"]) or "no alias"
    done = "already registered as" if result["reused"] else "registered"
    emit(
        result,
        args.json,
        f"{done} {result['model']} v{result['version']} ({aliases}); gate {result['gate']['reason']}",
    )
    if result["card"] is None:  # registered and gated, but the reviewer's evidence is missing: say so
        print(
            f"mura register: the model card of {result['model']} v{result['version']} could not be written "
            f"(the reason is in the log above); run `mura card {result['model']}/{result['version']}`",
            file=sys.stderr,
        )
        return 1
    return 0


def _promote(args) -> int:
    from pipelines.registry import promote

    result = promote(args.model, args.version, alias=args.alias, force=args.force, reason=args.reason)
    if not result["changed"]:
        text = f"{args.model} v{args.version} is already {args.alias}; nothing changed"
    else:
        text = f"{args.model}: {args.alias} -> v{args.version} (was {result['previous'] or 'unset'})"
        text += " [forced past the gate; recorded]" if result["forced"] else ""
        text += (
            "; run `mura deploy` (or wait for the deploy DAG) to serve it" if args.alias == "champion" else ""
        )
    emit(result, args.json, text)
    return 0


def _rollback(args) -> int:
    from pipelines.registry import rollback

    result = rollback(args.model)
    emit(
        result,
        args.json,
        f"{args.model}: champion back to v{result['champion']} (from v{result['rolled_back_from']}); run `mura deploy`",
    )
    return 0


def _deploy(args) -> int:
    from pipelines.deployment import DeployOptions, reconcile

    options = DeployOptions.from_settings(
        grpc_target=args.target, server_base_path=args.server_base_path, reload="poll" if args.poll else None
    )
    result = reconcile(options=options, models=args.model or None)
    emit(result.to_xcom(), args.json, result.describe())
    return 0


def _mlflow_server(args) -> int:
    from pipelines.tracking import start_tracking_server

    server = start_tracking_server(
        host=args.host,
        port=args.port,
        backend_store_uri=args.backend_store_uri,
        artifacts_destination=args.artifacts_destination,
        extra_hosts=args.allowed_host,
    )
    emit(
        {"uri": server.uri, "pid": server.process.pid, "log": str(server.log_path)},
        args.json,
        f"MLflow tracking server at {server.uri} (log {server.log_path}); Ctrl-C stops it",
    )
    try:
        while server.process.poll() is None:
            time.sleep(1)
    except KeyboardInterrupt:
        pass
    finally:
        server.stop()
    return 0


def _webhook(args) -> int:
    from pipelines.deployment import WebhookReceiver

    secret = os.environ.get("MURA_WEBHOOK_SECRET", "")
    if not secret:
        raise ConfigError(
            "set MURA_WEBHOOK_SECRET to the secret given to the MLflow webhook; refusing to run unsigned"
        )
    if args.action == "airflow":
        from pipelines.stack import trigger_dag_action

        receiver = WebhookReceiver(
            secret, action=trigger_dag_action("mura_deploy"), host=args.host, port=args.port
        )
    else:
        receiver = WebhookReceiver(secret, host=args.host, port=args.port)
    receiver.start()
    emit({"url": receiver.url}, args.json, f"receiving MLflow webhooks at {receiver.url}; Ctrl-C stops it")
    try:
        while True:
            time.sleep(1)
    except KeyboardInterrupt:
        pass
    finally:
        receiver.stop()
    return 0


def _unserved(row: dict) -> bool:
    """An alias whose label does not serve this version yet (the alias moved; serving follows later)."""
    from mura_core.contracts import LABEL_OF_ALIAS

    return any(
        label not in row["labels"] for alias, label in LABEL_OF_ALIAS.items() if alias in row["aliases"]
    )


def _models(args) -> int:
    from pipelines.views import model_versions

    rows = model_versions()
    lines = [
        f"{row['model']:<24} v{row['version']:<4} {','.join(row['aliases']) or '-':<20} "
        f"{','.join(row['labels']) or '-':<10} {row['gate']:<8} {row['study_kappa']}"
        for row in rows
    ]
    header = (
        f"{'MODEL':<24} {'VER':<5} {'ALIASES':<20} {'SERVED AS':<10} {'GATE':<8} VALID STUDY KAPPA [95 % CI]"
    )
    waiting = [f"{row['model']} v{row['version']}" for row in rows if _unserved(row)]
    if waiting:  # an alias moved (MLflow UI, mura promote) and serving has not followed yet
        lines += [
            "",
            f"not served yet: {', '.join(waiting)}: the DAG mura_deploy makes serving follow the aliases "
            "every 5 minutes (at once where the alias webhook is on); `mura deploy` does it now",
        ]
    emit(rows, args.json, "\n".join([header, *lines]) if rows else "no registered models yet")
    return 0


def _card(args) -> int:
    from pathlib import Path

    from mura_core.settings import get_settings
    from pipelines.cards import fetch_card
    from pipelines.tracking import connect, tracking_errors
    from pipelines.views import resolve_spec

    client = connect()
    with tracking_errors(client, f"writing the model card of {args.spec}"):
        model, version = resolve_spec(client, args.spec)
        out = Path(args.out) if args.out else get_settings().mura_home / "cards" / f"{model}-v{version}"
        card = fetch_card(client, model, version, out, rebuild=args.rebuild)
    result = {"model": model, "version": version, "html": str(card), "markdown": str(card.with_suffix(".md"))}
    emit(result, args.json, f"{model} v{version}: model card {card} (Markdown beside it)")
    if args.open:
        import webbrowser

        webbrowser.open(card.as_uri())
    return 0


def _accounts(args) -> int:
    from mura_core.settings import get_settings
    from pipelines.tracking import (
        GRANTS,
        ROLES,
        account,
        accounts_file,
        password_variable,
        provision,
        tracking_uri,
    )

    home = get_settings().mura_home
    rows = []
    for role in ROLES:
        found = account(role, home)
        source = password_variable(role) if os.environ.get(password_variable(role)) else accounts_file(home)
        grants = GRANTS.get(role)
        may = (
            "users and permissions"
            if grants is None
            else (
                "; ".join(f"{permission} on {kind} {pattern}" for kind, pattern, permission in grants)
                or "read"
            )
        )
        rows.append({"user": role, "password_from": str(source) if found else None, "may": may})
    result: dict = {"tracking_uri": tracking_uri(), "accounts": rows}
    if args.provision:
        passwords = {role: (found.password if (found := account(role, home)) else "") for role in ROLES}
        result["changes"] = provision(tracking_uri(), passwords)
    lines = [f"{row['user']:9} {row['may']:52} password: {row['password_from'] or 'not set'}" for row in rows]
    if args.provision:
        lines.append(
            "provisioned on " + result["tracking_uri"] + ": " + ("; ".join(result["changes"]) or "no change")
        )
    emit(result, args.json, "\n".join(lines))
    return 0


def _gate_key(args) -> int:
    from pipelines.registry import SIGNING_KEY_ENV, VERIFY_KEY_ENV, new_key_pair

    signing, verifying = new_key_pair()
    result = {SIGNING_KEY_ENV: signing, VERIFY_KEY_ENV: verifying}
    emit(result, args.json, "\n".join(f"{name}={value}" for name, value in result.items()))
    return 0


def register(subparsers) -> None:
    """Add the registry commands."""
    _add_account_commands(subparsers)
    _add_version_commands(subparsers)
    _add_server_commands(subparsers)


def _add_account_commands(subparsers) -> None:
    """accounts, models."""
    parser = subparsers.add_parser(
        "accounts",
        help="the MLflow accounts (admin, pipeline, reviewer, deployer, viewer): what each may do and "
        "where its password is; --provision creates them on the server",
    )
    parser.add_argument(
        "--provision",
        action="store_true",
        help="create or update the accounts and permissions on MLFLOW_TRACKING_URI as admin (idempotent)",
    )
    add_json_flag(parser)
    parser.set_defaults(handler=_accounts)

    parser = subparsers.add_parser(
        "models", help="registered versions: aliases, labels served, gate verdict, study kappa"
    )
    add_json_flag(parser)
    parser.set_defaults(handler=_models)


def _add_version_commands(subparsers) -> None:
    """register, promote, gate-key, card, rollback: a version's verdict and aliases."""
    parser = subparsers.add_parser(
        "register", help="register a run's tf_serving/ SavedModel, gate it, set aliases"
    )
    parser.add_argument("run_id", metavar="RUN_ID", help="MLflow run id of a training run (`mura runs`)")
    parser.add_argument(
        "--auto-promote",
        action=argparse.BooleanOptionalAction,
        default=None,
        help="a passing version becomes champion at once (default: yes when params.yaml gate.approval is auto)",
    )
    add_json_flag(parser)
    parser.set_defaults(handler=_register)

    parser = subparsers.add_parser("promote", help="move an alias (default champion) to a model version")
    parser.add_argument("model", metavar="MODEL", help="registered model, e.g. mura_binary (`mura models`)")
    parser.add_argument("version", metavar="VERSION", type=int, help="the version the alias moves to")
    parser.add_argument(
        "--alias", default="champion", help="champion (serves as stable) or challenger (canary)"
    )
    parser.add_argument(
        "--force", action="store_true", help="promote a version that failed the gate (recorded)"
    )
    parser.add_argument("--reason", help="why a failed version is forced (recorded with who and when)")
    add_json_flag(parser)
    parser.set_defaults(handler=_promote)

    parser = subparsers.add_parser(
        "gate-key",
        help="print a new key pair for the gate's signed verdicts (compose's .env: MURA_GATE_SIGNING_KEY, "
        "MURA_GATE_VERIFY_KEY); the embedded stack makes its own",
    )
    add_json_flag(parser)
    parser.set_defaults(handler=_gate_key)

    parser = subparsers.add_parser(
        "card", help="write (or fetch) a version's model card: HTML that renders offline, and Markdown"
    )
    parser.add_argument(
        "spec", metavar="MODEL[@ALIAS|/VERSION]", help="e.g. mura_binary (its champion), mura_binary/3"
    )
    parser.add_argument("--out", help="folder to write into (default MURA_HOME/cards/MODEL-vN)")
    parser.add_argument(
        "--rebuild", action="store_true", help="build it again from the registry and log the new one"
    )
    parser.add_argument("--open", action="store_true", help="open card.html in the default browser")
    add_json_flag(parser)
    parser.set_defaults(handler=_card)

    parser = subparsers.add_parser("rollback", help="move champion back to the previous champion")
    parser.add_argument("model", metavar="MODEL", help="registered model, e.g. mura_binary")
    add_json_flag(parser)
    parser.set_defaults(handler=_rollback)


def _add_server_commands(subparsers) -> None:
    """deploy, mlflow-server, webhook."""
    parser = subparsers.add_parser(
        "deploy", help="make TF Serving follow the registry aliases (reconcile once)"
    )
    parser.add_argument(
        "--model", action="append", help="only this model (repeatable; default every mura_* model)"
    )
    parser.add_argument("--target", help="TF Serving gRPC host:port (default MURA_SERVING_GRPC)")
    parser.add_argument("--server-base-path", help="the model base path as the server sees it (e.g. /models)")
    parser.add_argument(
        "--poll", action="store_true", help="wait for the server's config polling instead of a reload call"
    )
    add_json_flag(parser)
    parser.set_defaults(handler=_deploy)

    parser = subparsers.add_parser(
        "mlflow-server", help="run an MLflow tracking server on the embedded store"
    )
    parser.add_argument("--host", default="127.0.0.1", help="address to listen on")
    parser.add_argument(
        "--port", type=int, default=MLFLOW_PORT, help=f"port to listen on (default {MLFLOW_PORT})"
    )
    parser.add_argument(
        "--backend-store-uri", help="default: SQLite under MURA_HOME/mlflow (postgresql://... in compose)"
    )
    parser.add_argument(
        "--artifacts-destination", help="default: MURA_HOME/mlflow/artifacts (s3://... in compose)"
    )
    parser.add_argument(
        "--allowed-host", action="append", default=[], help="another Host name to accept, e.g. mlflow"
    )
    add_json_flag(parser)
    parser.set_defaults(handler=_mlflow_server)

    parser = subparsers.add_parser(
        "webhook", help="receive MLflow alias webhooks (secret: MURA_WEBHOOK_SECRET)"
    )
    parser.add_argument("--host", default="127.0.0.1", help="address to listen on")
    parser.add_argument("--port", type=int, default=8090, help="port to listen on")
    parser.add_argument(
        "--action",
        choices=("reconcile", "airflow"),
        default="reconcile",
        help="reconcile in this process, or trigger the mura_deploy DAG through Airflow's REST API "
        "(AIRFLOW_URL; MURA_AIRFLOW_USER/MURA_AIRFLOW_PASSWORD, else the embedded stack's admin)",
    )
    add_json_flag(parser)
    parser.set_defaults(handler=_webhook)
