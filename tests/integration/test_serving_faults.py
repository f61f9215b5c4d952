"""The local server under faults and abuse: each test reproduces a defect found by a hostile client."""

from __future__ import annotations

import json
import shutil
import socket
import time

import numpy as np
import pytest
import requests

pytestmark = [pytest.mark.integration, pytest.mark.slow]
POLL = 0.1


@pytest.fixture(scope="module")
def linear_export(tmp_path_factory):
    from serving import samples

    return samples.write_linear_saved_model(tmp_path_factory.mktemp("linear") / "model")


@pytest.fixture
def served(tmp_path, linear_export):
    """A server on one model base path (latest policy, as `--model_base_path`) holding version 1."""
    from serving.server import ServerOptions, start_server

    base = tmp_path / "linear"
    shutil.copytree(linear_export, base / "1")
    options = ServerOptions(
        port=0,
        rest_api_port=0,
        model_name="linear",
        model_base_path=str(base),
        file_system_poll_wait_seconds=POLL,
        max_request_batch_size=8,
    )
    handle = start_server(options)
    handle.base = base
    yield handle
    handle.stop()


def _predict(handle, values=(1.0,)) -> requests.Response:
    return requests.post(
        f"{handle.rest_url}/v1/models/linear:predict", json={"instances": list(values)}, timeout=10
    )


def _status(handle) -> dict:
    answer = requests.get(f"{handle.rest_url}/v1/models/linear", timeout=10).json()
    return {int(entry["version"]): entry for entry in answer["model_version_status"]}


def _wait_for(condition, timeout=60.0):  # generous: two test workers share the cores
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if condition():
            return True
        time.sleep(POLL)
    return False


def test_a_broken_new_version_keeps_the_last_good_one_serving_and_loads_once_completed(served, linear_export):
    broken = served.base / "2"
    shutil.copytree(linear_export, broken, ignore=shutil.ignore_patterns("variables"))
    assert _wait_for(lambda: 2 in _status(served) and _status(served)[2]["state"] == "END")
    assert _status(served)[2]["status"]["error_code"] != "OK"
    answer = _predict(served)
    assert answer.status_code == 200 and answer.json() == {"predictions": [2.5]}  # v1 still answers
    assert _status(served)[1]["state"] == "AVAILABLE"
    # Completing the version (a file other than saved_model.pb) makes the server try it again.
    shutil.copytree(linear_export / "variables", broken / "variables")
    assert _wait_for(lambda: _status(served).get(2, {}).get("state") == "AVAILABLE")
    assert _wait_for(lambda: _status(served)[1]["state"] == "END")  # then the old one goes


def _raw(handle, request: bytes, timeout: float = 5.0) -> bytes:
    """Send raw bytes to the REST port; the response head and body read until the server answers."""
    with socket.create_connection(("127.0.0.1", handle.rest_port), timeout=timeout) as connection:
        connection.sendall(request)
        chunks = []
        try:
            while chunk := connection.recv(65536):
                chunks.append(chunk)
                if b"\r\n\r\n" in b"".join(chunks) and chunk.rstrip().endswith((b"}", b".")):
                    break
        except (TimeoutError, ConnectionResetError):
            pass
    return b"".join(chunks)


@pytest.mark.parametrize("length", [b"-1", b"abc", b"1e3", b" 12 3"])
def test_a_bad_content_length_is_answered_400_without_reading_on(served, length):
    # Answered from the head alone (the body's end is unknown), then the connection is closed; a
    # server that trusted `-1` would read until EOF, past every limit, and answer nothing.
    head = b"POST /v1/models/linear:predict HTTP/1.1\r\nHost: x\r\nContent-Length: " + length + b"\r\n\r\n"
    answer = _raw(served, head)
    assert answer.startswith(b"HTTP/1.1 400"), answer[:200]
    assert b"connection: close" in answer.lower()
    assert _predict(served).status_code == 200


@pytest.mark.parametrize("segment", [b"\xb2", b"1\xb2", b"\xc2\xb2", b"\xd9\xa1", b"-1", b"9" * 30])
def test_odd_version_segments_are_a_clean_error(served, segment):
    # Raw bytes on the wire: the server reads the request line as latin-1, where b"\xb2" is a digit ("²").
    answer = _raw(served, b"GET /v1/models/linear/versions/" + segment + b" HTTP/1.1\r\nHost: x\r\n\r\n")
    # A JSON error, or the HTTP layer's own 400 for a request line that is not valid HTTP.
    assert answer.startswith((b"HTTP/1.1 400", b"HTTP/1.1 404")), answer[:200]
    assert b'"error"' in answer or b"Invalid HTTP request" in answer
    assert _predict(served).status_code == 200


@pytest.mark.parametrize("depth", [70, 100, 5000])
def test_deeply_nested_json_is_a_clean_400(served, depth):
    body = '{"instances": ' + "[" * depth + "1.0" + "]" * depth + "}"
    answer = requests.post(f"{served.rest_url}/v1/models/linear:predict", data=body, timeout=10)
    assert answer.status_code == 400 and "error" in answer.json()
    assert _predict(served).status_code == 200


def test_the_batch_of_one_request_is_capped(served):
    answer = _predict(served, [1.0] * 9)
    assert answer.status_code == 400 and "max_request_batch_size" in answer.json()["error"]
    assert _predict(served, [1.0] * 8).status_code == 200


