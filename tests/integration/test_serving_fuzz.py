"""Property-based fuzzing of the local server: REST paths, bodies and headers, gRPC TensorProtos.

Every case must get an answer in TF Serving's error shape (never a dropped connection, never UNKNOWN
or an internal error), and after every case a good request must still succeed.
"""

from __future__ import annotations

import json
import shutil
import socket

import pytest
import requests
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

pytestmark = [pytest.mark.integration, pytest.mark.slow]
FUZZ = settings(
    max_examples=120, deadline=None, suppress_health_check=[HealthCheck.too_slow], derandomize=True
)
# TF Serving answers bad requests with these; 500 (INTERNAL) or 503 would mean the server broke.
HTTP_ALLOWED = {200, 400, 404, 413, 429, 501}
GRPC_ALLOWED = {"OK", "INVALID_ARGUMENT", "FAILED_PRECONDITION", "NOT_FOUND", "RESOURCE_EXHAUSTED"}


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    from serving import samples
    from serving.server import ServerOptions, start_server

    base = tmp_path_factory.mktemp("fuzz") / "linear"
    samples.write_linear_saved_model(base / "1")
    handle = start_server(
        ServerOptions(
            port=0, rest_api_port=0, model_name="linear", model_base_path=str(base), max_request_batch_size=64
        )
    )
    yield handle
    handle.stop()
    shutil.rmtree(base, ignore_errors=True)


def _still_serves(server) -> None:
    answer = requests.post(
        f"{server.rest_url}/v1/models/linear:predict", json={"instances": [2.0]}, timeout=10
    )
    assert answer.status_code == 200 and answer.json() == {"predictions": [3.0]}


def _is_error_document(response: requests.Response) -> bool:
    try:
        body = response.json()
    except ValueError:
        return False
    return isinstance(body, dict) and isinstance(body.get("error"), str) and " at 0x" not in body["error"]


path_text = st.text(
    alphabet=st.characters(blacklist_categories=("Cs",), blacklist_characters="\r\n#?"), max_size=40
)


@FUZZ
@given(
    segment=path_text,
    suffix=st.sampled_from(["", "/metadata", ":predict", ":classify", "/versions/1", "/labels/x"]),
)
def test_fuzzed_paths_get_an_answer(server, segment, suffix):
    url = f"{server.rest_url}/v1/models/{requests.utils.quote(segment, safe='')}{suffix}"
    method = requests.post if suffix.startswith(":") else requests.get
    answer = method(url, data=b"{}", timeout=10)
    assert answer.status_code in HTTP_ALLOWED, answer.text
    assert answer.status_code == 200 or _is_error_document(answer), answer.text
    _still_serves(server)


json_values = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(-(2**70), 2**70)
    | st.floats(allow_nan=False)
    | st.text(max_size=8),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=6), inner, max_size=3),
    max_leaves=30,
)
bodies = st.one_of(
    json_values,
    st.fixed_dictionaries({"instances": json_values}),
    st.fixed_dictionaries({"inputs": json_values}),
    st.fixed_dictionaries({"inputs": st.fixed_dictionaries({"x": json_values})}),
    st.fixed_dictionaries({"signature_name": json_values, "instances": json_values}),
)


@FUZZ
@given(body=bodies)
def test_fuzzed_predict_bodies_get_an_answer(server, body):
    answer = requests.post(f"{server.rest_url}/v1/models/linear:predict", data=json.dumps(body), timeout=10)
    assert answer.status_code in HTTP_ALLOWED, answer.text
    assert answer.status_code == 200 or _is_error_document(answer), answer.text
    _still_serves(server)


header_values = st.text(
    alphabet=st.characters(min_codepoint=32, max_codepoint=255, blacklist_characters="\r\n"), max_size=24
)


@FUZZ
@given(length=header_values, content_type=header_values, body=st.binary(max_size=64))
def test_fuzzed_headers_get_a_well_formed_answer(server, length, content_type, body):
    head = (
        "POST /v1/models/linear:predict HTTP/1.1\r\nHost: fuzz\r\nConnection: close\r\n"
        f"Content-Length: {length}\r\nContent-Type: {content_type}\r\n\r\n"
    ).encode("latin-1")
    with socket.create_connection(("127.0.0.1", server.rest_port), timeout=10) as connection:
        connection.sendall(head + body)
        connection.shutdown(socket.SHUT_WR)
        received = b""
        while chunk := connection.recv(65536):
            received += chunk
    assert received.startswith(b"HTTP/1.1 "), received[:100]
    assert int(received[9:12]) in HTTP_ALLOWED, received[:300]
    _still_serves(server)


dtypes = st.integers(0, 30) | st.integers(100, 130)
shapes = st.lists(st.integers(-2, 3000), max_size=4)


@FUZZ
@given(
    dtype=dtypes,
    dims=shapes,
    floats=st.lists(st.floats(width=32), max_size=6),
    ints=st.lists(st.integers(-(2**31), 2**31 - 1), max_size=6),
    strings=st.lists(st.binary(max_size=16), max_size=3),
    content=st.binary(max_size=64),
    alias=st.sampled_from(["x", "y", ""]),
)
def test_fuzzed_grpc_tensors_get_a_tf_serving_status(
    server, dtype, dims, floats, ints, strings, content, alias
):
    import grpc
    from tensorflow.core.framework import tensor_pb2, tensor_shape_pb2
    from tensorflow_serving.apis import predict_pb2, prediction_service_pb2_grpc

    stub = prediction_service_pb2_grpc.PredictionServiceStub(grpc.insecure_channel(server.grpc_target))
    request = predict_pb2.PredictRequest()
    request.model_spec.name = "linear"
    tensor = tensor_pb2.TensorProto(
        dtype=dtype,
        tensor_shape=tensor_shape_pb2.TensorShapeProto(dim=[{"size": size} for size in dims]),
        float_val=floats,
        int_val=ints,
        string_val=strings,
        tensor_content=content,
    )
    request.inputs[alias].CopyFrom(tensor)
    try:
        stub.Predict(request, 10)
        code = "OK"
    except grpc.RpcError as error:
        code = error.code().name
        assert " at 0x" not in (error.details() or "")
    assert code in GRPC_ALLOWED, (code, dtype, dims)
    _still_serves(server)
