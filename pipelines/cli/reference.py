"""docs/CLI.md, generated from the parsers themselves so it lists every command and option exactly.

python -m pipelines.cli.reference > docs/CLI.md      (make docs; a unit test checks it is current)
"""

from __future__ import annotations

import argparse
import os
import sys

WIDTH = "100"  # help is wrapped to $COLUMNS: fixed, so the file does not depend on the terminal


def _subcommands(parser: argparse.ArgumentParser) -> dict[str, argparse.ArgumentParser]:
    for action in parser._actions:  # argparse keeps sub-parsers only here
        if isinstance(action, argparse._SubParsersAction):
            return dict(action.choices)
    return {}


def _sections(parser: argparse.ArgumentParser, name: str) -> list[tuple[str, str]]:
    found = [(name, parser.format_help())]
    for child_name, child in _subcommands(parser).items():
        found.extend(_sections(child, f"{name} {child_name}"))
    return found


def reference() -> str:
    """The Markdown reference of `mura` and `mura serve`."""
    import subprocess

    os.environ["COLUMNS"] = WIDTH
    from pipelines.cli import build_parser

    # The server's flags are its own process's (nothing in pipelines imports serving.server).
    server_help = subprocess.run(
        [sys.executable, "-m", "serving.server", "--help"], capture_output=True, text=True, check=True
    ).stdout

    lines = [
        "# The `mura` command, every option",
        "",
        "Generated from the parsers by `make docs` (`python -m pipelines.cli.reference`); do not edit.",
        "docs/GUIDE.md explains what the commands are for.",
        "",
    ]
    sections = _sections(build_parser(), "mura")
    sections = [(title, text) if title != "mura serve" else (title, server_help) for title, text in sections]
    for title, text in sections:
        lines += [f"## `{title}`", "", "```", text.rstrip(), "```", ""]
    return "\n".join(lines)


if __name__ == "__main__":
    sys.stdout.write(reference())
