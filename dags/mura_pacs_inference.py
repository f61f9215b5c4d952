"""
### mura_pacs_inference

The champion's answer for every new study of the research PACS, written back where radiologists look:
each study without a report of the served champion is retrieved (DICOMweb WADO-RS), converted by the
one pixel path, answered, and its answer stored in the same study as a DICOM SR (series
`MURA AI (research use) <model> v<version>`). A study of a body part the model does not know is
refused (logged), never guessed. Once per study and model version: a study that has its report is
skipped, so a retry or an overlapping run changes nothing. A study Orthanc does not yet hold as stable
(instances still arriving) waits for the next poll. With params.yaml `pacs.overlays: true` each image
also gets its Grad-CAM++ overlay as a Secondary Capture, stored with the report in one request.

It polls the PACS (QIDO-RS) every 5 minutes rather than being called by it: a poll loses nothing while
Airflow is down, and the PACS needs no Airflow credentials. Paused when created: unpause it once the
stack has a PACS (`MURA_PACS_URL`); trigger it for an immediate pass.
"""

from __future__ import annotations

import pendulum
from airflow.sdk import dag, task

from pipelines.flows.pacs import PACS_DAG


@dag(
    dag_id=PACS_DAG,
    schedule="*/5 * * * *",
    start_date=pendulum.datetime(2026, 1, 1, tz="UTC"),
    catchup=False,
    max_active_runs=1,
    is_paused_upon_creation=True,
    tags=["mura", "pacs"],
    doc_md=__doc__,
    default_args={"retries": 1, "retry_delay": pendulum.duration(seconds=30)},
)
def mura_pacs_inference():
    @task
    def find_new_studies() -> list[str]:
        from pipelines.flows import pacs as flow

        return flow.pacs_new_studies()

    @task
    def answer_studies(study_uids: list[str]) -> dict:
        from pipelines.flows import pacs as flow

        return flow.pacs_answer_studies(study_uids)

    answer_studies(find_new_studies())


mura_pacs_inference()
