"""The TLS inference gateway: Debian's nginx in front of the local TF-Serving-compatible server."""

from __future__ import annotations

import socket
import subprocess
import threading
import time

import numpy as np
import pytest
import requests

from mura_core.ports import free_ports

TOKEN = "s3cret-token"
X = [1.0, 2.0, -3.5]


def _nginx() -> str:
    from pipelines.stack.services import nginx_binary

    found = nginx_binary()
    if found is None:
        pytest.fail("the gateway tests need nginx: run `apt-get install nginx` (Debian), then test again")
    return found


def _linear_models(base):
    """models.config serving the linear test model as `linear` (label stable)."""
    from serving import repository, samples

    samples.write_linear_saved_model(base / "linear" / "1")
    config = base / "models.config"
    models = repository.read_models_config(config)
    linear = repository.ensure_model(models, "linear", base / "linear")
    linear.model_version_policy.specific.versions.append(1)
    linear.version_labels["stable"] = 1
    repository.write_models_config(models, config)
    return config


def _serve(config, grpc_port: int = 0, rest_port: int = 0):
    from serving.server import ServerOptions, start_server

    return start_server(
        ServerOptions(
            port=grpc_port,
            rest_api_port=rest_port,
            model_config_file=str(config),
            model_config_file_poll_wait_seconds=0,
        )
    )


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    handle = _serve(_linear_models(tmp_path_factory.mktemp("gateway_models")))
    yield handle
    handle.stop()


def _start_gateway(folder, server, token, dead_replicas: int = 0, replica=None, hung=()):
    """nginx in front of `server`, after `dead_replicas` upstreams nothing listens on and the `hung`
    (gRPC, REST) ports that accept and never answer, and before `replica` when given."""
    from serving.gateway import GatewayOptions, command, ensure_certificate, write_standalone

    certificate, key, ca = ensure_certificate(folder / "certs")
    grpc_port, rest_port, *dead = free_ports(2 + 2 * dead_replicas)
    dead += [port for pair in hung for port in pair]
    servers = [server, *([replica] if replica else [])]
    options = GatewayOptions(
        grpc_listen=f"127.0.0.1:{grpc_port}",
        rest_listen=f"127.0.0.1:{rest_port}",
        upstream_grpc=(*[f"127.0.0.1:{port}" for port in dead[::2]], *[one.grpc_target for one in servers]),
        upstream_rest=(
            *[f"127.0.0.1:{port}" for port in dead[1::2]],
            *[one.rest_url.removeprefix("http://") for one in servers],
        ),
        certificate=str(certificate),
        key=str(key),
        token=token,
    )
    prefix = folder / "nginx"
    config = write_standalone(options, prefix)
    process = subprocess.Popen(command(_nginx(), config, prefix), stderr=subprocess.PIPE, text=True)
    deadline = time.monotonic() + 60  # generous: two test workers share the cores
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise AssertionError(
                f"nginx exited: {process.stderr.read()} {(prefix / 'error.log').read_text()}"
            )
        try:
            socket.create_connection(("127.0.0.1", rest_port), timeout=1).close()
            break
        except OSError:
            time.sleep(0.1)
    return process, options, ca


@pytest.fixture(scope="module", params=[None, TOKEN], ids=["open", "token"])
def gateway(request, tmp_path_factory, server):
    folder = tmp_path_factory.mktemp("gateway")
    process, options, certificate = _start_gateway(folder, server, request.param)
    yield {
        "options": options,
        "ca": certificate,
        "token": request.param,
        "config": str(folder / "nginx" / "nginx.conf"),
        "prefix": folder / "nginx",
    }
    process.terminate()
    process.wait(timeout=20)


def _client(gateway, protocol, token=None):
    from serving.client import ServingClient

    options = gateway["options"]
    target = options.grpc_listen if protocol == "grpc" else options.rest_listen
    return ServingClient(target, protocol=protocol, tls_ca=gateway["ca"], token=token or gateway["token"])


@pytest.mark.parametrize("protocol", ["grpc", "rest"])
def test_predict_through_the_gateway_equals_a_direct_call(gateway, server, protocol):
    from serving.client import ServingClient

    direct_target = server.grpc_target if protocol == "grpc" else server.rest_url
    with ServingClient(direct_target, protocol=protocol) as direct, _client(gateway, protocol) as through:
        expected, _ = direct.predict({"x": np.array(X, np.float32)}, "linear", label="stable")
        got, _ = through.predict({"x": np.array(X, np.float32)}, "linear", label="stable")
        assert np.array_equal(got["y"], expected["y"]) and np.allclose(got["y"], [2.5, 3.0, 0.25])
        assert through.model_status("linear")[0]["state"] == "AVAILABLE"


