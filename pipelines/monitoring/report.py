"""The monitor's self-contained HTML report: verdict, each drift test, live performance, the ask."""

from __future__ import annotations

from pathlib import Path

from mura_core.contracts import BODY_PARTS, study_type
from mura_core.stages import MonitorCheck


def _live_rows(check: MonitorCheck) -> list[dict]:
    rows = []
    for role in ("champion", "challenger"):
        report = getattr(check.live, role)
        if not report:
            continue
        parts = [
            (study_type(part), report["per_part"][part]["study"])
            for part in BODY_PARTS
            if part in report["per_part"]
        ]
        for name, study in [*parts, ("Overall", report["study"])]:
            rows.append({"role": role, "type": name, **study})
    return rows


def render_report(check: MonitorCheck, path: Path) -> Path:
    """Write the report of `check` to `path` (one file: no script, no request)."""
    from mura_core.templating import environment

    template = environment("pipelines.monitoring").get_template("report.html.j2")
    path.write_text(template.render(check=check, live_rows=_live_rows(check)), encoding="utf-8")
    return path
