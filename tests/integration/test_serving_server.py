"""Export -> publish -> serve (local TF-Serving-compatible server) -> predict over gRPC and REST."""

from __future__ import annotations

import base64
import json
import shutil
import subprocess
import sys
import threading
import zlib
from pathlib import Path

import numpy as np
import pytest
import requests

from mura_core import contracts

pytestmark = [pytest.mark.integration, pytest.mark.slow]

IMAGE_SIZE = (32, 32)
MAX_REQUEST_BYTES = 2 * 1024 * 1024


def png_header_only(width: int, height: int) -> bytes:
    """A PNG whose header claims width x height but carries almost no data (a decompression bomb's header)."""

    def chunk(kind: bytes, data: bytes) -> bytes:
        return len(data).to_bytes(4, "big") + kind + data + zlib.crc32(kind + data).to_bytes(4, "big")

    header = width.to_bytes(4, "big") + height.to_bytes(4, "big") + bytes([8, 0, 0, 0, 0])
    return (
        b"\x89PNG\r\n\x1a\n"
        + chunk(b"IHDR", header)
        + chunk(b"IDAT", zlib.compress(b"\0" * 64))
        + chunk(b"IEND", b"")
    )


@pytest.fixture(scope="module")
def images():
    from serving import samples

    return [
        samples.sample_png(120, 90, seed=1),
        samples.sample_png(64, 140, seed=2, grey=False),
        samples.sample_jpeg(80, 80),
    ]


@pytest.fixture(scope="module")
def exported(tmp_path_factory, images):
    from pipelines import export
    from serving import samples

    root = tmp_path_factory.mktemp("exports")
    made = {}
    for task, seed in (("binary", 0), ("14cls", 1), ("binary:XR_ELBOW", 2), ("binary:XR_ELBOW", 3)):
        model = samples.tiny_keras_model(task, IMAGE_SIZE, seed=seed)
        class_map = contracts.class_map(task, "tiny", IMAGE_SIZE)
        made[(task, seed)] = export.export_saved_model(model, class_map, root / f"{task}-{seed}", images)
    made["linear"] = samples.write_linear_saved_model(root / "linear")
    return made


@pytest.fixture(scope="module")
def server(tmp_path_factory, exported):
    from serving import repository
    from serving.server import ServerOptions, start_server

    base = tmp_path_factory.mktemp("model_base")
    config = base / "models.config"
    for name, key in (("mura_binary", ("binary", 0)), ("mura_14cls", ("14cls", 1))):
        repository.publish_version(exported[key], name, base_path=base)
        repository.set_served_versions(name, [1], {"stable": 1}, config_path=config, base_path=base)
    # A generic TF Serving model outside the platform's naming rule: the server serves any name, the
    # platform's repository would refuse it, so it is laid out by hand as any TF Serving user would.
    shutil.copytree(exported["linear"], base / "linear" / "1")
    models = repository.read_models_config(config)
    linear = repository.ensure_model(models, "linear", base / "linear")
    linear.model_version_policy.specific.versions.append(1)
    linear.version_labels["stable"] = 1
    repository.write_models_config(models, config)
    monitoring = base / "monitoring.config"
    monitoring.write_text('prometheus_config { enable: true, path: "/monitoring/prometheus/metrics" }\n')
    options = ServerOptions(
        port=0, rest_api_port=0, model_config_file=str(config), model_config_file_poll_wait_seconds=0.1,
        file_system_poll_wait_seconds=0.1, monitoring_config_file=str(monitoring), max_request_bytes=MAX_REQUEST_BYTES,
    )  # fmt: skip
    handle = start_server(options)
    handle.base, handle.config = base, config
    yield handle
    handle.stop()


@pytest.fixture(scope="module")
def stubs(server):
    import grpc
    from tensorflow_serving.apis import model_service_pb2_grpc, prediction_service_pb2_grpc

    channel = grpc.insecure_channel(server.grpc_target)
    yield (
        prediction_service_pb2_grpc.PredictionServiceStub(channel),
        model_service_pb2_grpc.ModelServiceStub(channel),
    )
    channel.close()


