"""`make demo`: the whole loop on one machine, from synthetic data to predictions over gRPC.

Synthetic MURA -> DVC push -> `mura up` -> trigger `mura_retrain` through Airflow's REST API
(progress shown until the run ends) -> reconcile serving -> predict a few valid studies over gRPC.
"""

from __future__ import annotations

import sys
import time
from pathlib import Path

from mura_core.config import load_config
from mura_core.contracts import CHAMPION, DEFAULT_MODEL, GATE_REASON_TAG, STABLE
from mura_core.errors import MuraError
from mura_core.settings import get_settings

STUDIES_TO_PREDICT = 6


def _step(text: str) -> None:
    print(f"\n==> {text}", flush=True)


def _print_progress(states: dict[str, str]) -> None:
    line = "  ".join(f"{task}={state}" for task, state in states.items())
    print(f"    [{time.strftime('%H:%M:%S')}] {line}", flush=True)


def _valid_studies(data_root: Path, count: int) -> list[Path]:
    """A few valid studies across study types, abnormal and normal ones alternating."""
    by_label: dict[bool, dict[str, list[Path]]] = {True: {}, False: {}}
    for study in sorted((data_root / "MURA-v1.1" / "valid").glob("XR_*/patient*/study*")):
        by_label[study.name.endswith("positive")].setdefault(study.parent.parent.name, []).append(study)
    chosen: list[Path] = []
    parts = sorted(set(by_label[True]) | set(by_label[False]))
    for index, part in enumerate(parts * 2):
        studies = by_label[index % 2 == 0].get(part, [])
        if studies and len(chosen) < count:
            chosen.append(studies[index // len(parts) % len(studies)])
    return chosen


def _require_champion(model: str) -> None:
    """MuraError with the gate's reason when the run left no champion to serve (e.g. uncommitted code)."""
    from pipelines.tracking import connect

    client = connect()
    if client.get_registered_model(model).aliases.get(CHAMPION) is not None:
        return
    versions = client.search_model_versions(f"name='{model}'")
    latest = max(versions, key=lambda version: int(version.version))
    raise MuraError(
        f"{model} v{latest.version} did not become champion: {latest.tags.get(GATE_REASON_TAG, 'no gate verdict')}"
    )


def _monitor_summary(model: str) -> str:
    """The newest monitor check of `model`, as `mura monitor` prints it."""
    from mlflow.environment_variables import MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR

    from pipelines.monitoring import latest_check, summary
    from pipelines.tracking import connect

    MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR.set(False)  # the demo prints its own lines
    check = latest_check(connect(), model)
    return (
        "    (no check was logged)"
        if check is None
        else "\n".join(f"    {line}" for line in summary(check).splitlines())
    )


def _run_dag(client, settings, dag_id: str) -> None:
    """Unpause, trigger and follow one DAG run; a run that does not succeed ends the demo."""
    client.unpause(dag_id)
    run = client.trigger(dag_id)
    state = client.wait(dag_id, run, on_change=_print_progress)
    if state != "success":
        raise MuraError(f"{dag_id} run {run} ended {state}; open {settings.airflow_url}/dags/{dag_id}")


def _pacs_demo(client, settings, urls: dict) -> None:
    """A few synthetic DICOM studies into the research PACS, answered by mura_pacs_inference, the
    answer stored in each study as a DICOM SR; where to see it in Orthanc."""
    from pipelines.dicom import write_studies
    from pipelines.pacs import PacsClient, push_folder

    _step("DICOM studies into the research PACS; mura_pacs_inference writes the answers back (DICOM SR)")
    seeded = write_studies(settings.data_dir, settings.mura_home / "pacs" / "seed", limit=3)
    pacs = PacsClient(settings)
    pushed = push_folder(pacs, settings.mura_home / "pacs" / "seed")
    print(
        f"    {pushed['instances']} instances of {pushed['studies']} studies stored ({seeded['unknown_body_part']} of body parts the model refuses)"
    )
    pacs.wait_until_stable([study.study_uid for study in pacs.studies()])  # the DAG takes complete ones
    _run_dag(client, settings, "mura_pacs_inference")
    print(
        f"    Orthanc: {urls['pacs_explorer']} (people's login: admin_user and admin_password in {urls['pacs_credentials']}): each study's series "
        "'MURA AI (research use) mura_binary v<N>' holds the model's report"
    )


READING_SECONDS = 15


def _approve_as_reviewer(client, settings, report: dict, run_id: str) -> None:
    """Follow the run to its approval step and answer it as the Airflow user `reviewer` over the REST
    API (what a reviewer does in the UI under Required actions); nothing to do when no question came
    (the version failed the gate)."""
    from mura_core.contracts import APPROVE_TASK, PROMOTE_OPTION
    from pipelines.stack import AirflowClient, api_server_log

    previous: dict[str, str] = {}
    while True:
        states = client.task_states("mura_retrain", run_id)
        if states != previous:
            _print_progress(states)
            previous = states
        if states.get(APPROVE_TASK) in ("deferred", "awaiting_input"):
            break
        if client.run("mura_retrain", run_id)["state"] in ("success", "failed"):
            return
        time.sleep(3)
    question = client.approval("mura_retrain", run_id)
    page = f"{settings.airflow_url}/dags/mura_retrain/runs/{run_id}/tasks/{APPROVE_TASK}/required_actions"
    print(f"    the question waits for the reviewer: {question['subject']}\n    {page}")
    # As a person takes time to read: an answer within seconds of the question can reach the scheduler
    # before the executor's report that the step deferred, and Airflow then fails the resumed step.
    time.sleep(READING_SECONDS)
    reviewer = AirflowClient(
        settings.airflow_url,
        report["airflow_reviewer"],
        report["airflow_reviewer_password"],
        log_path=api_server_log(settings),
    )
    reviewer.respond("mura_retrain", run_id, PROMOTE_OPTION)
    print(f"    answered as {report['airflow_reviewer']} over the REST API: {PROMOTE_OPTION}")


def _version_synthetic_data(settings) -> None:
    """Generate the synthetic MURA into the data folder and version it with DVC."""
    from pipelines.data import dvc, generate_synthetic

    synth = load_config().data.synth
    _step(f"Synthetic MURA into {settings.data_dir} (seed {synth.seed})")
    summary = generate_synthetic(settings.data_dir, synth.seed, synth.train_patients, synth.valid_patients)
    print(f"    {summary['images']} images, {summary['studies']} studies, {summary['patients']} patients")
    _step("Version it with DVC (dvc add + push to the local remote)")
    version = dvc.add_and_push()
    print(f"    data.dvc md5 {version['dvc_md5']} pushed to {settings.dvc_local_remote}")


def _retrain_with_reviewer(settings, report: dict):
    """Trigger mura_retrain with approval required, answer its question as the reviewer and follow
    the run to its end; return the Airflow client, logged in as the stack's user."""
    from pipelines.stack import AirflowClient, api_server_log

    _step("Trigger mura_retrain through Airflow's REST API (approval required: a reviewer decides)")
    client = AirflowClient(
        settings.airflow_url,
        report["airflow_user"],
        report["airflow_password"],
        log_path=api_server_log(settings),
    )
    client.unpause("mura_retrain")
    run_id = client.trigger("mura_retrain", {"preset": settings.default_preset, "approval": "required"})
    print(f"    run {run_id}")
    _approve_as_reviewer(client, settings, report, run_id)
    state = client.wait("mura_retrain", run_id, on_change=_print_progress)
    if state != "success":
        raise MuraError(
            f"mura_retrain run {run_id} ended {state}; open {settings.airflow_url}/dags/mura_retrain "
            f"for the task logs"
        )
    return client


def _predict_valid_studies(settings) -> None:
    """Predict a few valid studies over gRPC (label stable), each printed beside the radiologists' label."""
    _step("Predict valid studies over gRPC (label stable)")
    from serving import ServingClient

    with ServingClient(protocol="grpc") as serving:
        for study in _valid_studies(settings.data_dir, STUDIES_TO_PREDICT):
            result = serving.predict_study(study, model=DEFAULT_MODEL, label=STABLE)
            truth = "abnormal" if study.name.endswith("positive") else "normal"
            print(
                f"    X-ray of {result['body_part']} is {result['label']}. (p={result['abnormal_probability']:.3f},"
                f" radiologists: {truth}, version {result['version']})  {study.relative_to(settings.data_dir)}"
            )


def _print_where_to_look(urls: dict, report: dict) -> None:
    """The stack's UIs and logins, and the commands to try next."""
    print(
        f"    Airflow UI  {urls['airflow']}  (user {report['airflow_user']}, password {report['airflow_password']}; "
        f"approvals: user {report['airflow_reviewer']}, password {report['airflow_reviewer_password']})"
    )
    print(
        f"    MLflow UI   {urls['mlflow']}  (experiment 'mura', model 'mura_binary'; checks in 'mura-monitoring')"
    )
    print(
        f"                user {report['mlflow_user']}, password {report['mlflow_password']} (may promote); "
        f"every account: {report['mlflow_accounts']}"
    )
    print(f"    Serving     gRPC {urls['serving_grpc']}  REST {urls['serving_rest']}/v1/models/mura_binary")
    print("    Predict     .venv/bin/mura predict data/MURA-v1.1/valid/<PART>/<patient>/<study>/")
    print(
        "    Monitor     .venv/bin/mura monitor   (drift and live kappa; `mura data synth --shift ...` drifts)"
    )
    print("    Stop        .venv/bin/mura down")


def run_demo() -> int:
    """Run every step; return the exit code."""
    from pipelines.stack import status, up
    from pipelines.tracking import DEPLOYER, use_account

    started = time.monotonic()
    settings = get_settings()
    _version_synthetic_data(settings)
    _step("Start the embedded stack (MLflow, serving, Airflow)")
    report = up()
    # MLFLOW_TRACKING_URI may name the stack's own server (to move it off port 5000): the demo's
    # registry steps (read the champion, reconcile serving) then act with the stack's deployer login.
    use_account(DEPLOYER, settings.mlflow_tracking_uri)
    client = _retrain_with_reviewer(settings, report)
    _require_champion(DEFAULT_MODEL)
    _step("Reconcile serving with the registry (mura deploy)")
    from pipelines.deployment import reconcile

    print("    " + reconcile().describe().replace("\n", "\n    "))
    _predict_valid_studies(settings)
    _step("Monitor the release against the champion (DAG mura_monitor: drift, live kappa over gRPC)")
    _run_dag(client, settings, "mura_monitor")
    print(_monitor_summary(DEFAULT_MODEL))
    urls = status()["urls"]
    if "pacs" in urls:
        _pacs_demo(client, settings, urls)
    _step(f"Done in {time.monotonic() - started:.0f} s. Where to look:")
    _print_where_to_look(urls, report)
    return 0


def main() -> int:
    """Entry point of `python -m pipelines.demo`."""
    try:
        return run_demo()
    except MuraError as error:
        print(f"demo failed: {error}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