def test_tls_against_a_plain_port_and_plain_against_the_gateway_are_named_as_such(gateway, server):
    """With MURA_SERVING_TLS_CA set for the gateway, a call to the plain port said "no TF Serving answers
    ... start it with mura serve": the protocol mismatch is named now, each way, over gRPC and REST."""
    from serving.client import ServingClient
    from serving.errors import ServingClientError

    x = {"x": np.array(X, np.float32)}
    cases = [
        (ServingClient(server.grpc_target, tls_ca=gateway["ca"]), "answers without TLS"),
        (
            ServingClient(server.rest_url.removeprefix("http://"), protocol="rest", tls_ca=gateway["ca"]),
            "answers without TLS",
        ),
        (
            ServingClient(gateway["options"].grpc_listen),
            "answers HTTP/1, not gRPC: a REST port, or the TLS gateway",
        ),
        (ServingClient(gateway["options"].rest_listen, protocol="rest"), "is the TLS gateway"),
    ]
    for client, named in cases:
        with client, pytest.raises(ServingClientError, match=named):
            client.predict(x, "linear", label="stable")


def _every_call_answered(gateway: dict, calls: int) -> None:
    """`calls` predictions over gRPC, then over REST, through `gateway`: each one answered right."""
    for protocol in ("grpc", "rest"):
        with _client(gateway, protocol) as client:
            answers = [
                client.predict({"x": np.array(X, np.float32)}, "linear", label="stable")[0]["y"]
                for _ in range(calls)
            ]
        assert all(np.allclose(answer, [2.5, 3.0, 0.25]) for answer in answers), protocol


def test_a_dead_replica_costs_no_request(server, tmp_path):
    """The first replica is down (killed, restarting): every call, gRPC and REST, is answered by the
    other one, including the calls nginx first sent to the dead one."""
    process, options, certificate = _start_gateway(tmp_path, server, None, dead_replicas=1)
    try:
        _every_call_answered({"options": options, "ca": certificate, "token": None}, calls=6)
        tried = (tmp_path / "nginx" / "error.log").read_text()
        assert "Connection refused" in tried  # the dead replica was tried, and the caller never knew
    finally:
        process.terminate()
        process.wait(timeout=20)


def test_a_hung_replica_costs_a_bounded_wait_and_no_request(server, tmp_path, monkeypatch):
    """The first replica is alive but answers nothing (stopped with SIGSTOP: the kernel still accepts
    its connections). Each call nginx sends there is sent to the other once the answer bound passes
    (params.yaml serving.gateway_answer_seconds, 2 s here); before, nginx waited 120 s and never sent
    a call already sent elsewhere, so the client's deadline ran out."""
    import yaml

    from mura_core.settings import REPO_ROOT

    params = yaml.safe_load((REPO_ROOT / "params.yaml").read_text())
    params["serving"]["gateway_answer_seconds"] = 2
    (tmp_path / "params.yaml").write_text(yaml.safe_dump(params))
    monkeypatch.setenv("MURA_PARAMS_FILE", str(tmp_path / "params.yaml"))
    hung = [socket.create_server(("127.0.0.1", 0), backlog=64) for _ in range(2)]  # never accepted
    ports = tuple(listener.getsockname()[1] for listener in hung)
    process, options, certificate = _start_gateway(tmp_path, server, None, hung=[ports])
    try:
        # Round robin: the first call of each protocol meets the hung one.
        _every_call_answered({"options": options, "ca": certificate, "token": None}, calls=2)
        assert "upstream timed out" in (tmp_path / "nginx" / "error.log").read_text()
    finally:
        process.terminate()
        process.wait(timeout=20)
        for listener in hung:
            listener.close()


def test_the_replicas_killed_one_after_the_other_cost_no_request(tmp_path):
    """Replica A dies and comes back, then B dies at once: the gateway must send to A again
    although A failed moments ago (nginx's marking of a failed server kept A down for its
    fail_timeout: 502 with one replica up)."""
    config = _linear_models(tmp_path / "models")
    first, second = _serve(config), _serve(config)
    ports = (first.grpc_port, first.rest_port)
    process, options, certificate = _start_gateway(tmp_path, first, None, replica=second)
    gateway = {"options": options, "ca": certificate, "token": None}

    def answered(count: int) -> list:
        with _client(gateway, "grpc") as client:
            return [
                client.predict({"x": np.array(X, np.float32)}, "linear", label="stable")[0]["y"].tolist()
                for _ in range(count)
            ]

    try:
        assert len(answered(4)) == 4
        first.stop(0)
        assert len(answered(4)) == 4  # all from the second; the first was tried and refused
        first = _serve(config, *ports)  # back on its ports
        second.stop(0)
        assert answered(4) == [[2.5, 3.0, 0.25]] * 4  # all from the first, at once
    finally:
        process.terminate()
        process.wait(timeout=20)
        first.stop(0)
        second.stop(0)