def grpc_predict(stub, model, inputs, version=None, label=None, signature=""):
    """Call Predict with the official stubs and return (outputs, version)."""
    import tensorflow as tf
    from tensorflow_serving.apis import predict_pb2

    request = predict_pb2.PredictRequest()
    request.model_spec.name = model
    request.model_spec.signature_name = signature
    if version is not None:
        request.model_spec.version.value = version
    if label:
        request.model_spec.version_label = label
    for name, value in inputs.items():
        request.inputs[name].CopyFrom(tf.make_tensor_proto(value))
    response = stub.Predict(request, timeout=30)
    return {
        name: tf.make_ndarray(proto) for name, proto in response.outputs.items()
    }, response.model_spec.version.value


def in_process(saved_model_dir, images):
    import tensorflow as tf

    loaded = tf.saved_model.load(str(saved_model_dir))
    return {
        key: value.numpy()
        for key, value in loaded.signatures["serving_default"](image_bytes=tf.constant(images)).items()
    }


def rest_post(server, path, payload):
    body = payload if isinstance(payload, bytes) else json.dumps(payload).encode()
    return requests.post(server.rest_url + path, data=body, timeout=30)


def b64(data: bytes) -> dict:
    return {"b64": base64.b64encode(data).decode()}


@pytest.mark.parametrize("model,key", [("mura_binary", ("binary", 0)), ("mura_14cls", ("14cls", 1))])
def test_grpc_and_rest_equal_in_process(server, stubs, exported, images, model, key):
    expected = in_process(exported[key], images)
    outputs, version = grpc_predict(
        stubs[0], model, {"image_bytes": np.array(images, dtype=object)}, label="stable"
    )
    assert version == 1
    np.testing.assert_allclose(outputs["abnormal_probability"], expected["abnormal_probability"], atol=1e-6)
    assert list(outputs["label"]) == list(expected["label"])
    rows = rest_post(server, f"/v1/models/{model}:predict", {"instances": [b64(image) for image in images]})
    assert rows.status_code == 200, rows.text
    predictions = rows.json()["predictions"]
    np.testing.assert_allclose(
        [p["abnormal_probability"] for p in predictions], expected["abnormal_probability"], atol=1e-6
    )
    assert [p["label"] for p in predictions] == [v.decode() for v in expected["label"]]
    columns = rest_post(
        server,
        f"/v1/models/{model}/labels/stable:predict",
        {"inputs": {"image_bytes": [b64(i) for i in images]}},
    )
    np.testing.assert_allclose(
        columns.json()["outputs"]["abnormal_probability"], expected["abnormal_probability"], atol=1e-6
    )
    if model == "mura_14cls":
        probabilities = expected["class_probabilities"]
        np.testing.assert_allclose(outputs["class_probabilities"], probabilities, atol=1e-6)
        np.testing.assert_allclose(
            outputs["abnormal_probability"], probabilities[:, 7:].sum(axis=1), atol=1e-5
        )
        assert [p["body_part"] for p in predictions] == [v.decode() for v in expected["body_part"]]


