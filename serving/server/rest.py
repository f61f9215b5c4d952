"""TF Serving's REST API: `/v1/models/{name}[/versions/{n}|/labels/{l}][/metadata|:predict]` and metrics."""

from __future__ import annotations

import json
import logging
import re
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from pipelines.wire import content_length, shown
from serving.server.core import ServingCore, parse_version
from serving.server.rest_json import parse_body, request_tensors, response_json
from serving.server.status import ServingError

LOGGER = logging.getLogger(__name__)
ROUTE = re.compile(
    r"^/v1/models/(?P<name>[^/:]+)(?:/versions/(?P<version>[^/:]+)|/labels/(?P<label>[^/:]+))?"
    r"(?P<suffix>/metadata|:predict|:classify|:regress)?/?$"
)


# A connection that sends nothing for this long is closed, so stalled clients do not hold threads forever.
IDLE_TIMEOUT_SECONDS = 30
LISTEN_BACKLOG = 1024


class RestServer(ThreadingHTTPServer):
    """A threaded HTTP/1.1 server holding the serving core, limits and the metrics path."""

    daemon_threads = True
    allow_reuse_address = True
    request_queue_size = LISTEN_BACKLOG  # http.server's default 5 makes connects wait for SYN retries

    def __init__(self, address, core: ServingCore, max_request_bytes: int, metrics_path: str | None):
        super().__init__(address, RestHandler)
        self.core = core
        self.max_request_bytes = max_request_bytes
        self.metrics_path = metrics_path


class RestHandler(BaseHTTPRequestHandler):
    """One connection; keep-alive like TF Serving's HTTP server."""

    protocol_version = "HTTP/1.1"
    disable_nagle_algorithm = True  # headers and body go out as separate writes: avoid the 40 ms ACK delay
    timeout = IDLE_TIMEOUT_SECONDS
    server: RestServer

    def log_message(self, format, *args):  # noqa: A002 - signature of the base class
        LOGGER.debug("%s %s", self.address_string(), format % args)

    def _send(self, status: int, payload: dict | str, content_type: str = "application/json") -> None:
        body = (payload if isinstance(payload, str) else json.dumps(payload)).encode("utf-8")
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def _error(self, error: ServingError) -> None:
        self._send(error.http_status, {"error": error.message})

    def do_GET(self):  # noqa: N802 - http.server naming
        path = self.path.split("?", 1)[0]
        if self.server.metrics_path and path == self.server.metrics_path:
            return self._send(200, self.server.core.metrics.render(), "text/plain; version=0.0.4")
        self._route("GET", path, b"")

    def do_POST(self):  # noqa: N802
        raw_length = self.headers.get("Content-Length")
        length = content_length(raw_length)
        if length is None:
            self.close_connection = True  # the body's end is unknown: the connection cannot be reused
            return self._send(
                400, {"error": f"Invalid Content-Length header '{shown(raw_length)}': expected a byte count"}
            )
        if length > self.server.max_request_bytes:
            self.close_connection = True  # the body is not read, so the connection cannot be reused
            return self._send(
                413,
                {
                    "error": f"Request body of {length} bytes is over the limit of {self.server.max_request_bytes} "
                    "bytes (serving.max_request_bytes); send fewer or smaller images per request"
                },
            )
        body = self.rfile.read(length) if length else b""
        self._route("POST", self.path.split("?", 1)[0], body)

    def _route(self, method: str, path: str, body: bytes) -> None:
        match = ROUTE.match(path)
        suffix = match["suffix"] if match else None
        allowed = {
            None: "GET",
            "/metadata": "GET",
            ":predict": "POST",
            ":classify": "POST",
            ":regress": "POST",
        }
        if match is None or allowed[suffix] != method:
            return self._error(ServingError("INVALID_ARGUMENT", f"Malformed request: {method} {path}"))
        try:
            version = parse_version(match["version"]) if match["version"] else None
            name, label = match["name"], match["label"]
            if suffix is None:
                self._send(200, self._status(name, version, label))
            elif suffix == "/metadata":
                self._send(200, self._metadata(name, version, label))
            elif suffix == ":predict":
                self._send(200, self._predict(name, version, label, body))
            else:
                raise ServingError(
                    "UNIMPLEMENTED", f"{suffix[1:]} is not supported by this server; use :predict"
                )
        except ServingError as error:
            self._error(error)
        except Exception as error:  # noqa: BLE001 - answer, never drop the connection
            LOGGER.exception("%s %s failed", method, path)
            self._error(ServingError("INTERNAL", f"{method} {path} failed: {type(error).__name__}"))

    def _status(self, name, version, label) -> dict:
        statuses = self.server.core.manager.model_status(name, version, label)
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

        servable = self.server.core.metadata(name, version, label)
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
        specs = self.server.core.input_specs(name, version, label, signature)
        dtypes = {
            key: "string" if spec.dtype.name == "string" else spec.dtype.name for key, spec in specs.items()
        }
        inputs, row_format = request_tensors(document, dtypes)
        _, outputs = self.server.core.predict(name, version, label, signature, inputs, None, "REST")
        return response_json(outputs, row_format)


def start_rest_server(
    core: ServingCore, host: str, port: int, max_request_bytes: int, metrics_path: str | None
):
    """Start the REST server in a thread; returns (server, bound port)."""
    server = RestServer((host, port), core, max_request_bytes, metrics_path)
    thread = threading.Thread(target=server.serve_forever, name="mura-rest", daemon=True)
    thread.start()
    return server, server.server_address[1]
