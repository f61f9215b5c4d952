"""MLflow with its basic-auth app and the platform's guard, as the embedded stack runs it: who may read,
register, promote, destroy and grant, and how many wrong passwords it takes."""

from __future__ import annotations

import json
import stat

import pytest
import requests

from tests.support import mura

MODEL = "mura_binary"


@pytest.fixture(scope="module")
def auth_server(tmp_path_factory):
    """A real `mlflow server --app-name mura-auth` with the platform's accounts provisioned, and one
    registered version made by the `pipeline` account."""
    import mlflow

    from pipelines.tracking.accounts import PIPELINE, account, ensure_embedded_accounts, provision
    from pipelines.tracking.server import start_tracking_server

    home = tmp_path_factory.mktemp("auth_home")
    server = start_tracking_server(home, basic_auth=True)
    patch = pytest.MonkeyPatch()
    try:
        first = provision(server.uri, ensure_embedded_accounts(home))
        again = provision(server.uri, ensure_embedded_accounts(home))
        for name, value in account(PIPELINE, home, environ={}).environment().items():
            patch.setenv(name, value)
        client = mlflow.MlflowClient(server.uri, registry_uri=server.uri)
        run = client.create_run(client.create_experiment("mura"))
        client.set_terminated(run.info.run_id)
        client.create_registered_model(MODEL)
        client.create_model_version(MODEL, f"runs:/{run.info.run_id}/tf_serving", run.info.run_id)
        client.set_registered_model_alias(MODEL, "challenger", "1")
        patch.delenv("MLFLOW_TRACKING_USERNAME")
        patch.delenv("MLFLOW_TRACKING_PASSWORD")
        yield {"uri": server.uri, "home": home, "provisioned": (first, again)}
    finally:
        patch.undo()
        server.stop()


def _client_as(role: str, server: dict, monkeypatch):
    import mlflow

    from pipelines.tracking.accounts import account

    for name, value in account(role, server["home"], environ={}).environment().items():
        monkeypatch.setenv(name, value)
    return mlflow.MlflowClient(server["uri"], registry_uri=server["uri"])


def _env(server: dict, project, **extra: str) -> dict:
    import os

    env = {key: value for key, value in os.environ.items() if not key.startswith("MLFLOW_TRACKING_USER")}
    env.pop("MLFLOW_TRACKING_PASSWORD", None)
    return {
        **env,
        "MURA_HOME": str(server["home"]),
        "MURA_REPO_ROOT": str(project),
        "MLFLOW_TRACKING_URI": server["uri"],
        **extra,
    }


def test_provisioning_is_idempotent_and_the_passwords_are_private(auth_server):
    from pipelines.tracking.accounts import accounts_file

    first, again = auth_server["provisioned"]
    assert "user reviewer created" in first and "deployer: EDIT on registered_model_version *" in first
    assert again == []
    path = accounts_file(auth_server["home"])
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert set(json.loads(path.read_text())) >= {"admin", "pipeline", "reviewer", "deployer", "viewer"}


def test_anonymous_requests_and_wrong_passwords_get_401(auth_server):
    search = f"{auth_server['uri']}/api/2.0/mlflow/registered-models/search"
    assert requests.get(search, timeout=10).status_code == 401
    assert requests.get(search, auth=("viewer", "wrong"), timeout=10).status_code == 401
    assert requests.get(f"{auth_server['uri']}/health", timeout=10).status_code == 200  # probes stay open


def test_a_viewer_reads_but_cannot_move_an_alias(auth_server, monkeypatch):
    from mlflow.exceptions import MlflowException

    client = _client_as("viewer", auth_server, monkeypatch)
    assert client.get_registered_model(MODEL).aliases == {"challenger": "1"}
    with pytest.raises(MlflowException, match="403"):
        client.set_registered_model_alias(MODEL, "champion", "1")