def test_client_and_seed_helpers(server, exported, images, monkeypatch, tmp_path):
    from serving.client import ServingClient, calculate_14cls, calculate_binary

    expected = in_process(exported[("binary", 0)], images)
    study = tmp_path / "XR_HUMERUS" / "patient00001" / "study1_positive"
    study.mkdir(parents=True)
    for index, image in enumerate(images[:2], start=1):
        (study / f"image{index}.png").write_bytes(image)
    for protocol, target in (("grpc", server.grpc_target), ("rest", server.rest_url)):
        with ServingClient(target, protocol=protocol) as client:
            result = client.predict_study(study, model="mura_binary", label="stable")
            assert result["abnormal_probability"] == pytest.approx(
                float(np.mean(expected["abnormal_probability"][:2])), abs=1e-6
            )
            assert result["body_part"] == "XR_HUMERUS" and len(result["images"]) == 2
            single = client.predict_image(images[2], model="mura_binary", version=1)
            assert single["abnormal_probability"] == pytest.approx(
                float(expected["abnormal_probability"][2]), abs=1e-6
            )
    monkeypatch.setenv("MURA_SERVING_GRPC", server.grpc_target)
    label = expected["label"][0].decode()
    assert calculate_binary("mura_binary", "XR_HUMERUS", images[0]) == f"X-ray of XR_HUMERUS is {label}."
    fourteen = in_process(exported[("14cls", 1)], images[:1])
    sentence = f"{fourteen['body_part'][0].decode()} is {fourteen['label'][0].decode()}."
    assert calculate_14cls(None, "XR_HUMERUS", study / "image1.png") == sentence


def test_generic_float_model(server, stubs):
    outputs, _ = grpc_predict(stubs[0], "linear", {"x": np.array([1.0, 2.0, 3.0], dtype=np.float32)})
    np.testing.assert_allclose(outputs["y"], [2.5, 3.0, 3.5])
    rows = rest_post(server, "/v1/models/linear:predict", {"instances": [1.0, 2.0, 10.0]})
    assert rows.json() == {"predictions": [2.5, 3.0, 7.0]}
    columns = rest_post(server, "/v1/models/linear/versions/1:predict", {"inputs": {"x": [4.0]}})
    assert columns.json() == {"outputs": [4.0]}


def test_status_metadata_and_metrics(server, stubs):
    from tensorflow_serving.apis import get_model_metadata_pb2, get_model_status_pb2

    status = requests.get(server.rest_url + "/v1/models/mura_binary", timeout=10).json()
    assert status == {
        "model_version_status": [
            {"version": "1", "state": "AVAILABLE", "status": {"error_code": "OK", "error_message": ""}}
        ]
    }
    request = get_model_status_pb2.GetModelStatusRequest()
    request.model_spec.name = "mura_14cls"
    response = stubs[1].GetModelStatus(request, timeout=10)
    assert [entry.state for entry in response.model_version_status] == [
        get_model_status_pb2.ModelVersionStatus.AVAILABLE
    ]
    metadata_request = get_model_metadata_pb2.GetModelMetadataRequest(metadata_field=["signature_def"])
    metadata_request.model_spec.name = "mura_14cls"
    metadata = stubs[0].GetModelMetadata(metadata_request, timeout=10)
    signatures = get_model_metadata_pb2.SignatureDefMap()
    metadata.metadata["signature_def"].Unpack(signatures)
    assert set(signatures.signature_def) == {"serving_default", "predict_pixels", "explain"}
    assert set(signatures.signature_def["serving_default"].outputs) == {
        "abnormal_probability",
        "raw_probability",
        "threshold",
        "label",
        "body_part",
        "class_probabilities",
    }
    rest_metadata = requests.get(server.rest_url + "/v1/models/mura_binary/metadata", timeout=10).json()
    assert (
        "image_bytes"
        in rest_metadata["metadata"]["signature_def"]["signature_def"]["serving_default"]["inputs"]
    )
    metrics = requests.get(server.rest_url + "/monitoring/prometheus/metrics", timeout=10).text
    assert ':tensorflow:serving:request_count{model_name="mura_binary",status="OK"}' in metrics
    assert ":tensorflow:serving:request_latency_bucket" in metrics


# ---- bad input: TF Serving's codes and messages; the server keeps serving afterwards ----

