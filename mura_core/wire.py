"""HTTP wire rules shared by the servers here (REST serving, webhook receiver): strict Content-Length.

http.server passes the header through as text; `int()` would accept `-1` (read to EOF, past any
limit), ` 12 ` or `1_0`, and raise on `abc` (a dropped connection instead of an answer).
"""

from __future__ import annotations

import re

_DIGITS = re.compile(r"^[0-9]{1,19}$")


def content_length(raw: str | None) -> int | None:
    """The body length a Content-Length header value declares; None when it is not a plain byte count."""
    text = (raw if raw is not None else "0").strip()
    return int(text) if _DIGITS.match(text) else None


def shown(raw: str | None, limit: int = 40) -> str:
    """A header value safe to echo in an error message (ASCII, cut short)."""
    return (raw or "")[:limit].encode("ascii", "backslashreplace").decode()
