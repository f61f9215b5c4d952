"""The code blocks of a Markdown page and the marker that says how a test uses each.

`<!-- run: NAME -->` before a fenced block: a test runs it (python or bash) and checks its output.
`<!-- check: COMMAND -->` before a fenced block: the block is COMMAND's output, compared by a test.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

FENCE = re.compile(r"^```(\w*)\n(.*?)^```$", re.MULTILINE | re.DOTALL)
MARKER = re.compile(r"<!-- (run|check): (.+?) -->\s*\Z")


@dataclass(frozen=True)
class Block:
    language: str
    code: str
    kind: str | None  # "run", "check" or None (no marker)
    name: str | None  # the run's name or the check's command
    line: int


def blocks(page: Path) -> list[Block]:
    """Every fenced block of `page`, with the marker on the line before it (if any)."""
    text = page.read_text(encoding="utf-8")
    found = []
    for match in FENCE.finditer(text):
        before = text[: match.start()].rstrip("\n").rsplit("\n", 1)[-1]
        marker = MARKER.search(before + "\n")
        found.append(
            Block(
                language=match.group(1),
                code=match.group(2),
                kind=marker.group(1) if marker else None,
                name=marker.group(2) if marker else None,
                line=text.count("\n", 0, match.start()) + 1,
            )
        )
    return found