REST_CASES = [
    ("/v1/models/nope:predict", {"instances": [1.0]}, 404, "Servable not found for request: Latest(nope)"),
    (
        "/v1/models/linear/versions/99:predict",
        {"instances": [1.0]},
        404,
        "Servable not found for request: Specific(linear, 99)",
    ),
    (
        "/v1/models/linear/labels/gold:predict",
        {"instances": [1.0]},
        400,
        "Unrecognized servable version label: gold",
    ),
    ("/v1/models/linear:predict", b"{not json", 400, "JSON Parse error"),
    (
        "/v1/models/linear:predict",
        {"signature_name": "serving_default"},
        400,
        "Missing 'inputs' or 'instances' key",
    ),
    (
        "/v1/models/linear:predict",
        {"instances": [1.0], "inputs": [1.0]},
        400,
        "expecting only one of 'inputs' or 'instances'",
    ),
    (
        "/v1/models/mura_binary:predict",
        {"instances": [{"b64": "%%%not base64"}]},
        400,
        "Unable to base64 decode",
    ),
    ("/v1/models/linear:predict", {"instances": [{"z": 1.0}]}, 400, "must only have keys: x"),
    (
        "/v1/models/linear:predict",
        {"inputs": {"z": [1.0]}},
        400,
        "Missing named input: x in 'inputs' object.",
    ),
    (
        "/v1/models/linear:predict",
        {"signature_name": "nope", "instances": [1.0]},
        400,
        'Serving signature key "nope" not found.',
    ),
    ("/v1/models/linear:predict", {"instances": ["a"]}, 400, "is not of expected type: float"),
    (
        "/v1/models/mura_binary:predict",
        {"instances": [b64(b"%PDF-1.4 not an image")]},
        400,
        "is not a PNG, JPEG, GIF or BMP image",
    ),
    (
        "/v1/models/mura_binary:predict",
        {"instances": [b64(png_header_only(60000, 60000))]},
        400,
        "over the limit",
    ),
    ("/v1/models/linear:classify", {"examples": []}, 501, "not supported"),
]


@pytest.mark.parametrize("path,payload,status,message", REST_CASES)
def test_rest_bad_input(server, path, payload, status, message):
    response = rest_post(server, path, payload)
    assert response.status_code == status, response.text
    assert message in response.json()["error"]
    assert rest_post(server, "/v1/models/linear:predict", {"instances": [2.0]}).json() == {
        "predictions": [3.0]
    }


