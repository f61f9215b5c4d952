"""`mlflow server --app-name mura-auth`: MLflow's basic-auth app with the rules it lacks.

1. Only the admin destroys, grants or writes files through the UI. MLflow's permissions are coarse:
   moving and deleting an alias needs MANAGE on the registered model (the pipeline and the reviewer
   must move aliases), and MANAGE also deletes or renames the model and grants permissions on it to
   anyone. Those routes, every user and role route except a caller's own, and the UI's upload route
   (it writes into a run's artifact folder) answer 403 to any account but the admin, before MLflow's
   own checks run.
2. Only the pipeline and the admin create registered models: MLflow gives a model's creator MANAGE,
   so any login could otherwise make a `mura_*` model of its own and point `champion` at it.
3. No client chooses where artifacts go: creating an experiment with an `artifact_location` is
   refused to every account (the server stores artifacts under its one artifact root), so no login
   can make the server write files elsewhere.
4. The guard judges the login MLflow will use: Flask's routes read `Authorization` (Werkzeug's
   parser), the /gateway/ routes `X-MLflow-Authorization` first. A request whose logins could be
   read two ways (a header twice, the two headers disagreeing, a value the two parsers read apart)
   is refused with 400.
5. Failed logins are throttled: after FAILURES wrong passwords for one account from one address
   within WINDOW_SECONDS, every login of that account from that address gets 429 for LOCK_SECONDS,
   the right password included (else the answer would tell a guesser when it guessed right). The
   address is the connection's (the server runs with FORWARDED_ALLOW_IPS empty: no X-Forwarded-For).

The counts live in the server process (the embedded stack runs one worker): a restart forgets them.
"""

from __future__ import annotations

import base64
import binascii
import json
import re
import threading
import time
from collections import deque

FAILURES = 5
WINDOW_SECONDS = 60.0
LOCK_SECONDS = 60.0
PIPELINE = "pipeline"  # pipelines.tracking.accounts.PIPELINE (not imported: the server loads this alone)
CHECKED_PREFIXES = ("/api/", "/ajax-api/", "/gateway/")  # the routes whose 2xx means a checked login
# A caller's own user record and permissions stay open to every account.
OWN_ROUTES = re.compile(r"/mlflow/users/current(/permissions)?$")
ADMIN_ONLY = re.compile(
    r"/mlflow/(users|roles)/"  # list, create, change or delete accounts and roles, grant and revoke
    r"|/permissions/"  # experiment and registered-model permissions
    r"|/mlflow/(registered-models|model-versions)/delete$"  # a model or a version, with its files
    r"|/mlflow/registered-models/rename$"  # a rename moves the model away from its permissions
    r"|/mlflow/upload-artifact$"  # the UI's upload: writes into a run's artifact folder
)
CREATES_MODEL = re.compile(r"/mlflow/registered-models/create$")
CREATES_EXPERIMENT = re.compile(r"/mlflow/experiments/create$")
MAX_CHECKED_BODY = 1 << 20  # an experiment's create request is a few hundred bytes


def admin_only(path: str) -> bool:
    """True for a route only the admin may call (see the module's rule 1)."""
    return bool(ADMIN_ONLY.search(path)) and not OWN_ROUTES.search(path)


class AmbiguousLogin(ValueError):
    """A request whose login could be read as two different accounts."""


def _flask_user(header: bytes | None) -> str | None:
    """The user Flask's routes authenticate: Werkzeug's own parser over the WSGI (latin-1) value."""
    from werkzeug.datastructures import Authorization

    parsed = Authorization.from_header(header.decode("latin-1")) if header else None
    return parsed.username if parsed is not None and parsed.type == "basic" else None


def _asgi_user(header: bytes | None) -> str | None:
    """The user MLflow's FastAPI routes authenticate (mlflow.server.auth._authenticate_fastapi_request)."""
    parts = header.split() if header else []
    if len(parts) != 2 or parts[0].lower() != b"basic":
        return None
    try:
        decoded = base64.b64decode(parts[1]).decode("ascii")
    except (binascii.Error, UnicodeDecodeError):
        return None
    return decoded.partition(":")[0]