def test_reload_config_is_refused_at_the_gateway_and_nothing_is_unloaded(gateway):
    import grpc

    options = gateway["options"]
    credentials = grpc.ssl_channel_credentials(root_certificates=gateway["ca"].read_bytes())
    metadata = [("authorization", f"Bearer {TOKEN}")] if gateway["token"] else None
    with grpc.secure_channel(options.grpc_listen, credentials) as channel:
        # An empty ReloadConfigRequest would unload every model: exactly what must not get through.
        reload = channel.unary_unary(
            "/tensorflow.serving.ModelService/HandleReloadConfigRequest",
            request_serializer=lambda body: body,
            response_deserializer=lambda body: body,
        )
        with pytest.raises(grpc.RpcError) as refused:
            reload(b"", timeout=10, metadata=metadata)
    assert refused.value.code() == grpc.StatusCode.PERMISSION_DENIED
    with _client(gateway, "grpc") as client:
        assert client.model_status("linear")[0]["state"] == "AVAILABLE"


def test_rest_passes_only_reads_and_predict(gateway):
    base = f"https://{gateway['options'].rest_listen}"
    headers = {"Authorization": f"Bearer {TOKEN}"} if gateway["token"] else {}
    get = requests.get(
        f"{base}/v1/models/linear/metadata", verify=str(gateway["ca"]), headers=headers, timeout=10
    )
    assert get.status_code == 200 and "signature_def" in get.text
    for method, path in (
        ("GET", "/monitoring/prometheus/metrics"),
        ("POST", "/v1/models/linear/metadata"),
        ("GET", "/v1/models/linear:predict"),
        ("GET", "/v1/models/../../etc/passwd"),
    ):
        answer = requests.request(method, base + path, verify=str(gateway["ca"]), headers=headers, timeout=10)
        assert answer.status_code in (403, 404), (method, path, answer.status_code)
    with pytest.raises(requests.exceptions.SSLError):
        requests.get(f"{base}/v1/models/linear", timeout=10)  # TLS with a certificate the caller must trust


def _raw_request(gateway, request_line: str, extra: str = "") -> str:
    """The gateway's status line and headers for a request sent byte for byte (clients normalise paths)."""
    import ssl

    host, port = gateway["options"].rest_listen.rsplit(":", 1)
    context = ssl.create_default_context(cafile=str(gateway["ca"]))
    with socket.create_connection((host, int(port)), timeout=10) as plain:
        with context.wrap_socket(plain, server_hostname="localhost") as stream:
            token = f"Authorization: Bearer {gateway['token']}\r\n" if gateway["token"] else ""
            stream.sendall(
                f"{request_line}\r\nHost: localhost\r\n{token}{extra}Connection: close\r\n\r\n".encode()
            )
            answer = b""
            while chunk := stream.recv(65536):
                answer += chunk
    return answer.decode("latin-1")


def test_dot_segments_are_refused_before_matching_and_the_version_is_not_announced(gateway):
    """`/x/../v1/models/m` used to match the allowed location (nginx matches the normalised path) and
    reach TF Serving as sent; encoded dots, slashes and backslashes the same. nginx said its version
    in every answer and error page."""
    plain = _raw_request(gateway, "GET /v1/models/linear HTTP/1.1")
    assert plain.startswith("HTTP/1.1 200"), plain[:200]
    for path in (
        "/monitoring/prometheus/../../v1/models/linear",
        "/v1/models/linear/./metadata",
        "/v1/models/linear/versions/1/..",
        "/v1/models/%2e%2e/linear",
        "/v1/models%2flinear",
        "/v1/models/linear%5c..",
    ):
        answer = _raw_request(gateway, f"GET {path} HTTP/1.1")
        assert answer.startswith("HTTP/1.1 400"), (path, answer[:200])
    denied = _raw_request(gateway, "DELETE /v1/models/linear HTTP/1.1")
    assert denied.startswith("HTTP/1.1 403")
    for answer in (plain, denied):
        server = next(line for line in answer.split("\r\n") if line.lower().startswith("server:"))
        assert server.strip().lower() == "server: nginx" and "nginx/" not in answer, answer[:400]


