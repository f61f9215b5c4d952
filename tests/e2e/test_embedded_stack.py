"""The embedded stack as a user runs it: `mura up`, a retrain through Airflow's REST API and through the
real UI in headless Chromium, predictions over gRPC, `mura status`, and `mura down` stopping everything."""

from __future__ import annotations

import json
import os
import re
import shutil
import stat
from pathlib import Path

import pytest
import requests

from pipelines.stack.airflow_api import AirflowClient
from tests.support import (
    dicom_identifiers,
    mura,
    outside_of,
    platform_env,
    process_group,
    processes_of,
    versioned_synthetic_project,
)

pytestmark = [pytest.mark.e2e, pytest.mark.slow]
CHROMIUM = "/usr/bin/chromium"
REPO = Path(__file__).resolve().parents[2]
BLOCK_RUNNER = r"""
import contextlib, io, json, sys, traceback
results = {}
for name, code in json.load(sys.stdin).items():
    buffer = io.StringIO()
    try:
        with contextlib.redirect_stdout(buffer):
            exec(compile(code, name, "exec"), {"__name__": "__main__"})
        results[name] = {"ok": True, "stdout": buffer.getvalue()}
    except BaseException:
        results[name] = {"ok": False, "stdout": buffer.getvalue(), "error": traceback.format_exc()}
print(json.dumps(results))
"""
SCREENSHOTS = Path(os.environ.get("MURA_TEST_ARTIFACTS", "test-artifacts"))
RUN_TIMEOUT = 900


@pytest.fixture(scope="module")
def stack(tmp_path_factory):
    """A project copy with versioned synthetic data and its embedded stack up; stopped afterwards."""
    project, home = versioned_synthetic_project(
        tmp_path_factory.mktemp("e2e"), train_patients=120, valid_patients=40, no_quality_floors=True
    )
    # The form's default preset is the suite's tiny one: the module tests the flow, tests/model learning.
    # With a token set at `mura up`, the gateway answers only requests that carry it (made up here).
    env = platform_env(
        project, home, MURA_DEFAULT_PRESET="ci_tiny", MURA_SERVING_TOKEN="made-up-gateway-token"
    )
    pids: list[int] = []
    try:
        report = json.loads(mura(env, "up", "--json", timeout=400).stdout)
        pids = [entry["pid"] for entry in report["services"].values()]
        yield env, report
    finally:
        down = mura(env, "down", "--json", check=False)
        assert down.returncode == 0, down.stderr
        for pid in pids:
            assert (
                not Path(f"/proc/{pid}").exists() or "Z" in Path(f"/proc/{pid}/stat").read_text().split()[2]
            ), f"pid {pid} still runs after mura down"
        assert processes_of(home) == []  # no worker, task or supervisor of the stack left either
        from mura_core.ports import host_port
        from pipelines.stack.processes import port_in_use

        listening = [url for url in _stack_addresses(env) if port_in_use(*host_port(url))]
        assert listening == [], f"still listening after mura down: {listening}"


def _stack_addresses(env) -> list[str]:
    """Every address a service of the stack listens on."""
    from mura_core.settings import get_settings

    settings = get_settings(env)
    replicas = [address for pair in settings.serving_replicas for address in pair]
    return [settings.airflow_url, settings.mlflow_tracking_uri, settings.pacs_url, *replicas] + [
        settings.gateway_grpc,
        settings.gateway_rest,
    ]


def _client(report) -> AirflowClient:
    return AirflowClient(report["urls"]["airflow"], report["airflow_user"], report["airflow_password"])


def test_status_reports_every_service_healthy_and_up_is_idempotent(stack):
    env, report = stack
    assert report["healthy"] and report["airflow_password"]
    assert set(report["services"]) == {
        "mlflow",
        "serving",
        "serving-replica",  # the gateway sends to both and fails over while one restarts
        "gateway",  # nginx is installed (.ci/run): TLS in front of the serving process
        "pacs",  # so is Orthanc: the research PACS
        "airflow-api-server",
        "airflow-execution-api",  # the tasks' API apart from the users' (issue: a stalled trigger)
        "airflow-scheduler",
        "airflow-dag-processor",
        "airflow-triggerer",
    }
    again = json.loads(mura(env, "up", "--json").stdout)
    assert {name: entry["pid"] for name, entry in again["services"].items()} == {
        name: entry["pid"] for name, entry in report["services"].items()
    }
    status = json.loads(mura(env, "status", "--json").stdout)
    assert status["healthy"] and status["urls"]["airflow"] == env["AIRFLOW_URL"]
    # MLflow runs its basic-auth app: no answer without a login; the accounts file is the owner's only.
    search = f"{env['MLFLOW_TRACKING_URI']}/api/2.0/mlflow/experiments/search?max_results=1"
    assert requests.get(search, timeout=10).status_code == 401
    assert requests.get(search, auth=("reviewer", status["mlflow_password"]), timeout=10).ok
    assert stat.S_IMODE(Path(status["mlflow_accounts"]).stat().st_mode) == 0o600
    _every_listening_socket_is_on_loopback(report)
    _each_service_holds_only_its_secrets(env, report)
    # Private from the first byte: the home, its databases (auth.db: every password hash) and logs.
    home = Path(env["MURA_HOME"])
    assert stat.S_IMODE(home.stat().st_mode) == 0o700
    private = [home / "airflow" / "airflow.db", home / "mlflow" / "mlflow.db", home / "mlflow" / "auth.db"]
    private += sorted((home / "logs").glob("*.log"))
    assert {path.name: oct(stat.S_IMODE(path.stat().st_mode)) for path in private} == {
        path.name: "0o600" for path in private
    }


def _loopback(address: str) -> bool:
    import ipaddress

    parsed = ipaddress.ip_address(address.split("%")[0])
    mapped = getattr(parsed, "ipv4_mapped", None)  # ::ffff:127.0.0.1, gRPC's dual-stack socket
    return parsed.is_loopback or bool(mapped and mapped.is_loopback)


def _every_listening_socket_is_on_loopback(report) -> None:
    """Every socket any process of the stack listens on, not only the configured ports: Airflow's log
    servers listened on every interface (8793, 8794). Orthanc is the one exception SECURITY.md names
    (Debian's 1.10 has no bind address; it refuses other hosts itself)."""
    import psutil

    listening = {}
    for name, entry in report["services"].items():
        root = psutil.Process(entry["pid"])
        for process in [root, *root.children(recursive=True)]:
            try:
                connections = process.net_connections(kind="inet")
            except psutil.NoSuchProcess:  # a short-lived child (a task process) gone meanwhile
                continue
            for connection in connections:
                if connection.status == psutil.CONN_LISTEN:
                    listening[(name, connection.laddr.ip, connection.laddr.port)] = process.name()
    exposed = [key for key in listening if not _loopback(key[1]) and key[0] != "pacs"]
    assert listening and not exposed, exposed


