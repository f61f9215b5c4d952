"""The MLflow server's guard (pipelines/tracking/guard.py): admin-only routes, throttled logins."""

from __future__ import annotations

import asyncio
import base64

import pytest

from pipelines.tracking.guard import (
    FAILURES,
    LOCK_SECONDS,
    AmbiguousLogin,
    Guard,
    LoginThrottle,
    admin_only,
    basic_user,
)


@pytest.mark.parametrize(
    ("path", "only_admin"),
    [
        ("/api/2.0/mlflow/registered-models/delete", True),
        ("/ajax-api/2.0/mlflow/model-versions/delete", True),
        ("/api/3.0/mlflow/users/permissions/grant", True),
        ("/api/2.0/mlflow/users/list", True),
        ("/api/3.0/mlflow/roles/list", True),
        ("/api/2.0/mlflow/registered-models/permissions/create", True),
        ("/api/2.0/mlflow/experiments/permissions/update", True),
        # What the accounts' jobs need stays open: aliases (set and delete), version tags, reads.
        ("/api/2.0/mlflow/registered-models/alias", False),
        ("/api/2.0/mlflow/model-versions/delete-tag", False),
        ("/api/2.0/mlflow/registered-models/get", False),
        ("/api/3.0/mlflow/users/current", False),
        ("/api/3.0/mlflow/users/current/permissions", False),
    ],
)
def test_destroying_and_granting_are_the_admins_alone(path, only_admin):
    assert admin_only(path) is only_admin


def _basic(user: str, password: str = "x") -> bytes:
    return b"Basic " + base64.b64encode(f"{user}:{password}".encode())


def test_the_user_name_is_read_as_mlflow_reads_it():
    def user(*headers: tuple[bytes, bytes], path: str = "/api/2.0/mlflow/runs/get") -> str | None:
        return basic_user(list(headers), path)

    assert user((b"authorization", _basic("reviewer", "a:b"))) == "reviewer"
    assert (
        user((b"Authorization", _basic("viewer")), (b"x-mlflow-authorization", _basic("viewer"))) == "viewer"
    )
    # X-MLflow-Authorization alone counts on MLflow's /gateway/ routes only, as MLflow reads it.
    assert user((b"x-mlflow-authorization", _basic("pipeline"))) is None
    assert user((b"x-mlflow-authorization", _basic("pipeline")), path="/gateway/x") == "pipeline"
    assert [user(*headers) for headers in ([], [(b"authorization", b"Bearer abc")])] == [None, None]


@pytest.mark.parametrize(
    "headers",
    [
        # The bypass: the reviewer's login for MLflow, the admin's name for the guard.
        [(b"authorization", _basic("reviewer", "right")), (b"x-mlflow-authorization", _basic("admin", "x"))],
        [(b"authorization", _basic("viewer")), (b"authorization", _basic("admin"))],
        [(b"x-mlflow-authorization", _basic("admin")), (b"X-MLflow-Authorization", _basic("admin"))],
        # Werkzeug splits on a space only, FastAPI's reader on any white space: two readings.
        [(b"authorization", b"Basic\t" + base64.b64encode(b"admin:x"))],
        # Lenient base64 (FastAPI's reader) against strict (Werkzeug's): junk makes one of them None.
        [(b"authorization", b"Basic " + base64.b64encode(b"admin:x") + b"!")],
    ],
)
def test_a_request_with_two_readings_of_its_login_is_refused(headers):
    with pytest.raises(AmbiguousLogin):
        basic_user(headers, "/api/2.0/mlflow/registered-models/delete")
    assert (
        _send(Guard(_never_called, admin="admin"), "/api/2.0/mlflow/registered-models/delete", headers) == 400
    )


async def _never_called(scope, receive, send):
    raise AssertionError("the guard let the request through to MLflow")


def _send(guard: Guard, path: str, headers: list, body: bytes = b"") -> int:
    """The status the guard answers a request with (before or after the app)."""
    scope = {"type": "http", "path": path, "headers": headers, "client": ("127.0.0.1", 5555)}
    sent = []

    async def send(message):
        sent.append(message)

    async def receive():
        return {"type": "http.request", "body": body, "more_body": False}

    asyncio.run(guard(scope, receive, send))
    return sent[0]["status"]


def test_only_the_pipeline_and_the_admin_register_models():
    guard = Guard(_echo_body, admin="admin")
    create = "/api/2.0/mlflow/registered-models/create"
    statuses = {who: _send(guard, create, [(b"authorization", _basic(who))]) for who in ("pipeline", "admin")}
    assert statuses == {"pipeline": 200, "admin": 200}
    refused = {
        who: _send(Guard(_never_called, admin="admin"), create, [(b"authorization", _basic(who))])
        for who in ("viewer", "reviewer", "deployer")
    }
    assert refused == {"viewer": 403, "reviewer": 403, "deployer": 403}
    for path in ("/ajax-api/2.0/mlflow/upload-artifact", "/api/2.0/mlflow/registered-models/rename"):
        assert (
            _send(Guard(_never_called, admin="admin"), path, [(b"authorization", _basic("reviewer"))]) == 403
        )