def basic_user(headers: list, path: str = "/") -> str | None:
    """The user name MLflow will authenticate this request as (None without a Basic login).

    AmbiguousLogin when the request names more than one: a login header twice, `Authorization` and
    `X-MLflow-Authorization` with different values, or a value MLflow's two parsers read apart.
    """
    found: dict[bytes, bytes] = {}
    for name, value in headers or []:
        name = name.lower()
        if name in (b"authorization", b"x-mlflow-authorization"):
            if name in found:
                raise AmbiguousLogin(f"the {name.decode()} header is given twice")
            found[name] = value
    plain, dedicated = found.get(b"authorization"), found.get(b"x-mlflow-authorization")
    if plain and dedicated and plain != dedicated:
        raise AmbiguousLogin("Authorization and X-MLflow-Authorization name different logins")
    if path.startswith("/gateway/"):  # FastAPI's routes alone, which read the dedicated header first
        users = {_asgi_user(dedicated or plain)}
    else:  # Flask's routes and FastAPI's others read Authorization: both parsers must agree
        users = {_flask_user(plain), _asgi_user(plain)}
    if len(users) > 1:
        raise AmbiguousLogin("the Authorization header reads as different logins to MLflow's parsers")
    return users.pop()


class LoginThrottle:
    """Wrong passwords per (address, account): locked for LOCK_SECONDS after FAILURES in WINDOW_SECONDS.
    Once a key has a failure, its logins in flight count too (a burst sent at once is not FAILURES
    times faster)."""

    def __init__(self, clock=time.monotonic):
        self.clock = clock
        self.failures: dict[tuple[str, str], deque[float]] = {}
        self.locked_until: dict[tuple[str, str], float] = {}
        self.in_flight: dict[tuple[str, str], int] = {}
        self.lock = threading.Lock()

    def _recent(self, key: tuple[str, str], now: float) -> int:
        recent = self.failures.get(key)
        while recent and recent[0] <= now - WINDOW_SECONDS:
            recent.popleft()
        if not recent:
            self.failures.pop(key, None)  # the tables hold only keys with something to remember
            return 0
        return len(recent)

    def retry_after(self, key: tuple[str, str]) -> float:
        """Seconds until the key may try again (0: now)."""
        with self.lock:
            now = self.clock()
            locked = self.locked_until.get(key, 0.0) - now
            if locked > 0:
                return locked
            self.locked_until.pop(key, None)
            failed = self._recent(key, now)
            return 1.0 if failed and failed + self.in_flight.get(key, 0) >= FAILURES else 0.0

    def started(self, key: tuple[str, str]) -> None:
        """A login of the key is on its way to MLflow."""
        with self.lock:
            self.in_flight[key] = self.in_flight.get(key, 0) + 1

    def finished(self, key: tuple[str, str]) -> None:
        """It came back."""
        with self.lock:
            left = self.in_flight.get(key, 1) - 1
            if left > 0:
                self.in_flight[key] = left
            else:
                self.in_flight.pop(key, None)

    def failed(self, key: tuple[str, str]) -> None:
        """Count a wrong password; lock the key at the FAILURES-th within the window."""
        now = self.clock()
        with self.lock:
            recent = self.failures.setdefault(key, deque())
            recent.append(now)
            if self._recent(key, now) >= FAILURES:
                self.locked_until[key] = now + LOCK_SECONDS
                self.failures.pop(key, None)

    def succeeded(self, key: tuple[str, str]) -> None:
        """A right password clears the key's count."""
        with self.lock:
            self.failures.pop(key, None)