def test_rest_truncated_png_and_request_limit(server, images):
    truncated = images[0][: len(images[0]) // 2]
    response = rest_post(server, "/v1/models/mura_binary:predict", {"instances": [b64(truncated)]})
    assert response.status_code == 400 and "PNG" in response.json()["error"]
    too_big = {"instances": [b64(b"\x89PNG\r\n\x1a\n" + bytes(MAX_REQUEST_BYTES))]}
    response = rest_post(server, "/v1/models/mura_binary:predict", too_big)
    assert response.status_code == 413 and "over the limit" in response.json()["error"]
    assert (
        rest_post(server, "/v1/models/mura_binary:predict", {"instances": [b64(images[0])]}).status_code
        == 200
    )


GRPC_CASES = [
    ("nope", {"x": [1.0]}, {}, "NOT_FOUND", "Servable not found for request: Latest(nope)"),
    (
        "linear",
        {"x": [1.0]},
        {"version": 7},
        "NOT_FOUND",
        "Servable not found for request: Specific(linear, 7)",
    ),
    (
        "linear",
        {"x": [1.0]},
        {"label": "gold"},
        "INVALID_ARGUMENT",
        "Unrecognized servable version label: gold",
    ),
    (
        "linear",
        {"z": [1.0]},
        {},
        "INVALID_ARGUMENT",
        "input tensor alias not found in signature: z. Inputs expected to be in the set {x}.",
    ),
    ("linear", {"x": [1.0], "z": [1.0]}, {}, "INVALID_ARGUMENT", "input size does not match signature"),
    (
        "linear",
        {"x": [1.0]},
        {"signature": "nope"},
        "FAILED_PRECONDITION",
        'Serving signature key "nope" not found.',
    ),
    ("linear", {"x": ["a"]}, {}, "INVALID_ARGUMENT", "has dtype string but the signature expects float32"),
    ("mura_binary", {"image_bytes": [b"GIF89a\x00\x00"]}, {}, "INVALID_ARGUMENT", "image_bytes[0]"),
    (
        "mura_binary",
        {"image_bytes": [b"plain text"]},
        {},
        "INVALID_ARGUMENT",
        "is not a PNG, JPEG, GIF or BMP image",
    ),
    (
        "mura_binary",
        {"image_bytes": [png_header_only(100000, 400)]},
        {},
        "INVALID_ARGUMENT",
        "over the limit",
    ),
    (
        "mura_binary",
        {"image_bytes": [b"\x89PNG" + bytes(MAX_REQUEST_BYTES)]},
        {},
        "RESOURCE_EXHAUSTED",
        "larger than max",
    ),
]


@pytest.mark.parametrize("model,inputs,spec,code,message", GRPC_CASES)
def test_grpc_bad_input(server, stubs, model, inputs, spec, code, message):
    import grpc

    arrays = {
        name: np.array(value, dtype=object if isinstance(value[0], bytes | str) else np.float32)
        for name, value in inputs.items()
    }
    with pytest.raises(grpc.RpcError) as caught:
        grpc_predict(
            stubs[0], model, arrays, spec.get("version"), spec.get("label"), spec.get("signature", "")
        )
    assert caught.value.code().name == code
    assert message in caught.value.details()
    outputs, _ = grpc_predict(stubs[0], "linear", {"x": np.array([0.0], dtype=np.float32)})
    assert outputs["y"].tolist() == [2.0]


def test_cli_predict(server, images, tmp_path, capsys):
    from pipelines.cli import main

    study = tmp_path / "XR_WRIST" / "patient00002" / "study1_negative"
    study.mkdir(parents=True)
    (study / "image1.png").write_bytes(images[0])
    assert main(["predict", str(study), "--target", server.grpc_target, "--json"]) == 0
    result = json.loads(capsys.readouterr().out)
    assert result["sentence"] == f"X-ray of XR_WRIST is {result['label']}." and result["version"] == 1
    assert main(["predict", str(study), "--target", server.grpc_target, "--label", "stable"]) == 0
    printed = capsys.readouterr().out
    assert "study of 1 image:" in printed and "answered by mura_binary version 1, label stable" in printed
    # One image is not called a study, and REST (whose reply has no version) still names the version.
    assert main(["predict", str(study / "image1.png"), "--rest", "--target", server.rest_url]) == 0
    printed = capsys.readouterr().out
    assert printed.startswith("X-ray of XR_WRIST is") and "this image alone, not its whole study" in printed
    assert "answered by mura_binary version 1" in printed
    assert main(["predict", str(study), "--target", "127.0.0.1:9"]) == 1
    assert "no TF Serving answers at 127.0.0.1:9" in capsys.readouterr().err
    assert main(["predict", str(tmp_path / "missing.png"), "--target", server.grpc_target]) == 1


def test_cli_predict_answers_each_study_under_a_study_type_folder(server, images, tmp_path, capsys):
    from pipelines.cli import main

    part = tmp_path / "XR_HAND"
    studies = [part / "patient00001" / "study1_positive", part / "patient00002" / "study1_negative"]
    for index, study in enumerate(studies):
        study.mkdir(parents=True)
        for image in images[: index + 1]:
            (study / f"image{images.index(image)}.png").write_bytes(image)
    (part / "patient00003").mkdir()  # a patient with no images is skipped
    assert main(["predict", str(part), "--target", server.grpc_target, "--json"]) == 0
    result = json.loads(capsys.readouterr().out)
    assert [Path(item["study"]) for item in result["studies"]] == studies
    assert [len(item["images"]) for item in result["studies"]] == [1, 2]
    assert result["model"] == "mura_binary" and result["version"] == 1
    assert main(["predict", str(part / "patient00002"), "--target", server.grpc_target]) == 0
    assert capsys.readouterr().out.startswith("X-ray of XR_HAND is")
    assert main(["predict", str(part), "--target", server.grpc_target]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[0].startswith("patient00001/study1_positive: X-ray of XR_HAND is")
    assert lines[-1].startswith("2 studies: ") and "answered by mura_binary version 1" in lines[-1]
    assert main(["predict", str(part / "patient00003"), "--target", server.grpc_target]) == 1
    assert "holds no PNG or JPEG image in it or in any folder below it" in capsys.readouterr().err
    # --explain: one overlay per image (3 images in 2 studies), over REST as over gRPC.
    overlays = tmp_path / "overlays"
    assert (
        main(
            [
                "predict",
                str(part),
                "--rest",
                "--target",
                server.rest_url,
                "--explain",
                str(overlays),
                "--json",
            ]
        )
        == 0
    )
    result = json.loads(capsys.readouterr().out)
    written = [Path(image["overlay"]) for study in result["studies"] for image in study["images"]]
    assert sorted(written) == sorted(overlays.glob("*.png")) and len(written) == 3
    from PIL import Image

    with Image.open(written[0]) as picture:
        assert picture.format == "PNG" and picture.width > 300


TF_FREE_CLIENT = """
import json, sys
from serving.client import ServingClient
with ServingClient(sys.argv[1], protocol="grpc") as client:
    images = [open(path, "rb").read() for path in sys.argv[2:]]
    answers = client.predict_images(images, model="mura_binary", label="stable")
    states = client.model_status("mura_binary")
print(json.dumps({"answers": answers, "states": states, "tensorflow": sorted(
    name for name in sys.modules if name == "tensorflow" or name.startswith("tensorflow.")
)}))
"""


def test_grpc_client_runs_without_tensorflow_and_equals_in_process(server, exported, images, tmp_path):
    paths = []
    for index, image in enumerate(images):
        paths.append(tmp_path / f"image{index}")
        paths[-1].write_bytes(image)
    done = subprocess.run(
        [sys.executable, "-c", TF_FREE_CLIENT, server.grpc_target, *map(str, paths)],
        capture_output=True,
        text=True,
        timeout=120,
        check=True,
    )
    result = json.loads(done.stdout)
    assert result["tensorflow"] == []  # not one TensorFlow module was imported
    assert result["states"] == [{"version": 1, "state": "AVAILABLE", "error_message": ""}]
    expected = in_process(exported[("binary", 0)], images)
    served = np.array([answer["abnormal_probability"] for answer in result["answers"]])
    np.testing.assert_allclose(served, expected["abnormal_probability"].reshape(-1), rtol=0, atol=1e-6)
    assert [answer["label"] for answer in result["answers"]] == [
        label.decode() for label in expected["label"].reshape(-1)
    ]


# ---- load: concurrent requests, and a version swap while requests flow ----


def _hammer(server, stubs, images, model, count, label, errors, versions):
    for index in range(count):
        try:
            if index % 2:
                outputs, version = grpc_predict(
                    stubs[0], model, {"image_bytes": np.array(images[:2], dtype=object)}, label=label
                )
                assert outputs["abnormal_probability"].shape == (2,)
                versions.add(version)
            else:
                path = f"/v1/models/{model}" + (f"/labels/{label}" if label else "") + ":predict"
                response = rest_post(server, path, {"instances": [b64(images[index % len(images)])]})
                assert response.status_code == 200, response.text
        except Exception as error:  # noqa: BLE001 - every failure is collected and reported
            errors.append(repr(error))


def test_concurrent_load_has_no_errors(server, stubs, images):
    errors, versions = [], set()
    threads = [
        threading.Thread(
            target=_hammer, args=(server, stubs, images, "mura_binary", 40, None, errors, versions)
        )
        for _ in range(8)
    ]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert errors == []
    metrics = requests.get(server.rest_url + "/monitoring/prometheus/metrics", timeout=10).text
    assert ':tensorflow:serving:request_count{model_name="mura_binary",status="OK"}' in metrics


def _wait_for(condition, what: str, timeout: float = 60.0):
    import time

    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if condition():
            return
        time.sleep(0.05)
    raise AssertionError(f"timed out waiting for {what}")


def test_version_swap_under_load_has_no_failed_request(server, stubs, exported, images):
    from serving import repository
    from serving.client import ServingClient

    name, base, config = "mura_binary_elbow", server.base, server.config
    repository.publish_version(exported[("binary:XR_ELBOW", 2)], name, base_path=base)
    repository.set_served_versions(name, [1], {"stable": 1}, config_path=config, base_path=base)
    client = ServingClient(server.grpc_target)
    _wait_for(lambda: _state(client, name, 1) == "AVAILABLE", "version 1")
    errors, versions, stop = [], set(), threading.Event()

    def flow():
        while not stop.is_set():
            _hammer(server, stubs, images, name, 2, "stable", errors, versions)

    threads = [threading.Thread(target=flow) for _ in range(4)]
    for thread in threads:
        thread.start()
    repository.publish_version(exported[("binary:XR_ELBOW", 3)], name, base_path=base)
    repository.set_served_versions(name, [1, 2], {"stable": 1}, config_path=config, base_path=base)
    _wait_for(lambda: _state(client, name, 2) == "AVAILABLE", "version 2 to load")
    repository.set_version_label(name, "stable", 2, config_path=config, base_path=base)
    _wait_for(lambda: 2 in versions, "requests to reach version 2")
    repository.set_served_versions(name, [2], {"stable": 2}, config_path=config, base_path=base)
    _wait_for(lambda: _state(client, name, 1) == "END", "version 1 to unload")
    stop.set()
    for thread in threads:
        thread.join()
    client.close()
    assert errors == []
    assert versions == {1, 2}


def _state(client, name, version):
    from serving.errors import ServingClientError

    try:
        return client.model_status(name, version=version)[0]["state"]
    except ServingClientError:
        return None


def test_label_may_only_name_a_loaded_version(server, stubs):
    from tensorflow_serving.apis import model_management_pb2

    from serving import repository

    config = repository.read_models_config(server.config)
    entry = repository.find_model(config, "linear")
    entry.version_labels["canary"] = 5
    response = stubs[1].HandleReloadConfigRequest(
        model_management_pb2.ReloadConfigRequest(config=config), timeout=30
    )
    assert response.status.error_code == 9  # FAILED_PRECONDITION
    assert "Request to assign label to version 5 of model linear" in response.status.error_message
    assert (
        rest_post(server, "/v1/models/linear/labels/stable:predict", {"instances": [2.0]}).status_code == 200
    )
    assert server.manager.labels("linear") == {"stable": 1}


@pytest.mark.parametrize("protocol", ["grpc", "rest"])
def test_explain_signature_served_equals_in_process(server, exported, images, protocol):
    import tensorflow as tf

    from serving.client import ServingClient

    loaded = tf.saved_model.load(str(exported[("binary", 0)]))
    expected = {
        k: v.numpy() for k, v in loaded.signatures["explain"](image_bytes=tf.constant(images)).items()
    }
    target = server.grpc_target if protocol == "grpc" else server.rest_url
    with ServingClient(target, protocol=protocol) as client:
        outputs, _ = client.predict({"image_bytes": images}, "mura_binary", signature_name="explain")
    assert set(outputs) == set(expected)
    np.testing.assert_allclose(outputs["heatmap"], expected["heatmap"], rtol=0, atol=1e-6)
    np.testing.assert_array_equal(outputs["heatmap_box"], expected["heatmap_box"])
    np.testing.assert_array_equal(outputs["image_size"], expected["image_size"])
