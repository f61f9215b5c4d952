"""
### mura_deploy

Reconcile TF Serving with the MLflow registry: for every registered `mura_*` model, publish the
`champion` (label `stable`) and `challenger` (label `canary`) versions into the model base path,
reload the server, wait until they are AVAILABLE, smoke-predict, and roll back on any failure.
Idempotent, so it runs every few minutes; trigger it by hand after moving an alias in the MLflow UI
for an immediate effect (the retrain DAG and the webhook receiver trigger it too).
"""

from __future__ import annotations

import pendulum
from airflow.sdk import dag, task

from pipelines.flows.deploy import DEPLOY_DAG


@dag(
    dag_id=DEPLOY_DAG,
    schedule="*/5 * * * *",
    start_date=pendulum.datetime(2026, 1, 1, tz="UTC"),
    catchup=False,
    max_active_runs=1,
    tags=["mura", "serving"],
    doc_md=__doc__,
    default_args={"retries": 1, "retry_delay": pendulum.duration(seconds=20)},
)
def mura_deploy():
    @task
    def reconcile() -> dict:
        from pipelines.flows import deploy as flow

        return flow.reconcile_serving().to_xcom()

    reconcile()


mura_deploy()
