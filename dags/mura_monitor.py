"""
### mura_monitor

Watch the served model after deploy. Runs daily and whenever a new data version arrives (the data
Asset): pulls the data, builds its manifest, then checks the release against the champion's
training data (image size, aspect, intensity, contrast, colour mode, study-type mix, label balance,
and the champion's own features by a kernel two-sample test; Holm-corrected), sends its labelled
studies to the served champion over gRPC and, in shadow, to the challenger, and logs everything to
MLflow experiment `mura-monitoring` (metrics and an HTML report).

Beyond the thresholds in `params.yaml` (`monitor:`) it emits the Asset
`mura://monitor/retrain-needed`, which schedules `mura_retrain`, once per data version. When the
challenger beats the champion beyond its interval it records a promotion recommendation on the
challenger version; it never promotes by itself.
"""

from __future__ import annotations

import pendulum
from airflow.sdk import Asset, AssetOrTimeSchedule, CronTriggerTimetable, dag, task

from pipelines.flows.monitor import DATA_ASSET_URI, DVC_POOL, MONITOR_DAG, RETRAIN_NEEDED_URI

RETRAIN_NEEDED = Asset(RETRAIN_NEEDED_URI)


@dag(
    dag_id=MONITOR_DAG,
    schedule=AssetOrTimeSchedule(
        timetable=CronTriggerTimetable("0 6 * * *", timezone="UTC"), assets=[Asset(DATA_ASSET_URI)]
    ),
    start_date=pendulum.datetime(2026, 1, 1, tz="UTC"),
    catchup=False,
    max_active_runs=1,
    tags=["mura", "monitoring"],
    doc_md=__doc__,
    # A task that dies before it runs (a worker starting with the stack) gets a second try.
    default_args={"retries": 1, "retry_delay": pendulum.duration(seconds=30)},
)
def mura_monitor():
    @task(pool=DVC_POOL)
    def pull_data() -> dict:
        from pipelines.flows import monitor as flow

        return flow.pull_data().to_xcom()

    @task
    def build_manifest(data_version: dict) -> dict:
        from pipelines.flows import monitor as flow

        return flow.build_manifest(flow.DataVersion.from_xcom(data_version)).to_xcom()

    @task
    def check(manifest: dict) -> dict:
        from airflow.sdk.exceptions import AirflowSkipException

        from pipelines.flows import monitor as flow

        try:
            return flow.monitor(flow.Manifest.from_xcom(manifest)).to_xcom()
        except flow.NothingToMonitor as error:  # no champion yet: nothing to compare with
            raise AirflowSkipException(str(error)) from None

    @task(outlets=[RETRAIN_NEEDED])
    def request_retrain(result: dict) -> str:
        """Emit the retrain Asset only when the check asked for it (a skipped task emits nothing)."""
        from airflow.sdk.exceptions import AirflowSkipException

        if not result["retrain_needed"]:
            raise AirflowSkipException("no retrain needed: " + ("; ".join(result["reasons"]) or "no drift"))
        return "; ".join(result["reasons"])

    request_retrain(check(build_manifest(pull_data())))


mura_monitor()
