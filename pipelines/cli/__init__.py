"""The `mura` command: a thin runner over `pipelines` and `serving`.

Each command group lives in its own module with a `register(subparsers)` function; handlers import
their heavy dependencies lazily so `mura --help` stays fast.
"""

from __future__ import annotations

import argparse
import importlib
import os
import sys

from pipelines.cli.common import fail
from pipelines.errors import MuraError
from pipelines.logs import configure_logging

# Modules under pipelines.cli that add commands; each has register(subparsers).
COMMAND_MODULES = ("data", "train", "serve", "registry", "lineage", "stack")


def build_parser() -> argparse.ArgumentParser:
    """The full argument parser with every command group registered."""
    parser = argparse.ArgumentParser(prog="mura", description="MURA MLOps platform")
    subparsers = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for name in COMMAND_MODULES:
        try:
            module = importlib.import_module(f"pipelines.cli.{name}")
        except ModuleNotFoundError as error:
            if error.name != f"pipelines.cli.{name}":
                raise
            continue  # a command group that is not built yet
        module.register(subparsers)
    return parser


def main(argv: list[str] | None = None) -> int:
    """Entry point of the `mura` console script."""
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")  # TensorFlow's C++ start-up chatter hides the result
    argv = sys.argv[1:] if argv is None else list(argv)
    if argv[:1] == ["serve"]:  # every flag belongs to the server process, parsed there
        from pipelines.cli.serve import exec_server

        return exec_server(argv[1:])
    configure_logging()
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        code = args.handler(args)
    except MuraError as error:
        return fail(str(error))
    except KeyboardInterrupt:
        return fail("interrupted")
    return int(code or 0)


if __name__ == "__main__":
    sys.exit(main())