@pytest.fixture(scope="module")
def token_gateway(tmp_path_factory, server):
    process, options, certificate = _start_gateway(tmp_path_factory.mktemp("gateway"), server, TOKEN)
    yield {"options": options, "ca": certificate, "token": TOKEN}
    process.terminate()
    process.wait(timeout=20)


def test_a_missing_or_wrong_token_is_refused_when_tokens_are_on(token_gateway):
    from serving.errors import ServingClientError

    gateway = token_gateway
    for protocol in ("grpc", "rest"):
        with (
            _client(gateway, protocol, token="wrong") as client,
            pytest.raises(ServingClientError) as refused,
        ):
            client.predict({"x": np.array(X, np.float32)}, "linear")
        assert refused.value.code == "UNAUTHENTICATED", protocol
    plain = requests.get(
        f"https://{gateway['options'].rest_listen}/v1/models/linear", verify=str(gateway["ca"]), timeout=10
    )
    assert plain.status_code == 401


def test_the_certificate_is_a_leaf_of_a_ca_whose_key_is_gone_and_its_key_is_private(tmp_path):
    """The certificate clients trust was the server's own, with CA:TRUE: its key could sign a
    certificate for any host. Now clients trust a CA that signed this one leaf and whose key was
    never written; a folder an older version filled (one self-signed certificate) is made again."""
    import stat

    from cryptography import x509
    from cryptography.x509.oid import ExtendedKeyUsageOID

    from serving.gateway import ensure_certificate

    (tmp_path / "gateway.crt").write_text("an older version's self-signed certificate")
    (tmp_path / "gateway.key").write_text("its key")
    made = ensure_certificate(tmp_path)
    assert stat.S_IMODE(made.key.stat().st_mode) == 0o600
    assert ensure_certificate(tmp_path) == made  # made once
    leaf = x509.load_pem_x509_certificate(made.certificate.read_bytes())
    ca = x509.load_pem_x509_certificate(made.ca.read_bytes())
    assert leaf.extensions.get_extension_for_class(x509.BasicConstraints).value.ca is False
    assert leaf.extensions.get_extension_for_class(x509.KeyUsage).value.key_cert_sign is False
    assert list(leaf.extensions.get_extension_for_class(x509.ExtendedKeyUsage).value) == [
        ExtendedKeyUsageOID.SERVER_AUTH
    ]
    assert ca.extensions.get_extension_for_class(x509.BasicConstraints).value.path_length == 0
    leaf.verify_directly_issued_by(ca)
    assert sorted(path.name for path in tmp_path.iterdir()) == ["ca.crt", "gateway.crt", "gateway.key"]
    assert b"PRIVATE KEY" not in made.ca.read_bytes() + made.certificate.read_bytes()


def test_an_http_0_9_request_is_closed_unanswered(gateway):
    """nginx answered `GET /v1/models/linear` (no version: HTTP/0.9) with a bare body, no status line
    or headers for a client or a log to check."""
    import ssl

    host, port = gateway["options"].rest_listen.rsplit(":", 1)
    context = ssl.create_default_context(cafile=str(gateway["ca"]))
    with socket.create_connection((host, int(port)), timeout=10) as plain:
        with context.wrap_socket(plain, server_hostname="localhost") as stream:
            stream.sendall(b"GET /v1/models/linear\r\n")  # no version, no headers: HTTP/0.9
            answer = b""
            try:
                while chunk := stream.recv(65536):
                    answer += chunk
            except (ssl.SSLError, ConnectionResetError):
                pass
    assert answer == b""
    assert _raw_request(gateway, "GET /v1/models/linear HTTP/1.0").startswith("HTTP/1.1 200")


def test_the_workers_do_not_run_as_root_and_still_spool_a_large_body(gateway):
    """Run as root (CI is), nginx's workers ran as root, then as the shared `nobody`; they run as a
    system user of their own, and a body past the in-memory buffer is still written to their temp
    folder and passed on."""
    import os
    import pwd

    import psutil

    from serving.gateway import GATEWAY_USER

    master = next(
        process
        for process in psutil.process_iter(["cmdline"])
        if process.info["cmdline"] and gateway["config"] in process.info["cmdline"]
    )
    workers = master.children()
    assert workers
    expected = pwd.getpwnam(GATEWAY_USER).pw_uid if os.geteuid() == 0 else os.geteuid()
    assert expected != 65534  # not nobody
    assert {worker.uids().effective for worker in workers} == {expected}
    padding = "0" * (3 << 20)  # 3 MiB: past the 1 MiB buffer, spooled to the temp folder
    base = f"https://{gateway['options'].rest_listen}/v1/models/linear:predict"
    headers = {"Authorization": f"Bearer {gateway['token']}"} if gateway["token"] else {}
    answer = requests.post(
        base,
        data=f'{{"instances": [{X}], "pad": "{padding}"}}',
        headers=headers,
        verify=str(gateway["ca"]),
        timeout=30,
    )
    assert answer.status_code in (200, 400), answer.text[:300]  # the server's answer, not nginx's 500
    assert "Permission denied" not in (gateway["prefix"] / "error.log").read_text()


