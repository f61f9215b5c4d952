"""Our webhook signature equals the one MLflow itself sends (imports MLflow, so not a unit test)."""

from __future__ import annotations

from pipelines.deployment.webhook import sign
from tests.unit.test_webhook import BODY, SECRET


def test_signature_equals_mlflows_own():
    from mlflow.webhooks.delivery import _generate_hmac_signature

    assert sign(SECRET, "id-1", "1700000000", BODY) == _generate_hmac_signature(
        SECRET, "id-1", "1700000000", BODY.decode()
    )