def test_grpc_batch_cap_and_unsupported_dtypes_are_clean_errors(served):
    import grpc
    from tensorflow.core.framework import tensor_pb2, tensor_shape_pb2, types_pb2
    from tensorflow_serving.apis import predict_pb2, prediction_service_pb2_grpc

    stub = prediction_service_pb2_grpc.PredictionServiceStub(grpc.insecure_channel(served.grpc_target))
    request = predict_pb2.PredictRequest()
    request.model_spec.name = "linear"
    shape = tensor_shape_pb2.TensorShapeProto(dim=[tensor_shape_pb2.TensorShapeProto.Dim(size=1000)])
    request.inputs["x"].CopyFrom(
        tensor_pb2.TensorProto(dtype=types_pb2.DT_FLOAT, tensor_shape=shape, float_val=[1.0])
    )
    with pytest.raises(grpc.RpcError) as caught:
        stub.Predict(request, 10)
    assert caught.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert "max_request_batch_size" in caught.value.details()
    for dtype in (types_pb2.DT_RESOURCE, types_pb2.DT_VARIANT, types_pb2.DT_INVALID):
        request.inputs["x"].CopyFrom(tensor_pb2.TensorProto(dtype=dtype))
        with pytest.raises(grpc.RpcError) as caught:
            stub.Predict(request, 10)
        assert caught.value.code() == grpc.StatusCode.INVALID_ARGUMENT, caught.value.details()
        assert " at 0x" not in caught.value.details()


def test_metrics_label_only_configured_models(tmp_path, linear_export):
    from serving.server import ServerOptions, start_server

    monitoring = tmp_path / "monitoring.config"
    monitoring.write_text('prometheus_config { enable: true, path: "/metrics" }\n')
    shutil.copytree(linear_export, tmp_path / "linear" / "1")
    handle = start_server(
        ServerOptions(
            port=0,
            rest_api_port=0,
            model_name="linear",
            model_base_path=str(tmp_path / "linear"),
            monitoring_config_file=str(monitoring),
        )
    )
    import grpc
    from tensorflow.core.framework import tensor_pb2, types_pb2
    from tensorflow_serving.apis import predict_pb2, prediction_service_pb2_grpc

    try:
        stub = prediction_service_pb2_grpc.PredictionServiceStub(grpc.insecure_channel(handle.grpc_target))
        request = predict_pb2.PredictRequest()
        request.inputs["x"].CopyFrom(tensor_pb2.TensorProto(dtype=types_pb2.DT_FLOAT, float_val=[1.0]))
        for index in range(200):
            request.model_spec.name = f"made-up-{index}"
            with pytest.raises(grpc.RpcError):
                stub.Predict(request, 10)
        requests.post(f"{handle.rest_url}/v1/models/linear:predict", json={"instances": [1.0]}, timeout=10)
        page = requests.get(f"{handle.rest_url}/metrics", timeout=10).text
    finally:
        handle.stop()
    assert "made-up" not in page and 'model_name="linear"' in page
    assert len(page) < 200_000


def test_a_taken_grpc_port_is_refused_with_a_clear_error(served, tmp_path, linear_export):
    from serving.server import ServerOptions, start_server
    from serving.server.status import ServingError

    shutil.copytree(linear_export, tmp_path / "other" / "1")
    with pytest.raises(ServingError, match=f"{served.grpc_port}.*in use"):
        start_server(
            ServerOptions(
                port=served.grpc_port,
                rest_api_port=0,
                model_name="other",
                model_base_path=str(tmp_path / "other"),
            )
        )
    assert _predict(served).status_code == 200


def test_the_config_file_wins_again_after_a_reload_request(tmp_path, linear_export):
    import grpc
    from tensorflow_serving.apis import model_management_pb2, model_service_pb2_grpc

    from serving import repository
    from serving.server import ServerOptions, start_server

    base = tmp_path / "models"
    shutil.copytree(linear_export, base / "mura_linear" / "1")
    config = repository.set_served_versions("mura_linear", [1], {}, base / "models.config", base)
    handle = start_server(
        ServerOptions(
            port=0,
            rest_api_port=0,
            model_config_file=str(config),
            model_config_file_poll_wait_seconds=POLL,
            file_system_poll_wait_seconds=POLL,
        )
    )
    try:
        stub = model_service_pb2_grpc.ModelServiceStub(grpc.insecure_channel(handle.grpc_target))
        empty = model_management_pb2.ReloadConfigRequest()
        empty.config.model_config_list.SetInParent()
        stub.HandleReloadConfigRequest(empty, 10)  # unloads every model
        url = f"{handle.rest_url}/v1/models/mura_linear:predict"
        # TF Serving re-reads --model_config_file on every poll, so the file's models come back.
        assert _wait_for(lambda: requests.post(url, json={"instances": [1.0]}, timeout=10).status_code == 200)
    finally:
        handle.stop()


def test_stalled_connections_do_not_block_a_good_request(served):
    stalled = []
    try:
        for _ in range(500):
            connection = socket.create_connection(("127.0.0.1", served.rest_port), timeout=5)
            connection.sendall(b"POST /v1/models/linear:predict HTTP/1.1\r\nContent-Length: 100\r\n\r\n{")
            stalled.append(connection)
        started = time.monotonic()
        answer = _predict(served)
        elapsed = time.monotonic() - started
    finally:
        for connection in stalled:
            connection.close()
    assert answer.status_code == 200
    # Not a timing assert on the machine's speed: a SYN retransmit (full backlog) alone costs 1 s.
    assert elapsed < 1.0, elapsed


def test_responses_carry_no_python_object_addresses(served):
    for body in (json.dumps({"instances": [{"b64": 3}]}), json.dumps({"inputs": {"x": [[1.0], [2.0, 3.0]]}})):
        answer = requests.post(f"{served.rest_url}/v1/models/linear:predict", data=body, timeout=10)
        assert answer.status_code == 400 and " at 0x" not in answer.text, answer.text
    assert np.isfinite(_predict(served).json()["predictions"][0])
