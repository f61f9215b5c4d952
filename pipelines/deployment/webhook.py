"""Receiver for MLflow registry webhooks: checks the signature, timestamp and delivery id, then acts.

MLflow signs `"{delivery_id}.{timestamp}.{body}"` with HMAC-SHA256 and sends
`X-MLflow-Signature: v1,<base64>` with `X-MLflow-Delivery-Id` and `X-MLflow-Timestamp`. Delivery is
fire-and-forget, so the reconciler loop stays the guarantee; this only makes serving follow sooner.
The action is pluggable: by default a reconcile; the deploy DAG trigger can replace it.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import logging
import threading
import time
from collections import OrderedDict
from collections.abc import Callable, Mapping
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import cast

from mura_core.errors import WebhookRejected
from mura_core.wire import content_length

LOGGER = logging.getLogger(__name__)
# The header names and version of mlflow.webhooks.constants (not imported: that would load mlflow).
SIGNATURE_HEADER, TIMESTAMP_HEADER, DELIVERY_HEADER = (
    "X-MLflow-Signature",
    "X-MLflow-Timestamp",
    "X-MLflow-Delivery-Id",
)
SIGNATURE_VERSION = "v1"
PATH = "/webhooks/mlflow"
ACTED_ON = {("model_version_alias", "created"), ("model_version_alias", "deleted")}
MAX_BODY_BYTES = 1 << 20


def sign(secret: str, delivery_id: str, timestamp: str, body: bytes) -> str:
    """The `X-MLflow-Signature` value MLflow sends for this delivery."""
    content = f"{delivery_id}.{timestamp}.".encode() + body
    digest = hmac.new(secret.encode(), content, hashlib.sha256).digest()
    return f"{SIGNATURE_VERSION},{base64.b64encode(digest).decode()}"


class ReplayGuard:
    """Remembers delivery ids seen within the tolerance window (bounded, thread-safe)."""

    def __init__(self, window_seconds: float, capacity: int = 10_000):
        self.window_seconds, self.capacity = window_seconds, capacity
        self._seen: OrderedDict[str, float] = OrderedDict()
        self._lock = threading.Lock()

    def check_and_remember(self, delivery_id: str, now: float) -> None:
        """WebhookRejected (409) when `delivery_id` was already accepted inside the window."""
        with self._lock:
            while self._seen and (
                next(iter(self._seen.values())) < now - 2 * self.window_seconds
                or len(self._seen) > self.capacity
            ):
                self._seen.popitem(last=False)
            if delivery_id in self._seen:
                raise WebhookRejected(
                    f"delivery {delivery_id} was already received: replay refused", status=409
                )
            self._seen[delivery_id] = now


def verify_delivery(
    secret: str,
    headers: Mapping[str, str],
    body: bytes,
    guard: ReplayGuard,
    now: float | None = None,
    tolerance_seconds: float = 300.0,
) -> dict:
    """The parsed payload of a genuine, fresh, first-seen delivery; WebhookRejected otherwise."""
    if not secret:
        raise WebhookRejected(
            "no webhook secret configured (MURA_WEBHOOK_SECRET): refusing every delivery", status=503
        )
    lowered = {key.lower(): value for key, value in headers.items()}
    delivery_id = lowered.get(DELIVERY_HEADER.lower(), "")
    timestamp = lowered.get(TIMESTAMP_HEADER.lower(), "")
    signatures = lowered.get(SIGNATURE_HEADER.lower(), "")
    if not (delivery_id and timestamp and signatures):
        raise WebhookRejected(f"missing {DELIVERY_HEADER}, {TIMESTAMP_HEADER} or {SIGNATURE_HEADER} header")
    expected = sign(secret, delivery_id, timestamp, body)
    # Standard Webhooks allows several space-separated signatures (secret rotation).
    if not any(hmac.compare_digest(expected, candidate) for candidate in signatures.split()):
        raise WebhookRejected("signature does not match: not sent by MLflow with this secret")
    try:
        sent_at = int(timestamp)
    except ValueError as error:
        raise WebhookRejected(
            f"{TIMESTAMP_HEADER} {timestamp!r} is not a Unix timestamp", status=400
        ) from error
    now = time.time() if now is None else now
    if abs(now - sent_at) > tolerance_seconds:
        raise WebhookRejected(
            f"timestamp {sent_at} is {now - sent_at:.0f}s away from now (limit {tolerance_seconds:.0f}s): replay refused"
        )
    guard.check_and_remember(delivery_id, now)
    try:
        payload = json.loads(body)
    except ValueError as error:
        raise WebhookRejected("body is not JSON", status=400) from error
    if not isinstance(payload, dict):
        raise WebhookRejected("body is not a JSON object", status=400)
    return payload


def reconcile_action(payload: dict) -> None:
    """Default action: reconcile the model named in the payload (all `mura_*` models when absent)."""
    from pipelines.deployment.reconciler import reconcile

    name = (payload.get("data") or {}).get("name")
    reconcile(models=[name] if name else None)


class WebhookReceiver:
    """An HTTP server for MLflow webhooks; accepted alias events run `action` on one worker thread."""

    def __init__(
        self,
        secret: str,
        action: Callable[[dict], None] = reconcile_action,
        host: str = "127.0.0.1",
        port: int = 0,
        tolerance_seconds: float = 300.0,
    ):
        self.secret, self.action, self.tolerance_seconds = secret, action, tolerance_seconds
        self.guard = ReplayGuard(tolerance_seconds)
        self.acted_on: list[dict] = []  # payloads acted on, newest last (for status pages and tests)
        self._pending: list[dict] = []
        self._wake = threading.Condition()
        self._stopping = False
        self._server = ThreadingHTTPServer((host, port), self._handler_class())
        self._threads = [
            threading.Thread(target=self._server.serve_forever, daemon=True, name="mura-webhook-http"),
            threading.Thread(target=self._work, daemon=True, name="mura-webhook-action"),
        ]

    @property
    def url(self) -> str:
        """The URL to register in MLflow."""
        # the bound socket's getsockname(): the host is a str (typeshed also allows bytes, for binding)
        host, port = cast("tuple[str, int]", self._server.server_address[:2])
        return f"http://{host}:{port}{PATH}"

    def start(self) -> WebhookReceiver:
        """Start serving in background threads."""
        for thread in self._threads:
            thread.start()
        return self

    def stop(self) -> None:
        """Stop serving and the action worker."""
        with self._wake:
            self._stopping = True
            self._wake.notify_all()
        self._server.shutdown()
        self._server.server_close()
        for thread in self._threads:
            thread.join(timeout=10)

    def handle(self, headers: Mapping[str, str], body: bytes) -> tuple[int, dict]:
        """(HTTP status, JSON answer) for one delivery; queues the action for alias events."""
        try:
            payload = verify_delivery(
                self.secret, headers, body, self.guard, tolerance_seconds=self.tolerance_seconds
            )
        except WebhookRejected as error:
            LOGGER.warning("webhook delivery rejected: %s", error)
            return error.status, {"error": str(error)}
        if (payload.get("entity"), payload.get("action")) not in ACTED_ON:
            return 200, {
                "status": "ignored",
                "reason": f"{payload.get('entity')}.{payload.get('action')} needs no deploy",
            }
        with self._wake:
            self._pending.append(payload)
            self._wake.notify_all()
        return 202, {"status": "accepted"}

    def _work(self) -> None:
        while True:
            with self._wake:
                while not self._pending and not self._stopping:
                    self._wake.wait()
                if self._stopping:
                    return
                payload, self._pending = self._pending[-1], []  # one reconcile covers a burst of events
            try:
                self.action(payload)
                self.acted_on.append(payload)
            except Exception as error:  # noqa: BLE001 - a failed action is logged; the reconcile loop retries
                LOGGER.error("webhook action failed: %s", error)

    def _handler_class(self):
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self):  # noqa: N802 - http.server's method name
                length = content_length(self.headers.get("Content-Length"))
                if self.path.split("?")[0] != PATH:
                    status, answer = 404, {"error": f"POST webhooks to {PATH}"}
                elif length is None:
                    self.close_connection = True  # the body's end is unknown
                    status, answer = 400, {"error": "Invalid Content-Length header: expected a byte count"}
                elif length > MAX_BODY_BYTES:
                    status, answer = 413, {"error": "body too large"}
                else:
                    status, answer = receiver.handle(dict(self.headers.items()), self.rfile.read(length))
                data = json.dumps(answer).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def log_message(self, format, *args):  # noqa: A002 - http.server's signature
                LOGGER.debug("webhook %s", format % args)

        return Handler
