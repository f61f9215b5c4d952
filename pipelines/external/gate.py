"""The data gate on a site's release: the Great Expectations suites of MURA data, in a GX project of
their own (`$MURA_HOME/external/gx`, so a site's limits never rewrite the training data's suite), with
a site's limits from params.yaml `external` (fewer images, larger plates, its own prevalence) and no
train split. A site that fails it is not evaluated."""

from __future__ import annotations

import json
from pathlib import Path

from mura_core.config import load_config
from mura_core.errors import DataValidationError
from mura_core.private_files import write_private
from pipelines.external.sites import EXTERNAL_DIR, Site

KEPT = ("success", "summary", "rows", "studies", "rules_checked", "rules_failed", "failed_rules", "data_docs")


def gate_params() -> dict:
    """params.yaml's `validation` with the site's least number of images."""
    config = load_config()
    params = dict(config.validation)
    external = config.external
    params["row_count"] = {**params["row_count"], "min": external.min_images}
    params["image"] = {
        **params["image"],
        "max_width": external.max_image_side,
        "max_height": external.max_image_side,
    }
    params["abnormal_ratio"] = {**params["abnormal_ratio"], **external.abnormal_ratio}
    params["required_splits"] = ["valid"]  # no train or holdout: the model was trained elsewhere
    return params


def run_gate(site: Site, data_md5: str) -> dict:
    """Validate the release now and record the verdict for this data version."""
    from pipelines.validation import default_project_dir, validate_data_dir

    project = default_project_dir(home=site.mura_home / EXTERNAL_DIR)
    report = validate_data_dir(
        site.root,
        project_dir=project,
        params=gate_params(),
        raise_on_failure=False,
        data_version=f"{site.name}-{data_md5.removesuffix('.dir')[:12]}",
    )
    verdict = {key: getattr(report, key) for key in KEPT} | {"data_md5": data_md5}
    write_private(site.gate_file(data_md5), json.dumps(verdict, indent=2))
    return verdict


def recorded_gate(site: Site, data_md5: str) -> dict | None:
    """The recorded verdict on this very data version, if the gate ran on it."""
    path: Path = site.gate_file(data_md5)
    return json.loads(path.read_text(encoding="utf-8")) if path.is_file() else None


def require_gate(site: Site, data_md5: str) -> dict:
    """The gate's verdict (recorded, or run now); DataValidationError when the release failed it."""
    verdict = recorded_gate(site, data_md5) or run_gate(site, data_md5)
    if not verdict["success"]:
        raise DataValidationError(
            f"site {site.name}: its release {data_md5} failed the data gate, so it is not evaluated; fix the "
            f"studies and import them again.\n{verdict['summary']}",
            verdict,
        )
    return verdict
