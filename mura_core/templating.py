"""HTML and Markdown reports from Jinja templates shipped inside a package (model cards, monitor
reports): autoescaped HTML, and an error for any name a template uses but is not given."""

from __future__ import annotations

import base64
from pathlib import Path


def _data_uri(path: Path) -> str:
    return "data:image/png;base64," + base64.b64encode(Path(path).read_bytes()).decode("ascii")


def _number(value, digits: int = 3) -> str:
    return "n/a" if value is None or value != value else f"{value:.{digits}f}"


def environment(package: str, folder: str = "templates"):
    """A Jinja environment over `package`'s `folder`, with the `data_uri` and `num` filters."""
    import jinja2

    made = jinja2.Environment(
        loader=jinja2.PackageLoader(package, folder),
        autoescape=jinja2.select_autoescape(["html.j2"]),
        undefined=jinja2.StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
    )
    made.filters["data_uri"] = _data_uri
    made.filters["num"] = _number
    return made