received: list[bytes] = []


async def _echo_body(scope, receive, send):
    """MLflow as far as the guard can tell: reads the whole body, answers 200."""
    message = await receive()
    received.append(message.get("body", b""))
    await send({"type": "http.response.start", "status": 200, "headers": []})
    await send({"type": "http.response.body", "body": b""})


@pytest.mark.parametrize(
    ("body", "status"),
    [
        (b'{"name": "x"}', 200),
        (b'{"name": "x", "artifact_location": ""}', 200),
        (b'{"name": "x", "artifact_location": "file:///work/dags"}', 403),
        # Python's JSON reader (MLflow's) keeps the last of two keys: so does the check.
        (b'{"name": "x", "artifact_location": "", "artifact_location": "file:///work/dags"}', 403),
        (b'{"name": "x"' + b" " * (1 << 20) + b"}", 413),
    ],
)
def test_no_account_chooses_where_an_experiment_s_artifacts_go(body, status):
    received.clear()
    login = [(b"authorization", _basic("admin"))]
    assert (
        _send(Guard(_echo_body, admin="admin"), "/api/2.0/mlflow/experiments/create", login, body) == status
    )
    assert received == ([body] if status == 200 else [])  # what MLflow reads is what the guard checked


def test_a_burst_of_logins_after_a_failure_waits_for_the_answers():
    throttle = LoginThrottle(clock=lambda: 0.0)
    key = ("127.0.0.1", "pipeline")
    for _ in range(FAILURES):
        throttle.started(key)
    assert throttle.retry_after(key) == 0  # no failure yet: a busy account is not slowed
    throttle.failed(key)
    assert throttle.retry_after(key) > 0  # one failure and four more on their way: the fifth waits
    for _ in range(FAILURES):
        throttle.finished(key)
    assert throttle.retry_after(key) == 0 and throttle.in_flight == {}


def test_a_lock_follows_the_fifth_wrong_password_in_the_window_and_ends():
    now = [0.0]
    throttle = LoginThrottle(clock=lambda: now[0])
    key = ("127.0.0.1", "pipeline")
    for _ in range(FAILURES - 1):
        throttle.failed(key)
    assert throttle.retry_after(key) == 0  # four are not enough
    throttle.succeeded(key)  # a right password clears them
    for _ in range(FAILURES - 1):
        throttle.failed(key)
    assert throttle.retry_after(key) == 0
    throttle.failed(key)
    assert throttle.retry_after(key) == LOCK_SECONDS
    assert throttle.retry_after(("10.0.0.2", "pipeline")) == 0  # the guesser's address only
    now[0] += LOCK_SECONDS
    assert throttle.retry_after(key) == 0


def _call(guard: Guard, path: str, user: str | None, password: str = "right") -> tuple[int, bool]:
    """(status, whether the account was locked when the answer left)."""
    headers = [(b"authorization", _basic(user, password))] if user else []
    scope = {"type": "http", "path": path, "headers": headers, "client": ("127.0.0.1", 5555)}
    sent = []

    async def send(message):  # with the lock as the client would find it on its next try
        sent.append({**message, "locked": ("127.0.0.1", user or "") in guard.throttle.locked_until})

    async def receive():
        return {"type": "http.request", "body": b""}

    asyncio.run(guard(scope, receive, send))
    return sent[0]["status"], sent[0]["locked"]


def test_the_guard_refuses_before_mlflow_answers_and_counts_what_mlflow_refused():
    reached = []

    async def mlflow_app(scope, receive, send):  # basic-auth: the password decides; /health is open
        reached.append(scope["path"])
        password = base64.b64decode(dict(scope["headers"])[b"authorization"][6:]).decode().split(":")[1]
        await send(
            {
                "type": "http.response.start",
                "status": 200 if password == "right" or scope["path"] == "/health" else 401,
                "headers": [],
            }
        )
        await send({"type": "http.response.body", "body": b""})

    guard = Guard(mlflow_app, admin="admin")
    assert _call(guard, "/api/2.0/mlflow/registered-models/delete", "reviewer")[0] == 403
    assert reached == []  # refused before MLflow's own checks
    assert _call(guard, "/api/2.0/mlflow/registered-models/delete", "admin")[0] == 200
    wrong = [_call(guard, "/api/2.0/mlflow/runs/get", "viewer", "wrong") for _ in range(FAILURES)]
    # Locked by the time the fifth answer leaves (counted after it, a quick next try got in).
    assert wrong == [(401, False)] * (FAILURES - 1) + [(401, True)]
    assert _call(guard, "/api/2.0/mlflow/runs/get", "viewer")[0] == 429  # the right one too, while locked
    assert _call(guard, "/api/2.0/mlflow/runs/get", "pipeline")[0] == 200  # other accounts are not locked
    # An open route answering 200 does not clear a guesser's count (it checks no password).
    for _ in range(FAILURES - 1):
        _call(guard, "/api/2.0/mlflow/runs/get", "deployer", "wrong")
    assert _call(guard, "/health", "deployer", "wrong")[0] == 200
    assert _call(guard, "/api/2.0/mlflow/runs/get", "deployer", "wrong") == (401, True)