def test_the_deployer_tags_what_it_deployed_but_cannot_promote(auth_server, monkeypatch):
    from mlflow.exceptions import MlflowException

    from pipelines.deployment.reconciler import Reconciler

    client = _client_as("deployer", auth_server, monkeypatch)
    with pytest.raises(MlflowException, match="403"):
        client.set_registered_model_alias(MODEL, "champion", "1")
    with pytest.raises(MlflowException, match="403"):
        client.delete_registered_model_alias(MODEL, "challenger")
    # The reconciler's record: version tags written, the model-level history left to other accounts.
    changes = Reconciler(client, options=None, target=None)._record(MODEL, {"canary": 1})
    assert changes == ["v1 -> canary"]
    assert client.get_model_version(MODEL, "1").tags["serving.label"] == "canary"


def test_a_refusal_names_the_account_and_what_to_do(auth_server, monkeypatch):
    from mura_core.errors import RegistryError
    from pipelines.registry.promotion import promote

    client = _client_as("viewer", auth_server, monkeypatch)
    with pytest.raises(RegistryError, match="account 'viewer' may not do this.*needs `reviewer`"):
        promote(MODEL, 1, force=True, reason="test", client=client)
    monkeypatch.setenv("MLFLOW_TRACKING_PASSWORD", "wrong")
    with pytest.raises(RegistryError, match="refused the login of 'viewer'.*HTTP 401"):
        promote(MODEL, 1, force=True, reason="test", client=client)


def test_mura_promote_acts_as_reviewer_and_records_who(auth_server, tmp_path, monkeypatch):
    from pipelines.views.lineage import version_lineage

    env = _env(auth_server, tmp_path)
    done = json.loads(mura(env, "promote", MODEL, "1", "--force", "--reason", "test", "--json").stdout)
    assert done["alias"] == "champion" and done["version"] == 1
    lineage = version_lineage(f"{MODEL}/1", _client_as("viewer", auth_server, monkeypatch))
    assert "champion" in lineage["aliases"]
    assert lineage["gate"]["forced_by"] == "reviewer"
    assert lineage["alias_history"][-1]["by"] == "reviewer"


def _password(server: dict, role: str) -> str:
    from pipelines.tracking.accounts import account

    return account(role, server["home"], environ={}).password


def test_only_the_admin_deletes_models_or_grants_and_lists_accounts(auth_server, monkeypatch):
    """The reviewer and the pipeline hold MANAGE (MLflow's price for moving aliases): with it, the
    reviewer deleted a registered model (200) and both passed the grant route's check. The guard
    answers 403 to both, and to a viewer listing the accounts; the admin still can."""
    from pipelines.tracking.accounts import ADMIN, PIPELINE, REVIEWER, VIEWER, account

    uri, home = auth_server["uri"], auth_server["home"]

    def login(role: str) -> tuple[str, str]:
        found = account(role, home, environ={})
        return found.username, found.password

    grant = {"username": "viewer", "resource_type": "registered_model", "resource_id": MODEL}
    for role in (REVIEWER, PIPELINE):
        deleted = requests.delete(
            f"{uri}/api/2.0/mlflow/registered-models/delete",
            json={"name": MODEL},
            auth=login(role),
            timeout=10,
        )
        granted = requests.post(
            f"{uri}/api/3.0/mlflow/users/permissions/grant", json={**grant, "permission": "MANAGE"},
            auth=login(role), timeout=10,
        )  # fmt: skip
        assert (deleted.status_code, granted.status_code) == (403, 403), role
        assert "only the admin account" in deleted.json()["message"]
    assert requests.get(f"{uri}/api/2.0/mlflow/users/list", auth=login(VIEWER), timeout=10).status_code == 403
    client = _client_as(REVIEWER, auth_server, monkeypatch)
    assert client.get_registered_model(MODEL).aliases  # the model and its aliases are all still there
    assert requests.get(f"{uri}/api/2.0/mlflow/users/list", auth=login(ADMIN), timeout=10).ok


