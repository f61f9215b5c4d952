"""TF Serving's JSON tensor encoding, the image header guard, error mapping and metrics text."""

from __future__ import annotations

import numpy as np
import pytest

from serving.server.image_guard import check_image
from serving.server.metrics import Metrics
from serving.server.rest_json import parse_body, request_tensors, response_json
from serving.server.status import ServingError


def test_rows_and_columns_become_batched_arrays():
    inputs, rows = request_tensors(
        {"instances": [{"a": [1, 2], "b": "x"}, {"a": [3, 4], "b": {"b64": "eQ=="}}]},
        {"a": "int64", "b": "string"},
    )
    assert rows and inputs["a"].tolist() == [[1, 2], [3, 4]] and inputs["b"].tolist() == [b"x", b"y"]
    inputs, rows = request_tensors({"inputs": [[1.5, 2.0]]}, {"x": "float32"})
    assert not rows and inputs["x"].dtype == np.float32 and inputs["x"].shape == (1, 2)


@pytest.mark.parametrize(
    "document,message",
    [
        ({"instances": [[1.0], [1.0, 2.0]]}, "Expecting shape [1] but got: [2]"),
        ({"instances": []}, "No values in 'instances' array"),
        ({"instances": {"x": 1}}, "to be an list/array"),
        ({"instances": [True]}, "is not of expected type: float32"),
    ],
)
def test_bad_json_tensors(document, message):
    with pytest.raises(ServingError, match=None) as caught:
        request_tensors(document, {"x": "float32"})
    assert caught.value.code == "INVALID_ARGUMENT" and message in caught.value.message


def test_parse_errors():
    for body, message in (
        (b"", "The document is empty"),
        (b"[1]", "Is not object"),
        (b'{"signature_name": 3}', "must be a string"),
    ):
        with pytest.raises(ServingError) as caught:
            parse_body(body)
        assert message in caught.value.message


def test_response_forms():
    outputs = {
        "p": np.array([0.25, 0.5], dtype=np.float32),
        "label": np.array([b"normal", b"abnormal"], dtype=object),
    }
    assert response_json(outputs, True) == {
        "predictions": [{"p": 0.25, "label": "normal"}, {"p": 0.5, "label": "abnormal"}]
    }
    assert response_json({"y_bytes": np.array([b"\xff"], dtype=object)}, False) == {
        "outputs": [{"b64": "/w=="}]
    }


def test_image_guard():
    from serving import samples

    assert check_image(samples.sample_png(30, 20), "img", 10_000, 100) == (30, 20)
    with pytest.raises(ServingError, match="over the limit"):
        check_image(samples.sample_png(30, 20), "img", 500, 100)
    with pytest.raises(ServingError, match="not a PNG, JPEG, GIF or BMP"):
        check_image(b"RIFF....WEBP", "img", 10_000, 100)


def test_metrics_text_uses_tf_serving_names():
    metrics = Metrics()
    metrics.record_request("m", "predict", "GRPC", "OK", 120.0)
    metrics.record_request("m", "predict", "REST", "NOT_FOUND", 50.0)
    text = metrics.render()
    assert ':tensorflow:serving:request_count{model_name="m",status="OK"} 1' in text
    assert (
        ':tensorflow:serving:request_latency_count{API="predict",entrypoint="GRPC",model_name="m"} 1' in text
    )
    assert ServingError("RESOURCE_EXHAUSTED", "x").http_status == 429


FIRST_REQUESTS_IN_THREADS = """
import threading
import numpy as np
from serving import protos

barrier, failures = threading.Barrier(4), []

def first_request():
    barrier.wait()  # all four make the process's first request at once
    try:
        for _ in range(5):
            request = protos.message("tensorflow.serving.PredictRequest")()
            request.inputs["image_bytes"].CopyFrom(protos.make_tensor_proto(np.array([b"x"], dtype=object)))
    except TypeError as error:
        failures.append(str(error))

threads = [threading.Thread(target=first_request) for _ in range(4)]
for thread in threads:
    thread.start()
for thread in threads:
    thread.join()
print(len(failures))
"""


def test_the_first_requests_of_several_threads_share_one_set_of_messages():
    """Four threads making a process's first request at once: each built its own descriptor pool,
    and 19 of 20 requests failed with "Parameter to CopyFrom() must be instance of same class"."""
    import subprocess
    import sys

    from mura_core.settings import REPO_ROOT

    done = subprocess.run(
        [sys.executable, "-c", FIRST_REQUESTS_IN_THREADS],
        capture_output=True,
        text=True,
        cwd=REPO_ROOT,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "0"


@pytest.mark.parametrize(
    ("detail", "tls", "named"),
    [
        (  # what grpc 1.7x said, TLS client against a plain gRPC port
            "failed to connect to all addresses; last error: UNKNOWN: ipv4:127.0.0.1:1: Tls handshake failed "
            "(TSI_PROTOCOL_FAILURE): SSL_ERROR_SSL: error:100000f7:SSL routines:OPENSSL_internal:WRONG_VERSION_NUMBER",
            True,
            "answers without TLS",
        ),
        (  # plain client against a TLS gRPC server
            "failed to connect to all addresses; last error: UNAVAILABLE: ipv4:127.0.0.1:1: Socket closed",
            False,
            "if it is the TLS gateway",
        ),
        (  # a certificate signed by another CA
            "Tls handshake failed (TSI_PROTOCOL_FAILURE): SSL_ERROR_SSL: CERTIFICATE_VERIFY_FAILED",
            True,
            "is not the one MURA_SERVING_TLS_CA trusts",
        ),
        (  # nothing listens
            "failed to connect to all addresses; last error: UNKNOWN: ipv4:127.0.0.1:1: Connection refused",
            False,
            "no TF Serving answers at 127.0.0.1:1",
        ),
    ],
)
def test_a_protocol_mismatch_is_named_as_one_not_as_a_missing_server(detail, tls, named):
    from serving.client_transport import _unavailable

    assert named in str(_unavailable("127.0.0.1:1", detail, "MURA_SERVING_GRPC", tls))
