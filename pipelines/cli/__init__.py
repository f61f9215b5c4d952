"""The `mura` command: a thin runner over `pipelines` and `serving`.

Each command group lives in its own module with a `register(subparsers)` function; handlers import
their heavy dependencies lazily, so help and usage errors come back at once (checked before any
TensorFlow, MLflow or Airflow import).
"""

from __future__ import annotations

import os
import sys
import traceback
from datetime import UTC, datetime
from pathlib import Path

from mura_core.errors import MuraError
from mura_core.logs import configure_logging
from mura_core.progress import quiet_libraries
from mura_core.progress import silence as silence_progress
from pipelines.cli.common import fail
from pipelines.cli.parsing import MuraParser

# Modules under pipelines.cli that add commands; each has register(subparsers).
COMMAND_MODULES = (
    "data",
    "train",
    "retrain",
    "serve",
    "registry",
    "lineage",
    "monitor",
    "stack",
    "pacs",
    "external",
    "shell",
)
# The MLflow account each command acts as when none is set (pipelines/tracking/accounts.py); the rest
# act as `pipeline`.
COMMAND_ACCOUNTS: dict[str, str | None] = {
    "promote": "reviewer",
    "rollback": "reviewer",
    "deploy": "deployer",
    "webhook": "deployer",
    "models": "viewer",
    "lineage": "viewer",
    "runs": "viewer",
    # No MLflow call: and a restore must not write (new generated logins) into the place it restores.
    "backup": None,
    "restore": None,
    "pacs": None,
}


def package_version() -> str:
    """The installed platform's version."""
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("mura-platform")
    except PackageNotFoundError:  # running from a checkout that was never installed
        return "unknown (not installed: make venv)"


def build_parser() -> MuraParser:
    """The full argument parser with every command group registered."""
    import importlib

    parser = MuraParser(
        prog="mura",
        description="MURA MLOps platform: data, training, registry and serving of MURA X-ray models.",
        epilog="`mura COMMAND --help` shows a command's options. Research use only: not a medical device.",
    )
    parser.add_argument("--version", action="version", version=f"mura {package_version()}")
    parser.add_argument(
        "--debug", action="store_true", help="print the full traceback of an unexpected error"
    )
    subparsers = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for name in COMMAND_MODULES:
        importlib.import_module(f"pipelines.cli.{name}").register(subparsers)
    return parser


def error_log() -> Path:
    """Where unexpected errors leave their traceback: $MURA_HOME/logs/cli.log."""
    from mura_core.settings import get_settings

    return get_settings().mura_home / "logs" / "cli.log"


def _unexpected(error: BaseException, argv: list[str], debug: bool) -> int:
    """One line naming the error and the log holding its traceback (printed too under --debug)."""
    trace = "".join(traceback.format_exception(error))
    if debug:
        print(trace, file=sys.stderr, end="")
    log = error_log()
    try:
        log.parent.mkdir(parents=True, exist_ok=True)
        # 0600: a traceback holds arguments and local paths, a study's too; an old 0644 log narrowed.
        descriptor = os.open(log, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600)
        os.fchmod(descriptor, 0o600)
        with os.fdopen(descriptor, "a", encoding="utf-8") as stream:
            stream.write(f"--- {datetime.now(UTC).isoformat()} mura {' '.join(argv)}\n{trace}")
        where = f"traceback in {log}"
    except OSError:
        where = "the log could not be written"
    return fail(f"{type(error).__name__}: {error} ({where}; --debug prints it)")


def _act_as(role: str) -> None:
    """Use `role`'s MLflow login (compose's variables or the embedded stack's file) unless the operator
    chose one with MLFLOW_TRACKING_USERNAME."""
    from mura_core.settings import get_settings
    from pipelines.tracking import use_account

    use_account(role, get_settings().mlflow_tracking_uri)


def main(argv: list[str] | None = None) -> int:
    """Entry point of the `mura` console script."""
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")  # TensorFlow's C++ start-up chatter hides the result
    argv = sys.argv[1:] if argv is None else list(argv)
    if argv[:1] == ["serve"]:  # every flag belongs to the server process, parsed there
        from pipelines.cli.serve import exec_server

        return exec_server(argv[1:])
    parser = build_parser()
    if "_ARGCOMPLETE" in os.environ:  # the shell asks for completions (`mura completion`)
        import argcomplete

        argcomplete.autocomplete(parser)
    args = parser.parse_args(argv)
    if getattr(args, "json", False):
        silence_progress()  # stdout is one JSON document; stderr carries no bar redraws either
    quiet_libraries()
    configure_logging()
    try:
        role = COMMAND_ACCOUNTS.get(args.command, "pipeline")
        if role is not None:
            _act_as(role)
        code = args.handler(args)
    except MuraError as error:
        return fail(str(error))
    except KeyboardInterrupt:
        return fail("interrupted")
    except Exception as error:  # noqa: BLE001 - anything else: one line and the log, not a traceback
        return _unexpected(error, argv, args.debug)
    return int(code or 0)


if __name__ == "__main__":
    sys.exit(main())