# What each account can do on the registry (SECURITY.md's matrix), in the order the test tries it.
ACTIONS = (
    "read",
    "set alias",
    "set version tag",
    "delete alias",
    "create experiment",
    "create model",
    "list users",
    "grant permission",
    "delete version",
    "delete model",
)
MATRIX = {
    "admin": set(ACTIONS),
    "pipeline": {"read", "set alias", "set version tag", "delete alias", "create experiment", "create model"},
    "reviewer": {"read", "set alias", "set version tag", "delete alias", "create experiment"},
    "deployer": {"read", "set version tag", "create experiment"},
    "viewer": {"read", "create experiment"},
}


def _attempts(client, uri: str, model: str, login) -> dict:
    """Each action of ACTIONS on `model`, as the account of `client` and `login`."""
    grant = {"username": "viewer", "resource_type": "registered_model", "resource_id": model}
    auth = (login.username, login.password)
    return {
        "read": lambda: client.get_registered_model(model),
        "set alias": lambda: client.set_registered_model_alias(model, "champion", "1"),
        "set version tag": lambda: client.set_model_version_tag(model, "1", "matrix", login.username),
        "delete alias": lambda: client.delete_registered_model_alias(model, "challenger"),
        "create experiment": lambda: client.create_experiment(f"matrix-{login.username}"),
        "create model": lambda: client.create_registered_model(f"{model}_own"),
        "list users": lambda: requests.get(
            f"{uri}/api/2.0/mlflow/users/list", auth=auth, timeout=10
        ).raise_for_status(),
        "grant permission": lambda: requests.post(
            f"{uri}/api/3.0/mlflow/users/permissions/grant",
            json={**grant, "permission": "READ"},
            auth=auth,
            timeout=10,
        ).raise_for_status(),  # fmt: skip
        "delete version": lambda: client.delete_model_version(model, "1"),
        "delete model": lambda: client.delete_registered_model(model),
    }


def test_each_account_can_do_what_the_matrix_says_and_nothing_more(auth_server, monkeypatch):
    """Every account tries every action on a model of its own (made by the admin, with a version
    and the alias `challenger`): what it was allowed is exactly its row of SECURITY.md's matrix."""
    from mlflow.exceptions import MlflowException

    from pipelines.tracking.accounts import ADMIN, account

    uri, home = auth_server["uri"], auth_server["home"]
    done = {}
    for role in MATRIX:
        admin = _client_as(ADMIN, auth_server, monkeypatch)
        model = f"mura_matrix_{role}"
        run = admin.create_run(admin.get_experiment_by_name("mura").experiment_id).info.run_id
        admin.create_registered_model(model)
        admin.create_model_version(model, f"runs:/{run}/tf_serving", run)
        admin.set_registered_model_alias(model, "challenger", "1")
        attempts = _attempts(
            _client_as(role, auth_server, monkeypatch), uri, model, account(role, home, environ={})
        )
        done[role] = set()
        for action in ACTIONS:
            try:
                attempts[action]()
            except (MlflowException, requests.HTTPError) as error:
                assert "403" in str(error) or "PERMISSION_DENIED" in str(error), (role, action, error)
                continue
            done[role].add(action)
    assert done == MATRIX


def test_no_login_makes_the_server_write_outside_its_artifact_root(auth_server, tmp_path):
    """The attack: an experiment whose artifact_location is a folder of the attacker's choice (the DAG
    folder), a run in it, and the UI's upload route. Refused at both steps, for the admin's login too
    where a location is chosen; a run's artifacts go through the server to its one root."""
    from pipelines.tracking.accounts import ADMIN, VIEWER, account

    uri, home = auth_server["uri"], auth_server["home"]
    viewer, admin = (account(role, home, environ={}) for role in (VIEWER, ADMIN))
    target = tmp_path / "dags"
    target.mkdir()
    create = f"{uri}/api/2.0/mlflow/experiments/create"
    for who in (viewer, admin):
        chosen = {"name": f"own-{who.username}", "artifact_location": target.as_uri()}
        refused = requests.post(create, json=chosen, auth=(who.username, who.password), timeout=10)
        assert refused.status_code == 403 and "artifact_location" in refused.json()["message"]
    login = (viewer.username, viewer.password)
    made = requests.post(create, json={"name": "own-viewer"}, auth=login, timeout=10)
    assert made.ok, made.text
    runs = f"{uri}/api/2.0/mlflow/runs/create"
    run = requests.post(runs, json={"experiment_id": made.json()["experiment_id"]}, auth=login, timeout=10)
    info = run.json()["run"]["info"]
    assert info["artifact_uri"].startswith("mlflow-artifacts:/")  # the server's root, never a client's
    upload = requests.post(
        f"{uri}/ajax-api/2.0/mlflow/upload-artifact", params={"run_uuid": info["run_id"], "path": "x.py"},
        data=b"print('owned')", auth=login, timeout=10,
    )  # fmt: skip
    assert upload.status_code == 403
    assert list(target.iterdir()) == []


