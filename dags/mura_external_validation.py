"""
### mura_external_validation

How a registered version does on another hospital's own studies. Import them first with
`mura external import` (de-identified, checked by the data gate, versioned with DVC under
`external/<site>/`); this DAG then checks that the site's release passed the gate (a site that failed
it is not evaluated) and measures the version on it: study-level Cohen's kappa and AUROC with 95 %
bootstrap intervals per study type beside the version's own MURA valid numbers, sensitivity and
specificity at its operating point, calibration, drift of the site's images against the version's
training images, and with `recalibrate` the site's own operating point fitted on part of its patients
(with `register` too, registered as a new version of the same weights: tagged with the site, no
alias, not gated, so it never replaces the original by itself).
Logged to MLflow experiment `mura-external` (tags external.site, external.data_md5, model.name,
model.version) with an HTML report; the version's model card lists it. The same as
`mura external validate --site SITE [--model MODEL] [--recalibrate]`.
"""

from __future__ import annotations

import pendulum
from airflow.sdk import Param, dag, task

from pipelines.flows.external import DEFAULT_CHAMPION, EXTERNAL_DAG, SITE_PATTERN


@dag(
    dag_id=EXTERNAL_DAG,
    schedule=None,
    start_date=pendulum.datetime(2026, 1, 1, tz="UTC"),
    catchup=False,
    tags=["mura", "external-validation"],
    doc_md=__doc__,
    params={
        "site": Param(
            "",
            type="string",
            pattern=SITE_PATTERN,
            title="Site",
            description="imported with `mura external import`",
        ),
        "model": Param(
            DEFAULT_CHAMPION,
            type="string",
            title="Model",
            description="MODEL, MODEL@alias or MODEL/VERSION",
        ),
        "recalibrate": Param(
            False,
            type="boolean",
            title="Recalibrate",
            description="also fit the site's own operating point on part of its patients",
        ),
        "register": Param(
            False,
            type="boolean",
            title="Register the site's operating point",
            description="with Recalibrate: a new version of the same weights, tagged with the site, no alias",
        ),
    },
    default_args={"retries": 1, "retry_delay": pendulum.duration(seconds=30)},
)
def mura_external_validation():
    @task
    def check_gate(params=None) -> dict:
        from pipelines.flows import external as flow

        return flow.external_gate(params["site"])

    @task
    def validate(gate: dict, params=None) -> dict:
        from pipelines.flows import external as flow

        return flow.external_validate(
            gate["site"], params["model"], bool(params["recalibrate"]), bool(params["register"])
        )

    validate(check_gate())


mura_external_validation()