class Guard:
    """ASGI middleware in front of the basic-auth app: the module's rules, in its order."""

    def __init__(self, app, admin: str, throttle: LoginThrottle | None = None):
        self.app, self.admin = app, admin
        self.throttle = throttle or LoginThrottle()

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        path = scope["path"]
        try:
            user = basic_user(scope.get("headers") or [], path)
        except AmbiguousLogin as error:
            return await _answer(send, 400, "INVALID_PARAMETER_VALUE", f"{error}: send one login")
        key = ((scope.get("client") or ("unknown",))[0], user or "")
        if user is not None and (wait := self.throttle.retry_after(key)) > 0:
            return await _answer(
                send, 429, "RESOURCE_EXHAUSTED", f"too many wrong passwords for {user}: retry in {wait:.0f} s",
                [(b"retry-after", str(int(wait) + 1).encode())],
            )  # fmt: skip
        if refusal := self.refusal(user, path):
            return await _answer(send, 403, "PERMISSION_DENIED", refusal)
        if CREATES_EXPERIMENT.search(path):
            body = await _read_body(receive)
            if body is None:
                return await _answer(send, 413, "INVALID_PARAMETER_VALUE", "request body too large")
            if chosen_artifact_location(body):
                return await _answer(
                    send, 403, "PERMISSION_DENIED",
                    "artifact_location is chosen by the server (its one artifact root): create the "
                    "experiment without it",
                )  # fmt: skip
            receive = _replay(body, receive)
        return await self._counted(scope, receive, send, user, key)

    def refusal(self, user: str | None, path: str) -> str | None:
        """Why rules 1 and 2 refuse `user` this route (None: MLflow's own checks decide)."""
        if user != self.admin and admin_only(path):
            return (
                "only the admin account deletes or renames models and versions, manages users, roles "
                "and permissions, or uploads files through the UI (least privilege: see SECURITY.md)"
            )
        if user not in (self.admin, PIPELINE) and CREATES_MODEL.search(path):
            return "only the pipeline registers models (`mura register`, the retrain DAG): see SECURITY.md"
        return None

    async def _counted(self, scope, receive, send, user: str | None, key: tuple[str, str]):
        """Pass the request on; count the answer MLflow gave to its login (rule 5)."""
        # Only a route that checks the password may clear the count (/health answers 200 to anyone).
        checked = scope["path"].startswith(CHECKED_PREFIXES)

        in_flight = [user is not None]

        async def counting(message):
            # Counted before the answer leaves: a client's next try must already find the count,
            # and no longer find this login in flight.
            if message["type"] == "http.response.start" and in_flight[0]:
                if message["status"] == 401:
                    self.throttle.failed(key)
                elif 200 <= message["status"] < 400 and checked:
                    self.throttle.succeeded(key)
                in_flight[0] = False
                self.throttle.finished(key)
            await send(message)

        if in_flight[0]:
            self.throttle.started(key)
        try:
            await self.app(scope, receive, counting)
        finally:
            if in_flight[0]:  # no answer started (an error): still not in flight any more
                self.throttle.finished(key)


async def _read_body(receive) -> bytes | None:
    """The whole request body, or None when it is over MAX_CHECKED_BODY bytes or the client left."""
    chunks, size = [], 0
    while True:
        message = await receive()
        if message["type"] == "http.disconnect":
            return None
        size += len(message.get("body", b""))
        if size > MAX_CHECKED_BODY:
            return None
        chunks.append(message.get("body", b""))
        if not message.get("more_body"):
            return b"".join(chunks)


def chosen_artifact_location(body: bytes) -> bool:
    """True when an experiment's create request names its own artifact location (rule 3); a body that
    is not a JSON object names none (MLflow refuses it itself)."""
    try:
        fields = json.loads(body or b"{}")  # the parser MLflow's handler uses: the last duplicate wins
    except (ValueError, RecursionError):
        return False
    return isinstance(fields, dict) and bool(fields.get("artifact_location"))


def _replay(body: bytes, receive):
    """A `receive` that hands the app the body the guard read, then listens to the client again."""
    sent = [False]

    async def replaying():
        if not sent[0]:
            sent[0] = True
            return {"type": "http.request", "body": body, "more_body": False}
        return await receive()

    return replaying


async def _answer(send, status: int, code: str, message: str, headers: list | None = None) -> None:
    body = json.dumps({"error_code": code, "message": message}).encode()
    await send(
        {
            "type": "http.response.start",
            "status": status,
            "headers": [(b"content-type", b"application/json"), *(headers or [])],
        }
    )
    await send({"type": "http.response.body", "body": body})


def create_app(app=None):
    """The `mlflow.app` entry point `mura-auth`: basic-auth (its config from MLFLOW_AUTH_CONFIG_PATH)
    wrapped in the Guard. Needs MLflow's default uvicorn server (an ASGI app)."""
    from mlflow.server import app as flask_app
    from mlflow.server.auth import auth_config
    from mlflow.server.auth import create_app as basic_auth

    served = basic_auth(app or flask_app)
    if not callable(getattr(served, "add_middleware", None)):
        raise RuntimeError("mura-auth needs MLflow's uvicorn server (drop --gunicorn-opts/--waitress-opts)")
    served.add_middleware(Guard, admin=auth_config.admin_username)
    return served
