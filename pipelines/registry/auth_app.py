"""`mlflow server --app-name mura-auth`: MLflow's basic-auth app with two rules it lacks.

1. Only the admin destroys or grants. MLflow's permissions are coarse: moving and deleting an alias
   needs MANAGE on the registered model (the pipeline and the reviewer must move aliases), and MANAGE
   also deletes the model and its versions and grants permissions on it to anyone. Those routes, and
   every user and role route except a caller's own, answer 403 to any account but the admin, before
   MLflow's own checks run.
2. Failed logins are throttled: after FAILURES wrong passwords for one account from one address
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
CHECKED_PREFIXES = ("/api/", "/ajax-api/", "/gateway/")  # the routes whose 2xx means a checked login
# A caller's own user record and permissions stay open to every account.
OWN_ROUTES = re.compile(r"/mlflow/users/current(/permissions)?$")
ADMIN_ONLY = re.compile(
    r"/mlflow/(users|roles)/"  # list, create, change or delete accounts and roles, grant and revoke
    r"|/permissions/"  # experiment and registered-model permissions
    r"|/mlflow/(registered-models|model-versions)/delete$"  # a model or a version, with its files
)


def admin_only(path: str) -> bool:
    """True for a route only the admin may call (see the module's rule 1)."""
    return bool(ADMIN_ONLY.search(path)) and not OWN_ROUTES.search(path)


def basic_user(headers: list) -> str | None:
    """The user name a request logs in as, read the way MLflow reads it: X-MLflow-Authorization
    first, else the first Authorization header; `Basic <base64>` split on any whitespace, the base64
    decoded leniently. None without a Basic login."""
    found = dict(reversed(headers or []))  # the first of each name wins
    header = found.get(b"x-mlflow-authorization") or found.get(b"authorization")
    parts = header.split() if header else []
    if len(parts) != 2 or parts[0].lower() != b"basic":
        return None
    try:
        decoded = base64.b64decode(parts[1] + b"==", validate=False).decode("utf-8")
    except (binascii.Error, UnicodeDecodeError):
        return None
    return decoded.split(":", 1)[0] if ":" in decoded else None


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
    """ASGI middleware in front of the basic-auth app: rule 1, then rule 2 (see the module)."""

    def __init__(self, app, admin: str, throttle: LoginThrottle | None = None):
        self.app, self.admin = app, admin
        self.throttle = throttle or LoginThrottle()

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        user = basic_user(scope.get("headers") or [])
        key = ((scope.get("client") or ("unknown",))[0], user or "")
        if user is not None and (wait := self.throttle.retry_after(key)) > 0:
            return await _answer(
                send, 429, "RESOURCE_EXHAUSTED", f"too many wrong passwords for {user}: retry in {wait:.0f} s",
                [(b"retry-after", str(int(wait) + 1).encode())],
            )  # fmt: skip
        if user != self.admin and admin_only(scope["path"]):
            return await _answer(
                send, 403, "PERMISSION_DENIED",
                "only the admin account deletes models and versions or manages users, roles and "
                "permissions (least privilege: see SECURITY.md)",
            )  # fmt: skip

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