def _each_service_holds_only_its_secrets(env, report) -> None:
    """/proc/PID/environ of every process of the stack, the supervisor's included: each secret only
    in the services of its row in SECURITY.md (the MLflow server and serving held Airflow's JWT key
    and the pipeline password; every service held the gateway token the shell had; the scheduler's
    task processes inherited the JWT key)."""
    import psutil

    from pipelines.tracking.accounts import ensure_embedded_accounts

    home = Path(env["MURA_HOME"])
    secrets = {
        **ensure_embedded_accounts(home),  # each MLflow account's password and the UI's CSRF key
        "jwt": (home / "airflow" / "jwt_secret").read_text().strip(),
        "gateway token": env["MURA_SERVING_TOKEN"],
    }
    # Airflow's JWT key is in no environment: the api-server and the scheduler read its file through
    # a command (the scheduler's task processes inherited the key itself).
    rows = {
        "mlflow": {"admin", "flask_secret_key"},
        "airflow-scheduler": {"pipeline"},
        "airflow-triggerer": {"viewer"},
    }
    held: dict[str, set[str]] = {}
    for name, entry in report["services"].items():
        root = psutil.Process(entry["pid"])
        for process in [root, *root.children(recursive=True)]:
            try:
                environ = Path(f"/proc/{process.pid}/environ").read_bytes()
            except OSError:  # a short-lived child gone meanwhile
                continue
            found = {secret for secret, value in secrets.items() if value.encode() in environ}
            held[name] = held.get(name, set()) | found
    supervisor = Path(f"/proc/{(home / 'run' / 'supervisord.pid').read_text().strip()}/environ")
    assert [secret for secret, value in secrets.items() if value.encode() in supervisor.read_bytes()] == []
    # A process that sets its title (Airflow's api-server) overwrites its environ's memory: what each
    # holds is at most its row, and what the supervisor hands each program is exactly its row.
    assert {name: held.get(name, set()) - rows.get(name, set()) for name in report["services"]} == {
        name: set() for name in report["services"]
    }
    config = (home / "run" / "supervisord.conf").read_text().split("[program:")[1:]
    handed = {
        section.split("]", 1)[0]: {secret for secret, value in secrets.items() if value in section}
        for section in config
    }
    assert handed == {name: rows.get(name, set()) for name in report["services"]}
    reads_jwt = {
        section.split("]", 1)[0]
        for section in config
        if f'AIRFLOW__API_AUTH__JWT_SECRET_CMD="cat {home / "airflow" / "jwt_secret"}' in section
    }
    assert reads_jwt == {"airflow-api-server", "airflow-execution-api", "airflow-scheduler"}


def test_up_names_a_port_that_is_already_taken(stack, tmp_path):
    env, _ = stack
    other = {**env, "MURA_HOME": str(tmp_path / "other_home")}  # a second stack wanting the same ports
    result = mura(other, "up", check=False, timeout=120)
    assert result.returncode == 1
    port = env["MLFLOW_TRACKING_URI"].rsplit(":", 1)[1]
    assert f"port {port}" in result.stderr and "already in use" in result.stderr


def test_invalid_params_are_refused_with_the_reason(stack):
    _, report = stack
    with pytest.raises(Exception, match="epochs"):
        _client(report).trigger("mura_retrain", {"epochs": 0})


