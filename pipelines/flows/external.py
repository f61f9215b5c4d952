"""The external validation flow (DAG mura_external_validation, `mura external validate`): the data
gate on a site's release, then the model measured on it."""

from __future__ import annotations

from mura_core.contracts import DEFAULT_CHAMPION, EXTERNAL_DAG
from mura_core.logs import configure_logging

SITE_PATTERN = (
    "^[a-z0-9][a-z0-9_-]{0,47}$"  # the external validation form's site (pipelines/external/sites.py)
)
__all__ = ["DEFAULT_CHAMPION", "EXTERNAL_DAG", "SITE_PATTERN", "external_gate", "external_validate"]


def external_gate(site: str) -> dict:
    """The data gate's verdict on the site's release as it is now (run when not recorded); fails the
    task when it failed, so the site is not evaluated."""
    from pipelines.external import gated_release
    from pipelines.external import site as site_of

    configure_logging()
    found = site_of(site)
    data, gate = gated_release(found)
    return {
        "site": found.name,
        "data_md5": data["md5"],
        "images": gate.get("rows"),
        "studies": gate.get("studies"),
    }


def external_validate(site: str, model: str, recalibrate: bool, register: bool = False) -> dict:
    """Measure `model` on the site's release; the headline numbers and where the report is (no study
    of the site is named in XCom)."""
    from pipelines.external import validate_site

    configure_logging()
    result = validate_site(site, model, recalibrate, register)
    overall = result["comparison"][-1]
    return {
        "site": result["site"],
        "model": result["model"],
        "version": result["version"],
        "data_md5": result["data"]["md5"],
        "study_kappa": overall["kappa"]["site"],
        "study_kappa_ci": overall["kappa"]["site_ci"],
        "valid_study_kappa": overall["kappa"]["valid"],
        "drop_significant": result["drop_significant"],
        "drift": result["drift"]["detected"],
        "mlflow_run_id": result["mlflow_run_id"],
        "report": result["report"],
        "registered_version": (result.get("registered") or {}).get("version"),
    }
