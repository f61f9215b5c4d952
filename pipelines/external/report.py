"""The self-contained HTML report of an external validation (figures inline, no script, no request)."""

from __future__ import annotations

import tempfile
from pathlib import Path

import pandas as pd


def _figures(result: dict, images: pd.DataFrame, folder: Path) -> list[Path]:
    from mura_core.config import load_config
    from pipelines.evaluation import OperatingPoint, plots, study_scores
    from pipelines.external.measure import at_point

    subject = f"{result['model']} v{result['version']} on site {result['site']}"
    point = OperatingPoint.from_dict(result["metrics"]["operating_point"], load_config().evaluation.threshold)
    studies = study_scores(at_point(images, point))
    calibration = result["metrics"]["calibration"]
    paths = [
        plots.roc_figure(studies, folder / "roc_site.png", subject),
        plots.reliability_figure(
            calibration["study"], folder / "reliability_site.png", subject, calibration.get("study_raw")
        ),
    ]
    again = result.get("recalibration")
    if again:
        paths.append(
            plots.reliability_figure(
                again["after"]["calibration"]["study"],
                folder / "reliability_recalibrated.png",
                f"{subject}, site operating point, {again['measured_studies']} held-out studies",
                again["before"]["calibration"]["study"],
            )
        )
    return paths


def render_report(result: dict, images: pd.DataFrame, path: Path) -> Path:
    """Write the report of `result` (validate_site's) to `path`."""
    from mura_core.templating import environment

    with tempfile.TemporaryDirectory() as folder:
        figures = _figures(result, images, Path(folder))
        template = environment("pipelines.external").get_template("report.html.j2")
        path.write_text(template.render(result=result, figures=figures), encoding="utf-8")
    return path
