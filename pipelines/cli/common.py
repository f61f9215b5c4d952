"""Output conventions shared by every `mura` command."""

from __future__ import annotations

import json
import sys
import unicodedata
from typing import Any


def printable(text: str) -> str:
    """`text` with control and format characters escaped (\\x1b...): a file name or a value from a
    file cannot move the cursor, rewrite the screen or hide a line of a terminal that shows it."""
    return "".join(
        char
        if char in "\n\t" or not unicodedata.category(char).startswith("C")
        else char.encode("unicode_escape").decode("ascii")
        for char in text
    )


def fail(reason: str, code: int = 1) -> int:
    """Print a one-line reason on stderr and return the exit code."""
    one_line = " ".join(str(reason).split())
    print(f"mura: error: {printable(one_line)}", file=sys.stderr)
    return code


def emit(result: Any, as_json: bool, text: str | None = None) -> None:
    """Print `result` as JSON (for --json: control characters come escaped) or the human `text`."""
    if as_json:
        print(json.dumps(result, indent=2, default=str, sort_keys=True))
    elif text is not None:
        print(printable(text))


def add_json_flag(parser) -> None:
    """The --json flag every result-producing command takes."""
    parser.add_argument("--json", action="store_true", help="print the result as JSON on stdout")


def add_write_back_flag(parser, when: str = "") -> None:
    """--write-back / --no-write-back of the PACS predictions (`mura pacs predict`, `mura predict --pacs`)."""
    import argparse

    parser.add_argument(
        "--write-back",
        action=argparse.BooleanOptionalAction,
        default=True,
        help=f"{when}store the answer in the study as a DICOM SR (default; once per model version)",
    )


def json_stdout_guard(args):
    """With --json, whatever else prints (Keras epochs, MLflow's run links) goes to stderr, so stdout
    stays one JSON document."""
    import contextlib
    import sys

    return contextlib.redirect_stdout(sys.stderr) if args.json else contextlib.nullcontext()