def test_the_compose_gateway_template_is_a_valid_nginx_configuration(tmp_path):
    """The template as the nginx image fills it (token from the environment), with the compose host
    names pointed at this machine, passes `nginx -t`."""
    from serving.gateway import compose_template, ensure_certificate

    certificate, key, _ = ensure_certificate(tmp_path / "certs")
    body = (
        compose_template()
        .replace("${MURA_GATEWAY_TOKEN}", TOKEN)
        .replace("tfserving:", "127.0.0.1:")
        .replace("/etc/nginx/certs/gateway.crt", str(certificate))
        .replace("/etc/nginx/certs/gateway.key", str(key))
    )
    assert "${" not in body  # every placeholder filled
    config = tmp_path / "nginx.conf"
    config.write_text(f"pid {tmp_path / 'nginx.pid'};\nevents {{}}\nhttp {{\n{body}}}\n", encoding="utf-8")
    checked = subprocess.run(
        [_nginx(), "-t", "-p", str(tmp_path), "-e", str(tmp_path / "error.log"), "-c", str(config)],
        capture_output=True,
        text=True,
        check=False,
    )
    assert checked.returncode == 0, checked.stderr


def test_the_tfserving_healthcheck_asks_each_configured_model(server, tmp_path):
    """infra/tfserving/healthcheck.sh (compose's TF Serving healthcheck) against a real REST API."""
    from mura_core.settings import REPO_ROOT

    script = REPO_ROOT / "infra" / "tfserving" / "healthcheck.sh"
    port = server.rest_url.rsplit(":", 1)[1]

    def check(config_text: str) -> int:
        config = tmp_path / "models.config"
        config.write_text(config_text)
        env = {"PATH": "/usr/bin:/bin", "MODELS_CONFIG": str(config), "REST_PORT": port}
        return subprocess.run(["bash", str(script)], env=env, capture_output=True, timeout=30).returncode

    assert check("model_config_list {\n}\n") == 0  # nothing deployed yet: the API answers
    assert check('model_config_list {\n  config {\n    name: "linear"\n  }\n}\n') == 0
    assert (
        check(
            'model_config_list {\n  config {\n    name: "linear"\n  }\n  config {\n    name: "mura_binary"\n  }\n}\n'
        )
        == 1
    )


def _slow_http_server(body_chunks: list[bytes]) -> tuple[int, threading.Thread]:
    """A one-connection HTTP server that sends its response in chunks 0.2 s apart (a slow TF Serving)."""
    listener = socket.create_server(("127.0.0.1", 0))
    port = listener.getsockname()[1]

    def serve() -> None:
        with listener:
            conn, _ = listener.accept()
            with conn:
                conn.recv(4096)
                for chunk in body_chunks:
                    try:
                        conn.sendall(chunk)
                    except OSError:
                        return  # the client hung up early: that is what the test catches
                    time.sleep(0.2)

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    return port, thread


@pytest.mark.parametrize(
    ("config_text", "chunks"),
    [
        ("model_config_list {\n}\n", [b"HTTP/1.0 404 Not Found\r\n", b"\r\n", b'{"error": "no model"}' * 50]),
        (
            'model_config_list {\n  config {\n    name: "linear"\n  }\n}\n',
            [b'HTTP/1.0 200 OK\r\n\r\n{\n"state": "AVAILABLE",\n', b'"x": 1,\n' * 100, b"}\n"],
        ),
    ],
    ids=["no-model", "one-model"],
)
def test_the_tfserving_healthcheck_survives_a_response_that_arrives_in_pieces(tmp_path, config_text, chunks):
    """A healthy server whose answer comes in several TCP segments is healthy (it once died of SIGPIPE, 141)."""
    from mura_core.settings import REPO_ROOT

    config = tmp_path / "models.config"
    config.write_text(config_text)
    port, thread = _slow_http_server(chunks)
    env = {"PATH": "/usr/bin:/bin", "MODELS_CONFIG": str(config), "REST_PORT": str(port)}
    checked = subprocess.run(
        ["bash", str(REPO_ROOT / "infra" / "tfserving" / "healthcheck.sh")],
        env=env,
        capture_output=True,
        timeout=30,
    )
    thread.join(timeout=5)
    assert checked.returncode == 0, checked.stderr