def test_retrain_command_trains_registers_deploys_and_serves_over_grpc(stack):
    """`mura retrain --wait` triggers through Airflow's REST API, shows task states live and exits with
    the run's state; with approval required (params.yaml's default) the passing version waits as
    challenger until the reviewer promotes it in the Airflow UI, and serving then answers with it."""
    import subprocess
    import sys

    env, report = stack
    before = {run["dag_run_id"] for run in _client(report).runs("mura_retrain")}
    waiting = subprocess.Popen(
        [sys.executable, "-m", "pipelines.cli", "retrain", "--preset", "ci_tiny", "--epochs", "3"]
        + ["--wait", "--json"],
        env=env,
        cwd=env["MURA_REPO_ROOT"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        run_id = _wait_for_new_run(_client(report), before, timeout=120)
        _kill_the_scheduler_during_training(env, report, run_id)
        _the_reviewer_promotes_in_the_airflow_ui(report, run_id)
        stdout, stderr = waiting.communicate(timeout=RUN_TIMEOUT)
    finally:
        waiting.kill()
    result = json.loads(stdout)
    assert result["state"] == "success", result["tasks"]
    # The attempt the killed scheduler took with it was run again, and its try given back: the one
    # retry of the training task is still there for a real error.
    train = _client(report)._call("GET", f"/dags/mura_retrain/dagRuns/{run_id}/taskInstances/train/0")
    assert (train["try_number"], train["max_tries"]) == (2, 2), train
    assert result["conf"] == {"preset": "ci_tiny", "epochs": 3}
    assert (
        result["tasks"]["gate"] == result["tasks"]["approve"] == "success" and "train[0]" in result["tasks"]
    )
    train_states = re.findall(r"^  train\[0\] +(\w+)$", stderr, re.MULTILINE)
    assert "running" in train_states and train_states[-1] == "success", stderr[-2000:]
    assert (
        f"a reviewer decides (Airflow user reviewer): {result['url']}/tasks/approve/required_actions"
        in stderr
    )
    lineage = json.loads(mura(env, "lineage", "mura_binary@champion", "--json").stdout)
    assert lineage["approval"]["decision"] == "promote" and lineage["approval"]["by"] == "reviewer"
    assert lineage["approval"]["dag_run_id"] == run_id
    listed = json.loads(mura(env, "runs", "--airflow", "--json").stdout)
    assert listed[0]["dag_run_id"] == result["dag_run_id"] and listed[0]["state"] == "success"
    models = json.loads(mura(env, "models", "--json").stdout)
    assert [(row["model"], row["version"], row["labels"]) for row in models] == [
        ("mura_binary", 1, ["stable"])
    ]
    assert "champion" in models[0]["aliases"] and models[0]["gate"] == "passed"
    runs = json.loads(mura(env, "runs", "--json").stdout)
    assert models[0]["run_id"] in {run["run_id"] for run in runs}

    from serving.client import ServingClient

    studies = sorted((Path(env["MURA_DATA_DIR"]) / "MURA-v1.1" / "valid").glob("XR_*/patient*/study*"))[:4]
    with ServingClient(env["MURA_SERVING_GRPC"], protocol="grpc") as serving:
        answers = [serving.predict_study(study, model="mura_binary", label="stable") for study in studies]
    assert {answer["version"] for answer in answers} == {1}
    # The same answers through the TLS gateway, which refuses the reload call the reconciler uses.
    urls = report["urls"]
    gateway_login = {"tls_ca": urls["gateway_certificate"], "token": env["MURA_SERVING_TOKEN"]}
    with ServingClient(urls["gateway_grpc"], **gateway_login) as gateway:
        through = [gateway.predict_study(study, model="mura_binary", label="stable") for study in studies]
    assert through == answers
    assert all(0.0 <= answer["abnormal_probability"] <= 1.0 for answer in answers)
    printed = mura(env, "predict", str(studies[0]), "--label", "stable")
    assert printed.stdout.startswith("X-ray of XR_") and "probability" in printed.stdout


@pytest.fixture(scope="module")
def seeded_dicom(tmp_path_factory) -> Path:
    """Where the DICOM test seeds its studies (the external site's test searches for their identifiers)."""
    return tmp_path_factory.mktemp("seeded") / "dicom"


def test_each_serving_process_answers_the_documented_metrics_path(stack):
    """The embedded server answered /monitoring/prometheus/metrics (what infra/prometheus scrapes and the
    docs name) with 400: the stack started it without the monitoring config compose's TF Serving reads."""
    import requests

    env, _ = stack
    first, replica = (
        requests.get(f"http://{env[name]}/monitoring/prometheus/metrics", timeout=30)
        for name in ("MURA_SERVING_REST", "MURA_SERVING_REPLICA_REST")
    )
    assert first.status_code == replica.status_code == 200, (first.text[:200], replica.text[:200])
    assert ":tensorflow:serving:request_count" in first.text  # the retrain test's predictions, counted


def test_dicom_studies_get_the_answers_of_the_pngs_they_were_made_from(stack, seeded_dicom, tmp_path):
    """`mura pacs seed` stores valid studies as DICOM in every way the pixel path reads (rescale,
    window or VOI LUT, MONOCHROME1, lossless syntaxes); `mura predict` on them answers each study as the
    PNGs it was made from, and refuses the body parts the model does not know with the reason."""
    import csv

    from mura_core.settings import get_settings
    from pipelines.pacs.client import PacsClient
    from serving.client import ServingClient

    env, report = stack
    out = seeded_dicom
    seeded = json.loads(mura(env, "pacs", "seed", "--out", str(out), "--studies", "4", "--json").stdout)
    assert seeded["studies"] == 6 and seeded["unknown_body_part"] == 2
    # A user's own folder goes in with `mura pacs push`: a file that is DICOM only in name is skipped
    # and named, the rest stored (there was no documented way in: the DICOM port is off).
    (out / "broken.dcm").write_bytes(b"\0" * 128 + b"DICM" + b"\x02\x00\x10")
    pushed = json.loads(mura(env, "pacs", "push", str(out), "--json").stdout)
    (out / "broken.dcm").unlink()
    assert pushed == {"studies": 6, "instances": seeded["images"], "skipped": ["broken.dcm"], "refused": {}}
    pacs = PacsClient(get_settings(env))
    # Just stored: Orthanc holds them as still arriving (10 s StableAge), which the DAG waits for.
    assert any(pacs.is_stable(study.study_uid) is False for study in pacs.studies())
    overlays = tmp_path / "overlays"
    answered = mura(env, "predict", str(out), "--json", "--explain", str(overlays), check=False)
    assert answered.returncode == 1, answered.stderr  # the two studies of other body parts are refused
    document = json.loads(answered.stdout)
    assert len(document["refused"]) == 2
    images = [image for study in document["studies"] for image in study["images"]]
    assert sorted(path.name for path in overlays.iterdir()) == sorted(Path(i["overlay"]).name for i in images)
    assert all(
        "is not one of the study types the model knows" in item["reason"] for item in document["refused"]
    )
    rows = {row["StudyInstanceUID"]: row for row in csv.DictReader((out / "labels.csv").open())}
    data = Path(env["MURA_DATA_DIR"])
    with ServingClient(env["MURA_SERVING_GRPC"]) as serving:
        for result in document["studies"]:
            row = rows[result["study"]]
            png = serving.predict_study(data / row["source"], model="mura_binary")
            assert result["body_part"] == row["study_type"]
            assert result["abnormal_probability"] == pytest.approx(png["abnormal_probability"], abs=1e-6)
    assert len(document["studies"]) == 4

    # The same studies from the PACS: listed over QIDO-RS, retrieved over WADO-RS, the same answers.
    listed = json.loads(mura(env, "pacs", "studies", "--json").stdout)
    assert {study["study_uid"] for study in listed} == set(rows)
    chest = [study for study in listed if study["body_parts"] == "CHEST"]
    assert (
        len(chest) == 1
        and json.loads(mura(env, "pacs", "studies", "--body-part", "chest", "--json").stdout) == chest
    )
    first = document["studies"][0]
    from_pacs = json.loads(mura(env, "predict", "--pacs", first["study"], "--explain", "--json").stdout)
    assert from_pacs["status"] == "answered" and from_pacs["report"]  # its SR is stored in the study
    assert from_pacs["stored"] == 1 + len(first["images"])  # and one overlay (Secondary Capture) per image
    assert from_pacs["abnormal_probability"] == pytest.approx(first["abnormal_probability"], abs=1e-6)
    _orthanc_explorer_shows_the_results(env, first["study"], document["version"])
    refused = mura(env, "pacs", "predict", chest[0]["study_uid"], check=False)
    assert refused.returncode == 1 and "BodyPartExamined is not one of the study types" in refused.stdout
    assert "CHEST" not in refused.stdout  # the rule is named, the file's value never quoted

    # mura_pacs_inference: every study of a known body part gets one report of the champion, the others
    # none (the study above had its report from `predict --pacs` already, and keeps exactly one).
    from pipelines.pacs.report import series_description

    client = _client(report)
    client.unpause("mura_pacs_inference")
    wanted = series_description("mura_binary", document["version"])
    pacs.wait_until_stable(list(rows))
    run_id = client.trigger("mura_pacs_inference")
    assert client.wait("mura_pacs_inference", run_id, timeout=300) == "success"
    again = json.loads(mura(env, "pacs", "predict", first["study"], "--json").stdout)
    assert again["status"] == "already"  # asked again: the answer, never a second report
    images = {study.study_uid: study.images for study in pacs.studies()}
    for uid, row in rows.items():
        reports = pacs.series_descriptions(uid).count(wanted)
        assert reports == (1 if row["study_type"] else 0), (uid, pacs.series_descriptions(uid))
        overlaid = int(row["images"]) if uid == first["study"] else 0
        assert images[uid] == int(row["images"]) + reports + overlaid  # one SR instance, never two
    ledger = Path(env["MURA_HOME"]) / "pacs_inference" / f"refused-mura_binary-v{document['version']}.json"
    assert len(json.loads(ledger.read_text())) == 2  # a refused study is asked once, not at every poll
    _assert_no_patient_identifier_left_the_pacs(env, out)


def _orthanc_explorer_shows_the_results(env, study_uid: str, version: int) -> None:
    """Where a radiologist looks: Orthanc's own explorer lists the report and the overlay series in
    the study, and the first overlay renders as an image."""
    import requests
    from playwright.sync_api import sync_playwright

    from mura_core.settings import get_settings
    from pipelines.pacs.orthanc import admin_credentials, credentials
    from pipelines.pacs.report import overlay_series_description, series_description

    settings = get_settings(env)
    user, password = admin_credentials(settings)  # people's login: the platform's cannot open the explorer
    root = settings.pacs_url.removesuffix("/").removesuffix("/dicom-web")
    found = requests.post(f"{root}/tools/lookup", data=study_uid, auth=(user, password), timeout=30).json()
    study = next(item["ID"] for item in found if item["Type"] == "Study")
    _platform_login_keeps_to_its_routes(root, credentials(settings), study)
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    with sync_playwright() as playwright:
        browser = _chromium(playwright)
        context = browser.new_context(
            http_credentials={"username": user, "password": password}, viewport={"width": 1200, "height": 900}
        )
        page = context.new_page()
        page.goto(f"{root}/app/explorer.html#study?uuid={study}")
        listed = page.locator("#list-series")
        listed.get_by_text(overlay_series_description("mura_binary", version)).wait_for(timeout=30_000)
        shown = listed.inner_text()
        page.screenshot(path=str(SCREENSHOTS / "orthanc_study_with_results.png"), full_page=True)
        series = context.request.get(f"{root}/studies/{study}/series").json()
        overlay = next(
            item
            for item in series
            if item["MainDicomTags"].get("SeriesDescription")
            == overlay_series_description("mura_binary", version)
        )
        preview = context.request.get(f"{root}/instances/{overlay['Instances'][0]}/preview")
        assert preview.ok and preview.body().startswith(b"\x89PNG")
        browser.close()
    assert series_description("mura_binary", version) in shown and "SR" in shown


def _platform_login_keeps_to_its_routes(root: str, login: tuple[str, str], study: str) -> None:
    """The platform's PACS login (which every worker holds) deletes nothing, adds no outbound peer and
    reaches no route past the DICOMweb prefix, while it still reads what it needs."""
    import requests

    def status(method: str, path: str, body: str | None = None) -> int:
        return requests.request(method, f"{root}{path}", data=body, auth=login, timeout=30).status_code

    assert status("GET", f"/studies/{study}") == 200 and status("GET", "/dicom-web/studies") == 200
    assert status("DELETE", f"/studies/{study}") == 403
    assert status("PUT", "/modalities/outside", '{"AET": "X", "Host": "192.0.2.1", "Port": 104}') == 403
    assert status("PUT", "/dicom-web/servers/outside", '{"Url": "http://192.0.2.1/"}') == 403
    assert status("GET", "/dicom-web/studies/../../patients") == 403 and status("GET", "/patients") == 403
    assert status("GET", f"/studies/{study}") == 200  # still there


def _chromium(playwright):
    if not shutil.which(CHROMIUM) and not Path(CHROMIUM).exists():
        pytest.fail(
            "Chromium is missing for the browser tests: run `apt-get install chromium` (Debian), then make test"
        )
    return playwright.chromium.launch(
        executable_path=CHROMIUM,
        args=[
            "--no-sandbox",
            "--disable-gpu",
            "--disable-background-networking",
            "--disable-component-update",
            "--disable-sync",
        ],
    )


def _assert_no_patient_identifier_left_the_pacs(env, *seeded: Path) -> None:
    """The made-up names, IDs, birth dates and accession numbers of the seeded studies appear in no file
    under MURA_HOME but the PACS' own and the site's key to its pseudonyms (MLflow store, tags and
    artifacts, Airflow's database with its XComs, every task log, DVC's remote, serving), nor in the
    project (the external release, DVC's cache), after the studies went through predict, the PACS, the
    DAGs, an external import and validation."""
    identifiers = dicom_identifiers(*seeded)
    # Whole tokens only: a birth date's digits may sit inside a longer number of a metrics file.
    alternatives = "|".join(re.escape(value) for value in sorted(identifiers))
    pattern = re.compile(f"(?<![0-9A-Za-z])(?:{alternatives})(?![0-9A-Za-z])".encode())
    home, project = Path(env["MURA_HOME"]), Path(env["MURA_REPO_ROOT"])
    key = home / "secrets" / "pseudonyms-e2e-site.json"
    assert not key.exists() or pattern.search(
        key.read_bytes()
    )  # the key holds them (the search finds them)...
    leaks = [
        str(path)
        for root in (home, project / "external", project / ".dvc")
        for path in root.rglob("*")
        if path.is_file()
        and not path.is_relative_to(home / "pacs")
        and path != key  # ...and is the one place outside the PACS that may
        and pattern.search(path.read_bytes())
    ]
    assert len(identifiers) >= 12 and not leaks, leaks


def test_the_retrain_is_traceable_registered_once_and_a_second_deploy_changes_nothing(stack):
    """Reads the run of the test above: one lineage query names the DAG run, the GX result, the data
    version and the served files' hash; registering the run again reuses its version; mura_deploy
    with nothing to do writes nothing."""
    env, report = stack
    client = _client(report)
    lineage = json.loads(mura(env, "lineage", "mura_binary@champion", "--json").stdout)
    assert client.run("mura_retrain", lineage["airflow"]["dag_run_id"])["state"] == "success"
    assert 0.0 < lineage["evaluation"]["study_kappa"] <= 1.0 and lineage["evaluation"]["study_auroc"]
    assert lineage["validation"]["success"] == "True" and lineage["validation"]["docs"].startswith("file://")
    assert lineage["data"]["versioned"] == "true" and lineage["training"]["code_dirty"] == "false"
    assert json.loads(lineage["training"]["overrides"]) == {"architectures": ["baseline_cnn"], "epochs": 3}
    data_dvc = Path(env["MURA_REPO_ROOT"]) / "data.dvc"
    assert (
        lineage["data"]["md5"] == lineage["data"]["dvc_md5"]
        and lineage["data"]["md5"] in data_dvc.read_text()
    )
    assert lineage["serving"]["labels"] == ["stable"] and lineage["serving"]["hash_matches"] is True
    reverse = json.loads(mura(env, "lineage", "--data", "HEAD", "--json").stdout)
    assert [(item["model"], item["version"]) for item in reverse["versions"]] == [("mura_binary", 1)]
    assert reverse["served"] is True

    again = json.loads(mura(env, "register", lineage["training"]["run_id"], "--json").stdout)
    assert (again["version"], again["reused"], again["gate"]["repeated"]) == (1, True, True)
    listed = json.loads(mura(env, "models", "--json").stdout)
    assert [(row["model"], row["version"]) for row in listed] == [("mura_binary", 1)]

    config = Path(env["MURA_MODEL_BASE_PATH"]) / "models.config"
    before = (config.read_bytes(), config.stat().st_mtime_ns)
    run_id = client.trigger("mura_deploy")
    assert client.wait("mura_deploy", run_id, timeout=300) == "success"
    assert (config.read_bytes(), config.stat().st_mtime_ns) == before


def test_an_external_site_imported_from_the_pacs_is_validated_through_the_dag(
    stack, seeded_dicom, tmp_path, monkeypatch
):
    """Another "hospital": its own made-up patients' studies stored in the PACS, imported de-identified
    from it, versioned with DVC, measured by the DAG mura_external_validation (the site's operating
    point registered as a new version too). The studies were made from valid studies the champion was
    evaluated on, so each study's score must equal that evaluation's: DICOM, the PACS,
    de-identification and the pixel path change nothing the model sees. Then no made-up identifier of
    this test's or the DICOM test's studies is anywhere but in the PACS and the site's key."""
    import csv

    import mlflow
    import pandas as pd

    from mura_core.contracts import EXTERNAL_DATA_TAG, EXTERNAL_EXPERIMENT, EXTERNAL_SITE_TAG

    env, report = stack
    client = _client(report)
    version = json.loads(mura(env, "lineage", "mura_binary@champion", "--json").stdout)["version"]
    site = tmp_path / "site"
    mura(env, "pacs", "seed", "--out", str(site), "--studies", "12", "--seed", "8", "--push", "--json")
    labels = site / "labels.csv"
    imported = mura(
        env, "external", "import", "--pacs", "--labels", str(labels), "--site", "e2e-site", "--json"
    )
    result = json.loads(imported.stdout)
    assert result["studies"] == 12 and len(result["refused"]) == 2 and result["gate"]["success"]
    project = Path(env["MURA_REPO_ROOT"])
    assert result["dvc_file"] == "external/e2e-site.dvc" and (project / result["dvc_file"]).is_file()
    pseudonyms = Path(env["MURA_HOME"]) / "secrets" / "pseudonyms-e2e-site.json"
    assert stat.S_IMODE(pseudonyms.stat().st_mode) == 0o600

    client.unpause("mura_external_validation")
    with pytest.raises(Exception, match="site"):  # the form's pattern: never a path as a site
        client.trigger("mura_external_validation", {"site": "../data"})
    conf = {"site": "e2e-site", "recalibrate": True, "register": True}
    run_id = client.trigger("mura_external_validation", conf)
    assert client.wait("mura_external_validation", run_id, timeout=300) == "success"

    from pipelines.tracking.accounts import account

    for name, value in account("viewer", Path(env["MURA_HOME"]), environ={}).environment().items():
        monkeypatch.setenv(name, value)
    tracking = mlflow.MlflowClient(env["MLFLOW_TRACKING_URI"])
    experiment = tracking.get_experiment_by_name(EXTERNAL_EXPERIMENT)
    (run,) = tracking.search_runs([experiment.experiment_id], f"tags.`{EXTERNAL_SITE_TAG}` = 'e2e-site'")
    assert (
        run.data.tags["model.version"] == str(version)
        and run.data.tags[EXTERNAL_DATA_TAG] == result["data_md5"]
    )
    assert run.data.metrics["external.studies"] == 12 and "recalibrated.after.study_kappa" in run.data.metrics
    # The site's operating point is a new version of the same weights, never the champion by itself.
    made = tracking.get_model_version("mura_binary", run.data.tags["external.registered_version"])
    assert made.tags["external.site"] == "e2e-site" and made.tags["gate.status"] == "not_gated"
    assert made.aliases == [] and tracking.get_registered_model("mura_binary").aliases["champion"] == str(
        version
    )
    folder = Path(tracking.download_artifacts(run.info.run_id, "report", str(tmp_path / "report")))
    assert "External validation of mura_binary" in (folder / "external_validation.html").read_text()
    scored = pd.read_csv(folder / "predictions.csv").groupby("study_id")["raw_probability"].mean()
    champion_run = run.data.tags["model.run_id"]
    evaluated = pd.read_csv(
        tracking.download_artifacts(champion_run, "evaluation/predictions.csv", str(tmp_path))
    )
    expected = evaluated.groupby("study_id")["raw_probability"].mean()
    sources = {row["StudyInstanceUID"]: row["source"] for row in csv.DictReader(labels.open())}
    key = json.loads(pseudonyms.read_text())["studies"]
    for uid, (patient, number) in key.items():
        part = sources[uid].split("/")[2]
        source = sources[uid].split("/", 2)[2].rsplit("_", 1)[0]  # XR_PART/patientNNNNN/studyN
        assert scored[f"{part}/patient{patient:05d}/study{number}"] == pytest.approx(
            expected[source], abs=1e-5
        )
    card = tracking.download_artifacts(champion_run, f"model_card/v{version}/card.md", str(tmp_path / "card"))
    assert "| e2e-site | 12 |" in Path(card).read_text()  # the card lists the external validation
    _assert_no_patient_identifier_left_the_pacs(env, seeded_dicom, site)


def test_every_block_of_the_clients_guide_answers_as_the_platform_client_does(stack, tmp_path):
    """docs/CLIENTS.md cannot go stale: each of its code blocks runs against the served champion (plain
    gRPC, TLS + token through the gateway, REST with b64, the error codes), and each answer equals the
    platform's own client's; the signature it quotes is `saved_model_cli show`'s output."""
    import subprocess
    import sys

    from serving.client import ServingClient
    from tests.doc_blocks import blocks

    env, report = stack
    urls = report["urls"]
    study = sorted((Path(env["MURA_DATA_DIR"]) / "MURA-v1.1" / "valid").glob("XR_*/patient*/study*"))[0]
    served = json.loads(mura(env, "lineage", "mura_binary@champion", "--json").stdout)["version"]
    block_env = {
        **env,
        "STUDY": str(study),
        "MODEL_DIR": str(Path(env["MURA_MODEL_BASE_PATH"]) / "mura_binary" / str(served)),
        "MURA_SERVING_TLS_CA": urls["gateway_certificate"],
        "MURA_GATEWAY_GRPC": urls["gateway_grpc"],
        "MURA_GATEWAY_REST": urls["gateway_rest"].removeprefix("https://"),
    }
    with ServingClient(env["MURA_SERVING_GRPC"]) as client:
        expected = client.predict_study(study, model="mura_binary", label="stable")

    outputs, checked, python_blocks = {}, [], {}
    for block in blocks(REPO / "docs" / "CLIENTS.md"):
        assert block.kind, f"docs/CLIENTS.md line {block.line}: a block no test runs (mark it run: or check:)"
        if block.kind == "check":
            shown = subprocess.run(
                ["bash", "-c", block.name], env=block_env, capture_output=True, text=True, check=True
            )
            assert _lines(shown.stdout) == _lines(block.code), f"line {block.line}: {block.name}"
            checked.append(block.name)
            continue
        if block.name == "study-formula":  # a function: applied to the outputs the platform's client got
            namespace: dict = {}
            exec(block.code, namespace)
            images = expected["images"]
            raw = [image["raw_probability"] for image in images]
            probability, label = namespace["study_answer"](
                raw, images[0]["study_calibration"], expected["threshold"]
            )
            assert (label, probability) == (
                expected["label"],
                pytest.approx(expected["abnormal_probability"]),
            )
            checked.append(block.name)
            continue
        if block.language == "python":
            python_blocks[block.name] = block.code
            continue
        result = subprocess.run(
            ["bash", "-euo", "pipefail", "-c", block.code],
            env=block_env, cwd=tmp_path, capture_output=True, text=True, timeout=120,
        )  # fmt: skip
        assert result.returncode == 0, f"{block.name} (line {block.line}): {result.stderr[-2000:]}"
        outputs[block.name] = result.stdout.strip()
    # The Python blocks run as scripts, one after another in one interpreter (TensorFlow, which the
    # official stubs import, loads once): each in a namespace of its own, its stdout its output.
    ran = subprocess.run(
        [sys.executable, "-c", BLOCK_RUNNER], input=json.dumps(python_blocks), env=block_env, cwd=tmp_path,
        capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    assert ran.returncode == 0, ran.stderr[-2000:]
    for name, result in json.loads(ran.stdout.strip().splitlines()[-1]).items():
        assert result["ok"], f"{name}: {result['error'][-2000:]}"
        outputs[name] = result["stdout"].strip()

    assert set(outputs) == {
        "grpc-official",
        "grpc-tls-token",
        "platform-client",
        "rest-b64",
        "rest-gateway",
        "errors",
    }
    assert len(checked) == 2
    answer = f"{expected['label']} {expected['abnormal_probability']:.4f} version {expected['version']}"
    assert outputs["grpc-official"] == answer and outputs["platform-client"] == answer
    raw = [round(image["raw_probability"], 4) for image in expected["images"]]
    assert outputs["grpc-tls-token"] == f"raw_probability {raw}"
    rest = json.loads(outputs["rest-b64"])["predictions"][0]
    assert rest["abnormal_probability"] == pytest.approx(
        expected["images"][0]["abnormal_probability"], abs=1e-5
    )
    assert json.loads(outputs["rest-gateway"])["predictions"][0] == rest
    assert outputs["errors"].splitlines() == [
        "no token: UNAUTHENTICATED",
        "unknown model: NOT_FOUND",
        "not an image: INVALID_ARGUMENT",
    ]


def _lines(text: str) -> list[str]:
    # Graph node names are TensorFlow's choice and may be numbered differently by another export.
    text = re.sub(r"StatefulPartitionedCall(_\d+)?:", "StatefulPartitionedCall:", text)
    return [line.rstrip() for line in text.strip().splitlines()]


def test_browser_login_and_trigger_through_the_form(stack):
    """The UI's form starts a run with its defaults and the scheduler runs it; the retrain's outcome is the
    one `mura retrain --wait` above checked (one full retrain per module), so this run is stopped once
    its first task has succeeded."""
    from playwright.sync_api import sync_playwright

    env, report = stack
    client = _client(report)
    before = {run["dag_run_id"] for run in client.runs("mura_retrain")}
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    with sync_playwright() as playwright:
        browser = _chromium(playwright)
        page = browser.new_page(viewport={"width": 1400, "height": 900})
        page.goto(f"{report['urls']['airflow']}/dags/mura_retrain")
        page.fill("input[name=username]", report["airflow_user"])
        page.fill("input[name=password]", report["airflow_password"])
        page.keyboard.press("Enter")
        page.get_by_role("button", name="Trigger").first.click()
        dialog = page.get_by_role("dialog")
        dialog.get_by_text("Run Parameters").wait_for()
        dialog.get_by_role("button", name="Trigger").click()
        run_id = _wait_for_new_run(client, before)
        started = _wait_for_task(client, run_id, "pull_data")
        page.goto(f"{report['urls']['airflow']}/dags/mura_retrain/runs/{run_id}")
        page.get_by_text(run_id).first.wait_for()
        page.screenshot(path=str(SCREENSHOTS / "airflow_ui_triggered_run.png"), full_page=True)
        browser.close()
    client.stop("mura_retrain", run_id)
    assert client.run("mura_retrain", run_id)["conf"]["preset"] == "ci_tiny"  # the form's default
    assert started == "success", client.task_states("mura_retrain", run_id)


def _the_reviewer_promotes_in_the_airflow_ui(report, run_id: str) -> None:
    """The question waits for the reviewer only (the admin is refused over the REST API); the reviewer
    opens the task's Required Action, reads the evidence and clicks the promote option."""
    import time

    from playwright.sync_api import sync_playwright

    from mura_core.contracts import PROMOTE_OPTION
    from pipelines.stack.airflow_api import AirflowError

    admin = _client(report)
    deadline = time.monotonic() + RUN_TIMEOUT
    while admin.task_states("mura_retrain", run_id).get("approve") != "deferred":
        states = admin.task_states("mura_retrain", run_id)
        assert "failed" not in states.values() and time.monotonic() < deadline, states
        time.sleep(3)
    asked = time.monotonic()
    question = admin.approval("mura_retrain", run_id)
    assert question["subject"] == "Promote mura_binary v1 to champion?", question["subject"]
    assert "study kappa [95 % CI]" in question["body"] and question["assigned_users"] == [
        {"id": "reviewer", "name": "reviewer"}
    ]
    with pytest.raises(AirflowError, match="403.*not a respondent"):
        admin.respond("mura_retrain", run_id, PROMOTE_OPTION)
    url = f"{report['urls']['airflow']}/dags/mura_retrain/runs/{run_id}/tasks/approve/required_actions"
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    with sync_playwright() as playwright:
        browser = _chromium(playwright)
        page = browser.new_page(viewport={"width": 1400, "height": 1000})
        page.goto(url)
        page.fill("input[name=username]", report["airflow_reviewer"])
        page.fill("input[name=password]", report["airflow_reviewer_password"])
        page.keyboard.press("Enter")
        kappa = re.search(r"\| \*\*v1\*\* \(this version\) \| ([0-9.-]+ \[[0-9., -]+\])", question["body"])
        assert kappa, question["body"]
        page.get_by_text(kappa.group(1)).first.wait_for(timeout=60_000)  # the interval, as the body says
        page.screenshot(path=str(SCREENSHOTS / "airflow_ui_approval.png"), full_page=True)
        # Not within seconds of the question, as a person reading it: an answer that fast can reach the
        # scheduler before the executor's report that the step deferred, and Airflow fails the step.
        time.sleep(max(0.0, 15 - (time.monotonic() - asked)))
        page.get_by_role("button", name=PROMOTE_OPTION).click()
        deadline = time.monotonic() + 60
        while admin.approval("mura_retrain", run_id)["responded_by_user"] is None:
            assert time.monotonic() < deadline, "the click did not answer the question"
            time.sleep(1)
        browser.close()
    assert admin.approval("mura_retrain", run_id)["chosen_options"] == [PROMOTE_OPTION]


def _kill_the_scheduler_during_training(env, report, run_id: str) -> None:
    """kill -9 the scheduler once train[0] has saved its first epoch (Keras' BackupAndRestore writes
    training_metadata.json at an epoch's end): the supervisor restarts it, its reaper kills the attempt
    that ran under the old one, and the new scheduler schedules the task again, which resumes there."""
    import signal
    import time

    client = _client(report)
    deadline = time.monotonic() + RUN_TIMEOUT
    saved = Path(env["MURA_HOME"]) / "training"
    scheduler = json.loads(mura(env, "status", "--json").stdout)["services"]["airflow-scheduler"]
    while not list(saved.glob("*/backup_*/training_metadata.json")):
        states = client.task_states("mura_retrain", run_id)
        assert time.monotonic() < deadline and states.get("train[0]") != "success", states
        time.sleep(0.5)
    os.kill(scheduler["pid"], signal.SIGKILL)


def _wait_for_task(client: AirflowClient, run_id: str, task_id: str, timeout: float = 300.0) -> str:
    """The state of `task_id` in the run once it is done (success, failed, ...) or the last one seen."""
    import time

    deadline, state = time.monotonic() + timeout, "none"
    while time.monotonic() < deadline:
        state = client.task_states("mura_retrain", run_id).get(task_id, "none")
        if state in ("success", "failed", "upstream_failed", "skipped"):
            return state
        time.sleep(2)
    return state


def _wait_for_new_run(client: AirflowClient, before: set[str], timeout: float = 60.0) -> str:
    import time

    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        runs = client.runs("mura_retrain")
        new = [run["dag_run_id"] for run in runs if run["dag_run_id"] not in before]
        if new:
            return new[0]
        time.sleep(1)
    raise AssertionError("the UI's Trigger button created no run")


def test_signed_webhook_delivery_triggers_the_deploy_dag(stack, monkeypatch):
    import time
    import uuid

    import requests

    from pipelines.deployment.webhook import (
        DELIVERY_HEADER,
        SIGNATURE_HEADER,
        TIMESTAMP_HEADER,
        WebhookReceiver,
        sign,
    )
    from pipelines.stack.airflow_api import trigger_dag_action

    env, report = stack
    for key in ("AIRFLOW_URL", "MURA_HOME", "MURA_REPO_ROOT"):
        monkeypatch.setenv(key, env[key])
    client = _client(report)
    before = {run["dag_run_id"] for run in client.runs("mura_deploy")}
    receiver = WebhookReceiver("e2e-secret", action=trigger_dag_action("mura_deploy"), port=0).start()
    try:
        body = json.dumps(
            {
                "entity": "model_version_alias",
                "action": "created",
                "data": {"name": "mura_binary", "alias": "champion", "version": "1"},
            }
        ).encode()
        delivery, stamp = str(uuid.uuid4()), str(int(time.time()))
        headers = {
            DELIVERY_HEADER: delivery,
            TIMESTAMP_HEADER: stamp,
            SIGNATURE_HEADER: sign("e2e-secret", delivery, stamp, body),
            "Content-Type": "application/json",
        }
        assert requests.post(receiver.url, data=body, headers=headers, timeout=10).status_code in (200, 202)
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline and not _webhook_runs(client, before):
            time.sleep(1)
    finally:
        receiver.stop()
    triggered = _webhook_runs(client, before)
    assert triggered, "no mura_deploy run was triggered by the delivery"
    assert triggered[0]["conf"]["webhook"]["data"]["alias"] == "champion"


def _webhook_runs(client: AirflowClient, before: set[str]) -> list[dict]:
    return [
        run
        for run in client.runs("mura_deploy")
        if run["dag_run_id"] not in before and "webhook" in (run.get("conf") or {})
    ]


def test_a_drifted_release_pushed_with_dvc_makes_the_monitor_ask_mura_retrain_to_run(stack, monkeypatch):
    """`mura data push` announces the new data version (the data Asset); mura_monitor finds it drifted from
    the champion's training data and emits the retrain Asset, which starts mura_retrain. That retrain is
    left running: the backup test after it copies the stack mid-training."""
    import time

    import mlflow

    env, report = stack
    client = _client(report)
    for run in client.runs("mura_retrain"):  # the browser test's run: its dvc pull would race ours
        if run["state"] in ("queued", "running"):
            client.stop("mura_retrain", run["dag_run_id"])
    _wait_until_idle(client, ("mura_retrain", "mura_monitor"))
    before = {run["dag_run_id"] for run in client.runs("mura_retrain")}
    earlier_checks = {run["dag_run_id"] for run in client.runs("mura_monitor")}
    synth = ["data", "synth", "--out", env["MURA_DATA_DIR"], "--seed", "31", "--shift", "brightness"]
    mura(env, *synth, "--train-patients", "120", "--valid-patients", "40", timeout=300)
    client.unpause("mura_monitor")
    pushed = json.loads(mura(env, "data", "push", "--json", timeout=300).stdout)
    assert pushed["announced"].startswith("announced to Airflow"), pushed["announced"]

    deadline, asked, retrain = time.monotonic() + RUN_TIMEOUT, [], []
    while time.monotonic() < deadline and not (asked and retrain):
        for run in client.runs("mura_monitor"):
            if run["dag_run_id"] in earlier_checks:
                continue  # runs of the earlier tests' data versions
            states = client.task_states("mura_monitor", run["dag_run_id"])
            assert run["state"] != "failed", states
            if states.get("request_retrain") == "success":
                asked.append(run["dag_run_id"])
        retrain = [run for run in client.runs("mura_retrain") if run["dag_run_id"] not in before]
        time.sleep(3)
    assert asked, "no mura_monitor run asked for a retrain"
    assert retrain and retrain[0]["run_type"] == "asset_triggered", retrain
    client.stop("mura_retrain", retrain[0]["dag_run_id"])  # started is what counts: free the cores

    from pipelines.tracking.accounts import account

    viewer = account("viewer", Path(env["MURA_HOME"]), environ={})
    for name, value in viewer.environment().items():
        monkeypatch.setenv(name, value)
    tracking = mlflow.MlflowClient(env["MLFLOW_TRACKING_URI"])
    experiment = tracking.get_experiment_by_name("mura-monitoring")
    found = tracking.search_runs([experiment.experiment_id], "tags.`monitor.retrain_requested` = 'true'")
    assert len(found) == 1 and "mean_intensity" in found[0].data.tags["monitor.reasons"]


def test_chaos_each_service_killed_once_under_load_comes_back_and_no_request_is_lost(stack):
    """Chaos, kill -9 as the OOM killer would, of every supervised service once while 8 clients
    predict through the gateway (retrying UNAVAILABLE once, as gRPC clients do): each comes back
    healthy with a new pid and its restart counted, nothing of its old process group is left (the
    supervisor's reaper kills what a dead service left, e.g. MLflow's worker holding its port), and
    every process of the stack runs under the supervisor. Serving is killed one replica at a time:
    no client request fails (the gateway sends a call a killed replica dropped to the other one), and
    every answer comes from the same version."""
    from serving.client import ServingClient

    env, report = stack
    before = _services(env)
    with ServingClient(env["MURA_SERVING_GRPC"]) as client:
        version = client.predict_images([_sample_image()], model="mura_binary")[0]["version"]
    others = sorted(set(before) - {"serving", "serving-replica", "gateway"})
    with _GatewayLoad(report, env, clients=8) as load:
        for wave in (["serving"], ["serving-replica"], others, ["gateway"]):  # a wave's kills at once
            load.phase = "gateway" if wave == ["gateway"] else "others"
            _kill_and_wait(env, before, wave)
    lost = [failure for failure in load.failures if failure[0] != "gateway"]
    assert lost == [] and load.answers, lost[:3]
    assert set(load.answers) == {version}
    after = _services(env)
    assert {name: after[name]["restarts"] - before[name]["restarts"] for name in before} == {
        name: 1 for name in before
    }
    supervisor = int((Path(env["MURA_HOME"]) / "run" / "supervisord.pid").read_text())
    assert outside_of(Path(env["MURA_HOME"]), supervisor) == []
    with ServingClient(env["MURA_SERVING_GRPC"]) as client:
        assert client.predict_images([_sample_image()], model="mura_binary")[0]["version"] == version


def _sample_image() -> bytes:
    from serving.samples import sample_png

    return sample_png(30, 30)


def _services(env) -> dict:
    return json.loads(mura(env, "status", "--json", check=False).stdout)["services"]


def _kill_and_wait(env, before: dict, names: list[str]) -> None:
    """kill -9 each of `names`, then wait until each is healthy again with a new pid and nothing of
    its old process group is left."""
    import signal
    import time

    killed = {}
    for name in names:
        pid = _services(env)[name]["pid"]
        assert process_group(pid), name  # a group to leave nothing of
        os.kill(pid, signal.SIGKILL)
        killed[name] = pid
    deadline = time.monotonic() + 180
    waiting = dict(killed)
    while waiting:
        now = _services(env)
        for name, pid in list(waiting.items()):
            if now[name]["healthy"] and now[name]["pid"] not in (None, pid):
                assert now[name]["state"] == "RUNNING", now[name]
                del waiting[name]
        assert time.monotonic() < deadline, {name: now[name] for name in waiting}
        time.sleep(0.5)
    assert {name: process_group(pid) for name, pid in killed.items()} == {name: [] for name in killed}


class _GatewayLoad:
    """Clients predicting through the TLS gateway in a bounded loop, each retrying UNAVAILABLE once;
    the versions that answered, and (phase, error) of each request that failed."""

    def __init__(self, report, env, clients: int):
        self.options = {
            "tls_ca": report["urls"]["gateway_certificate"],
            "token": env["MURA_SERVING_TOKEN"],
            "timeout": 20,
        }
        self.target, self.clients = report["urls"]["gateway_grpc"], clients
        self.answers: list[int] = []
        self.failures: list[tuple[str, str]] = []
        self.phase = "start"
        self._stop = None
        self._threads: list = []

    def _loop(self) -> None:
        import time

        from serving.client import ServingClient, ServingClientError

        with ServingClient(self.target, **self.options) as client:
            while not self._stop.is_set():
                for attempt in range(2):
                    try:
                        self.answers.append(
                            client.predict_images([_sample_image()], model="mura_binary")[0]["version"]
                        )
                        break
                    except ServingClientError as error:
                        if error.code != "UNAVAILABLE" or attempt == 1:
                            self.failures.append((self.phase, str(error)))
                            break
                        time.sleep(0.2)
                self._stop.wait(0.05)  # bounded: about 20 requests a second per client at most

    def __enter__(self):
        import threading

        self._stop = threading.Event()
        self._threads = [threading.Thread(target=self._loop, daemon=True) for _ in range(self.clients)]
        for thread in self._threads:
            thread.start()
        return self

    def __exit__(self, *exc_info):
        self._stop.set()
        for thread in self._threads:
            thread.join(timeout=60)


def test_a_backup_brings_back_registry_aliases_serving_and_dag_history_after_a_wipe(stack, tmp_path):
    """docs/OPERATIONS.md's embedded restore, last of the module: `mura backup` of the running stack
    (the monitor's retrain just stopped, the PACS paused for its index), `mura down`, MURA_HOME
    wiped, `mura restore`; the restored state holds the same versions, aliases, served versions and
    DAG runs, and its model base the champion's files with the hash the registry recorded (read from
    the restored stores: no service of the stack runs)."""
    import sqlite3

    env, report = stack
    models = json.loads(mura(env, "models", "--json").stdout)
    history = {run["dag_run_id"] for run in _client(report).runs("mura_retrain")}
    archive = tmp_path / "state.tar.gz"
    written = json.loads(mura(env, "backup", "--out", str(archive), "--json").stdout)
    assert written["databases"] >= 3  # MLflow's store and logins, Airflow's, the PACS' index
    assert stat.S_IMODE(archive.stat().st_mode) == 0o600

    mura(env, "down")
    home = Path(env["MURA_HOME"])
    shutil.rmtree(home)
    restored = json.loads(mura(env, "restore", str(archive), "--json").stdout)
    assert restored["restored"] == [str(home)] and restored["moved_aside"] == []

    offline = {**env, "MLFLOW_TRACKING_URI": ""}  # the restored SQLite store itself
    assert json.loads(mura(offline, "models", "--json").stdout) == models
    with sqlite3.connect(home / "airflow" / "airflow.db") as database:
        runs = {
            row[0] for row in database.execute("SELECT run_id FROM dag_run WHERE dag_id = 'mura_retrain'")
        }
    assert history <= runs
    # What serves: the restored model base holds the champion's files, the hash the registry recorded.
    lineage = json.loads(mura(offline, "lineage", "mura_binary@champion", "--json").stdout)
    champion = next(row["version"] for row in models if "champion" in row["aliases"])
    assert lineage["version"] == champion and lineage["serving"]["labels"] == ["stable"]
    assert lineage["serving"]["hash_matches"] is True


def _wait_until_idle(client: AirflowClient, dag_ids: tuple[str, ...]) -> None:
    import time

    deadline = time.monotonic() + RUN_TIMEOUT
    while time.monotonic() < deadline:
        active = [run for dag in dag_ids for run in client.runs(dag) if run["state"] in ("queued", "running")]
        if not active:
            return
        time.sleep(3)
    raise AssertionError(f"runs still active after {RUN_TIMEOUT} s: {active}")
