"""MLflow webhook signature checks: a valid delivery is accepted, forged and replayed ones are refused."""

from __future__ import annotations

import json
import time
import uuid

import pytest

from mura_core.errors import WebhookRejected
from pipelines.deployment.webhook import ReplayGuard, WebhookReceiver, sign, verify_delivery

SECRET = "webhook-secret"
BODY = json.dumps(
    {
        "entity": "model_version_alias",
        "action": "created",
        "timestamp": "2026-01-01T00:00:00+00:00",
        "data": {"name": "mura_binary", "alias": "champion", "version": "2"},
    }
).encode()


def delivery(
    body: bytes = BODY, secret: str = SECRET, delivery_id: str | None = None, timestamp: int | None = None
) -> dict:
    """Headers as MLflow sends them."""
    delivery_id = delivery_id or str(uuid.uuid4())
    stamp = str(int(time.time()) if timestamp is None else timestamp)
    return {
        "X-MLflow-Delivery-Id": delivery_id,
        "X-MLflow-Timestamp": stamp,
        "X-MLflow-Signature": sign(secret, delivery_id, stamp, body),
        "Content-Type": "application/json",
    }


def test_valid_delivery_is_accepted():
    payload = verify_delivery(SECRET, delivery(), BODY, ReplayGuard(300))
    assert payload["data"] == {"name": "mura_binary", "alias": "champion", "version": "2"}


@pytest.mark.parametrize(
    ("headers", "body", "message"),
    [
        (delivery(secret="guessed"), BODY, "signature does not match"),
        (delivery(), BODY.replace(b'"2"', b'"9"'), "signature does not match"),
        ({key: value for key, value in delivery().items() if key != "X-MLflow-Signature"}, BODY, "missing"),
        (delivery(timestamp=int(time.time()) - 3600), BODY, "replay refused"),
    ],
    ids=["wrong-secret", "altered-body", "unsigned", "stale"],
)
def test_forged_or_stale_delivery_is_rejected(headers, body, message):
    with pytest.raises(WebhookRejected, match=message) as caught:
        verify_delivery(SECRET, headers, body, ReplayGuard(300))
    assert caught.value.status == 401


def test_replayed_delivery_id_is_rejected():
    guard, headers = ReplayGuard(300), delivery()
    verify_delivery(SECRET, headers, BODY, guard)
    with pytest.raises(WebhookRejected, match="already received") as caught:
        verify_delivery(SECRET, headers, BODY, guard)
    assert caught.value.status == 409


def test_receiver_over_http_acts_once_on_a_genuine_alias_event():
    import threading

    import requests

    acted, done = [], threading.Event()
    receiver = WebhookReceiver(SECRET, action=lambda payload: (acted.append(payload), done.set())).start()
    try:
        headers = delivery()
        assert requests.post(receiver.url, data=BODY, headers=headers, timeout=5).status_code == 202
        assert done.wait(5) and acted[0]["data"]["version"] == "2"
        replay = requests.post(receiver.url, data=BODY, headers=headers, timeout=5)
        forged = requests.post(receiver.url, data=BODY, headers=delivery(secret="nope"), timeout=5)
        assert (replay.status_code, forged.status_code) == (409, 401)
        assert "signature" in forged.json()["error"]
        other = json.dumps({"entity": "registered_model", "action": "created", "data": {}}).encode()
        answer = requests.post(receiver.url, data=other, headers=delivery(body=other), timeout=5)
        assert answer.status_code == 200 and answer.json()["status"] == "ignored"
        assert len(acted) == 1
    finally:
        receiver.stop()


def test_receiver_without_secret_refuses_everything():
    with pytest.raises(WebhookRejected, match="no webhook secret") as caught:
        verify_delivery("", delivery(), BODY, ReplayGuard(300))
    assert caught.value.status == 503


@pytest.mark.parametrize("raw", ["-1", "abc", " 12 3", "1_0", "1e3", "\u00b2"])
def test_content_length_is_a_plain_byte_count_or_refused(raw):
    from mura_core.wire import content_length

    assert content_length(raw) is None
    assert content_length("42") == 42 and content_length(None) == 0
