"""TF Serving's REST API: `/v1/models/{name}[/versions/{n}|/labels/{l}][/metadata|:predict]` and metrics.

An ASGI app served by uvicorn (a maintained HTTP server: strict HTTP/1.1 framing, keep-alive timeouts,
a real listen backlog, stalled connections cost no thread). The body limit counts the bytes actually
read, and the TensorFlow work runs in a bounded thread pool.
"""

from __future__ import annotations

import asyncio
import json
import logging
import re
import socket
import threading
import time

from mura_core.wire import content_length
from serving.server.core import ServingCore, parse_version
from serving.server.rest_json import parse_body, request_tensors, response_json
from serving.server.status import ServingError

LOGGER = logging.getLogger(__name__)
ROUTE = re.compile(
    r"^/v1/models/(?P<name>[^/:]+)(?:/versions/(?P<version>[^/:]+)|/labels/(?P<label>[^/:]+))?"
    r"(?P<suffix>/metadata|:predict|:classify|:regress)?/?$"
)
ALLOWED_METHOD = {
    None: "GET",
    "/metadata": "GET",
    ":predict": "POST",
    ":classify": "POST",
    ":regress": "POST",
}
LISTEN_BACKLOG = 1024
IDLE_TIMEOUT_SECONDS = 30  # keep-alive connections with nothing to say are closed after this
MAX_CONNECTIONS = 1000
DRAIN_FACTOR = 2  # after a 413, read at most this many times the limit before closing  # beyond this uvicorn answers 503 instead of queueing without end


class RestApp:
    """The ASGI application: route, read the body within the limit, run the request in a worker thread."""

    def __init__(self, core: ServingCore, max_request_bytes: int, metrics_path: str | None):
        self.core = core
        self.max_request_bytes = max_request_bytes
        self.metrics_path = metrics_path

    async def __call__(self, scope, receive, send) -> None:
        if scope["type"] != "http":
            return
        method, path = scope["method"], scope["path"]
        if method == "GET" and self.metrics_path and path == self.metrics_path:
            return await _send(send, 200, self.core.metrics.render(), "text/plain; version=0.0.4")
        body = b""
        if method == "POST":
            read = await self._read_body(scope, receive, send)
            if read is None:
                return
            body = read
        from starlette.concurrency import run_in_threadpool

        status, payload = await run_in_threadpool(self.handle, method, path, body)
        await _send(send, status, payload)

    async def _read_body(self, scope, receive, send) -> bytes | None:
        """The request body, or None after answering 413 when it grows past the limit."""
        declared = content_length(dict(scope["headers"]).get(b"content-length", b"0").decode("latin-1"))
        if declared is not None and declared > self.max_request_bytes:  # refused before it is stored
            await self._too_large(send, receive, declared)
            return None
        chunks, size, more = [], 0, True
        while more:
            message = await receive()
            chunk = message.get("body", b"")
            size += len(chunk)
            if size > self.max_request_bytes:  # chunked bodies declare no length: count what arrives
                await self._too_large(send, receive, size)
                return None
            chunks.append(chunk)
            more = message.get("more_body", False)
        return b"".join(chunks)

    async def _too_large(self, send, receive, size: int) -> None:
        message = (
            f"Request body of {size} bytes is over the limit of {self.max_request_bytes} bytes "
            "(serving.max_request_bytes); send fewer or smaller images per request"
        )
        await _send(send, 413, {"error": message}, close=True)
        # Read and drop a bounded part of the rest, so that a client still sending sees the answer
        # instead of a reset; a body far over the limit is cut off.
        drained, more = 0, True
        while more and drained < DRAIN_FACTOR * self.max_request_bytes:
            message = await receive()
            drained += len(message.get("body", b""))
            more = message.get("more_body", False) and message["type"] == "http.request"

    def handle(self, method: str, path: str, body: bytes) -> tuple[int, dict]:
        """(HTTP status, JSON payload) of one request; every failure in TF Serving's error shape."""
        match = ROUTE.match(path)
        suffix = match["suffix"] if match else None
        if match is None or ALLOWED_METHOD[suffix] != method:
            return 400, {"error": f"Malformed request: {method} {_printable(path)}"}
        try:
            version = parse_version(match["version"]) if match["version"] else None
            name, label = match["name"], match["label"]
            if suffix is None:
                return 200, self._status(name, version, label)
            if suffix == "/metadata":
                return 200, self._metadata(name, version, label)
            if suffix == ":predict":
                return 200, self._predict(name, version, label, body)
            raise ServingError("UNIMPLEMENTED", f"{suffix[1:]} is not supported by this server; use :predict")
        except ServingError as error:
            return error.http_status, {"error": error.message}
        except Exception as error:  # noqa: BLE001 - answer, never drop the connection
            LOGGER.exception("%s %s failed", method, _printable(path))
            return 500, {"error": f"{method} {_printable(path)} failed: {type(error).__name__}"}

    def _status(self, name, version, label) -> dict:
        statuses = self.core.manager.model_status(name, version, label)
        return {
            "model_version_status": [
                {
                    "version": str(number),
                    "state": status.state,
                    "status": {"error_code": status.error_code, "error_message": status.error_message},
                }
                for number, status in sorted(statuses.items())
            ]
        }

    def _metadata(self, name, version, label) -> dict:
        from google.protobuf import json_format

        servable = self.core.metadata(name, version, label)
        return {
            "model_spec": {"name": servable.name, "signature_name": "", "version": str(servable.version)},
            "metadata": {
                "signature_def": json_format.MessageToDict(
                    servable.signature_defs, preserving_proto_field_name=True
                )
            },
        }

    def _predict(self, name, version, label, body: bytes) -> dict:
        document = parse_body(body)  # TF Serving parses the JSON before looking up the model
        signature = document.get("signature_name", "")
        specs = self.core.input_specs(name, version, label, signature)
        dtypes = {
            key: "string" if spec.dtype.name == "string" else spec.dtype.name for key, spec in specs.items()
        }
        inputs, row_format = request_tensors(document, dtypes)
        _, outputs = self.core.predict(name, version, label, signature, inputs, None, "REST")
        return response_json(outputs, row_format)