def test_a_second_login_header_does_not_borrow_the_admin_s_rights(auth_server, monkeypatch):
    """The reviewer's login for MLflow and the admin's name in X-MLflow-Authorization for the guard
    deleted a model before; now the request is refused as ambiguous and the model stays."""
    import base64

    from pipelines.tracking.accounts import REVIEWER, account

    uri, home = auth_server["uri"], auth_server["home"]
    reviewer = account(REVIEWER, home, environ={})
    forged = "Basic " + base64.b64encode(b"admin:anything").decode()
    deleted = requests.delete(
        f"{uri}/api/2.0/mlflow/registered-models/delete", json={"name": MODEL},
        auth=(reviewer.username, reviewer.password), headers={"X-MLflow-Authorization": forged}, timeout=10,
    )  # fmt: skip
    assert deleted.status_code == 400 and "send one login" in deleted.json()["message"]
    assert _client_as(REVIEWER, auth_server, monkeypatch).get_registered_model(MODEL).aliases


def test_a_password_changed_through_the_api_is_refused_at_once(auth_server):
    """MLflow trusts a right password it checked for a minute (auth_cache_ttl_seconds): a password
    changed through its API must not stay usable for that minute."""
    from pipelines.tracking.accounts import ADMIN, VIEWER, account

    uri, home = auth_server["uri"], auth_server["home"]
    search = f"{uri}/api/2.0/mlflow/registered-models/search"
    viewer, admin = account(VIEWER, home, environ={}), account(ADMIN, home, environ={})
    assert requests.get(search, auth=(viewer.username, viewer.password), timeout=10).ok  # now cached
    change = f"{uri}/api/2.0/mlflow/users/update-password"
    login = (admin.username, admin.password)
    new = {"username": viewer.username, "password": "a-new-made-up-password"}
    assert requests.patch(change, json=new, auth=login, timeout=10).ok
    try:
        assert requests.get(search, auth=(viewer.username, viewer.password), timeout=10).status_code == 401
        assert requests.get(search, auth=(viewer.username, new["password"]), timeout=10).ok
    finally:
        back = {"username": viewer.username, "password": viewer.password}
        assert requests.patch(change, json=back, auth=login, timeout=10).ok


def test_wrong_passwords_lock_the_account_from_that_address_for_a_minute(auth_server):
    """Last of the module (it locks `deployer`): 10 wrong passwords took 1.1 s and were all answered
    401; now the sixth try, with the right password, gets 429 and says when to retry."""
    from pipelines.tracking.accounts import DEPLOYER, VIEWER, account

    uri, home = auth_server["uri"], auth_server["home"]
    search = f"{uri}/api/2.0/mlflow/registered-models/search"
    deployer = account(DEPLOYER, home, environ={})
    wrong = [
        requests.get(search, auth=(deployer.username, f"guess-{n}"), timeout=10).status_code for n in range(5)
    ]
    assert wrong == [401] * 5
    locked = requests.get(search, auth=(deployer.username, deployer.password), timeout=10)
    assert locked.status_code == 429 and int(locked.headers["Retry-After"]) > 0, locked.text
    viewer = account(VIEWER, home, environ={})
    assert requests.get(search, auth=(viewer.username, viewer.password), timeout=10).ok  # others unlocked