def _printable(text: str, limit: int = 200) -> str:
    return text[:limit].encode("ascii", "backslashreplace").decode()


async def _send(
    send, status: int, payload, content_type: str = "application/json", close: bool = False
) -> None:
    body = (payload if isinstance(payload, str) else json.dumps(payload)).encode("utf-8")
    headers = [(b"content-type", content_type.encode()), (b"content-length", str(len(body)).encode())]
    if close:  # the rest of the body is not read: this connection cannot carry another request
        headers.append((b"connection", b"close"))
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": body})


class RestServer:
    """uvicorn running the app on a socket bound beforehand (port 0 picks a free one), in a thread."""

    def __init__(self, app: RestApp, sock: socket.socket):
        import uvicorn

        config = uvicorn.Config(
            app,
            lifespan="off",
            log_level="warning",
            access_log=False,
            backlog=LISTEN_BACKLOG,
            timeout_keep_alive=IDLE_TIMEOUT_SECONDS,
            limit_concurrency=MAX_CONNECTIONS,
            h11_max_incomplete_event_size=64 * 1024,
        )
        self._server = uvicorn.Server(config)
        self._socket = sock
        self._thread = threading.Thread(target=self._run, name="mura-rest", daemon=True)

    def _run(self) -> None:
        asyncio.run(self._server.serve(sockets=[self._socket]))

    def start(self, timeout_seconds: float = 10.0) -> None:
        """Start serving and wait until uvicorn accepts connections."""
        self._thread.start()
        deadline = time.monotonic() + timeout_seconds
        while not self._server.started:
            if not self._thread.is_alive() or time.monotonic() > deadline:
                raise ServingError("UNAVAILABLE", "the REST server did not start")
            time.sleep(0.02)

    def shutdown(self) -> None:
        """Stop accepting, finish in-flight requests, close the socket."""
        self._server.should_exit = True
        self._thread.join(timeout=10)

    def server_close(self) -> None:
        """Close the listening socket (already closed by uvicorn on a clean shutdown)."""
        self._socket.close()


def start_rest_server(
    core: ServingCore, host: str, port: int, max_request_bytes: int, metrics_path: str | None
):
    """Start the REST server in a thread; returns (server, bound port). OSError when the port is taken."""
    sock = socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    # Accepted connections inherit this: the response head and body go out as separate writes, and
    # with Nagle on the body waits for the client's delayed ACK (about 40 ms a request).
    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    try:
        sock.bind((host, port))
        sock.listen(LISTEN_BACKLOG)
    except OSError:
        sock.close()
        raise
    server = RestServer(RestApp(core, max_request_bytes, metrics_path), sock)
    server.start()
    return server, sock.getsockname()[1]
