"""Wire protocols of ServingClient: gRPC with TF Serving's own messages (serving.protos), and REST."""

from __future__ import annotations

import base64
import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from mura_core.contracts import SERVING_SIGNATURE
from serving.errors import ServingClientError
from serving.protos import (
    MODEL_SERVICE,
    PREDICTION_SERVICE,
    enum_name,
    make_ndarray,
    make_tensor_proto,
    message,
)

CODE_BY_HTTP = {
    400: "INVALID_ARGUMENT",
    401: "UNAUTHENTICATED",
    403: "PERMISSION_DENIED",
    404: "NOT_FOUND",
    413: "RESOURCE_EXHAUSTED",
    429: "RESOURCE_EXHAUSTED",
    500: "INTERNAL",
    501: "UNIMPLEMENTED",
    503: "UNAVAILABLE",
}


def _unavailable(target: str, detail: str, variable: str, tls: bool = False) -> ServingClientError:
    """A server that does not answer, or one that answers in the other protocol (TLS against a plain
    port, plain against the TLS gateway), named as what it is: both looked like "no server" before."""
    if tls and any(sign in detail for sign in ("WRONG_VERSION_NUMBER", "wrong version number")):
        return ServingClientError(
            f"{target} answers without TLS, and MURA_SERVING_TLS_CA asks for TLS: use the gateway's TLS "
            "port (`mura status`: Gateway) or unset MURA_SERVING_TLS_CA for TF Serving's own port",
            "UNAVAILABLE",
        )
    if tls and any(sign in detail for sign in ("CERTIFICATE_VERIFY_FAILED", "certificate verify failed")):
        return ServingClientError(
            f"{target}'s TLS certificate is not the one MURA_SERVING_TLS_CA trusts ({detail})", "UNAVAILABLE"
        )
    if not tls and "http1.x server" in detail:
        return ServingClientError(
            f"{target} answers HTTP/1, not gRPC: a REST port, or the TLS gateway refusing plain text (then "
            "set MURA_SERVING_TLS_CA to its certificate, `mura status`); TF Serving's gRPC port is MURA_SERVING_GRPC",
            "UNAVAILABLE",
        )
    if not tls and "Socket closed" in detail:
        return ServingClientError(
            f"{target} closed the connection at once: if it is the TLS gateway (`mura status`: Gateway), set "
            f"MURA_SERVING_TLS_CA to its certificate; else start TF Serving with `mura serve` or set {variable}",
            "UNAVAILABLE",
        )
    return ServingClientError(
        f"no TF Serving answers at {target} ({detail}): start it with `mura serve` or set {variable}",
        "UNAVAILABLE",
    )


PLAIN_TO_TLS = "plain HTTP request was sent to HTTPS port"  # nginx's answer (400) to http:// on its TLS port


@dataclass(frozen=True)
class Security:
    """TLS and the bearer token of a connection through the gateway (both None: plain, as TF Serving)."""

    tls_ca: bytes | None = None  # PEM of the certificate (or CA) to trust
    ca_path: str | None = None
    token: str | None = None

    @classmethod
    def of(cls, tls_ca: str | Path | None, token: str | None) -> Security:
        """Read the CA file now, so a wrong path is a clear error before any call."""
        if tls_ca is None:
            return cls(token=token)
        path = Path(tls_ca)
        if not path.is_file():
            raise ServingClientError(
                f"TLS certificate {path} not found (MURA_SERVING_TLS_CA): `mura status` names the "
                "gateway's certificate",
                "INVALID_ARGUMENT",
            )
        return cls(path.read_bytes(), str(path), token)

    def headers(self) -> dict[str, str]:
        """The Authorization header, when there is a token."""
        return {"Authorization": f"Bearer {self.token}"} if self.token else {}


def max_message_bytes() -> int:
    """The largest gRPC message either way: params.yaml serving.max_request_bytes, what the server accepts."""
    from mura_core.config import load_config

    return load_config().serving.max_request_bytes


# A call answered UNAVAILABLE is sent once more (gRPC's own retry policy): the gateway answers so when
# a replica it sent the call to did not answer within params.yaml serving.gateway_answer_seconds (nginx
# cannot resend a gRPC call whose body it streamed), and the second try goes to the other replica.
# Predict is a pure function; one more try at most, so a call that breaks servers breaks two at most.
RETRY_ONCE = json.dumps(
    {
        "methodConfig": [
            {
                "name": [
                    {"service": "tensorflow.serving.PredictionService"},
                    {"service": "tensorflow.serving.ModelService"},
                ],
                "retryPolicy": {
                    "maxAttempts": 2,
                    "initialBackoff": "0.1s",
                    "maxBackoff": "1s",
                    "backoffMultiplier": 2,
                    "retryableStatusCodes": ["UNAVAILABLE"],
                },
            }
        ]
    }
)


class GrpcTransport:
    """PredictionService/ModelService calls over one gRPC channel."""

    def __init__(self, target: str, timeout: float, security: Security | None = None):
        import grpc

        self.target, self.timeout = target, timeout
        self.security = security or Security()
        most = max_message_bytes()
        options = [
            ("grpc.max_receive_message_length", most),
            ("grpc.max_send_message_length", most),
            ("grpc.service_config", RETRY_ONCE),
        ]
        if self.security.tls_ca is not None:
            credentials = grpc.ssl_channel_credentials(root_certificates=self.security.tls_ca)
            self._channel = grpc.secure_channel(target, credentials, options=options)
        else:
            self._channel = grpc.insecure_channel(target, options=options)
        self._metadata = [(name.lower(), value) for name, value in self.security.headers().items()]

    def _method(self, path: str, request_type: str, response_type: str):
        """A unary call of the official service, its messages from serving.protos (no TensorFlow import)."""
        return self._channel.unary_unary(
            path,
            request_serializer=message(request_type).SerializeToString,
            response_deserializer=message(response_type).FromString,
        )

    def close(self) -> None:
        """Close the channel."""
        self._channel.close()

    def _spec(self, spec, model: str, version: int | None, label: str | None) -> None:
        spec.name = model
        if version is not None:
            spec.version.value = int(version)
        elif label:
            spec.version_label = label

    def _call(self, method, request, model: str):
        import grpc

        try:
            return method(request, timeout=self.timeout, metadata=self._metadata or None)
        except grpc.RpcError as error:
            code = error.code().name if error.code() else "UNKNOWN"
            if code == "UNAVAILABLE":
                tls = self.security.tls_ca is not None
                raise _unavailable(self.target, error.details() or "", "MURA_SERVING_GRPC", tls) from error
            raise ServingClientError(f"{model}: {error.details()} ({code})", code) from error

    def predict(self, arrays, model, version, label, signature_name):
        """(outputs, served version) of one Predict call."""
        request = message("tensorflow.serving.PredictRequest")()
        self._spec(request.model_spec, model, version, label)
        request.model_spec.signature_name = signature_name
        for name, array in arrays.items():
            request.inputs[name].CopyFrom(make_tensor_proto(array))
        predict = self._method(
            PREDICTION_SERVICE + "Predict",
            "tensorflow.serving.PredictRequest",
            "tensorflow.serving.PredictResponse",
        )
        response = self._call(predict, request, model)
        outputs = {name: make_ndarray(proto) for name, proto in response.outputs.items()}
        return outputs, response.model_spec.version.value or None

    def model_status(self, model, version, label):
        """Version states from GetModelStatus."""
        request = message("tensorflow.serving.GetModelStatusRequest")()
        self._spec(request.model_spec, model, version, label)
        status_call = self._method(
            MODEL_SERVICE + "GetModelStatus",
            "tensorflow.serving.GetModelStatusRequest",
            "tensorflow.serving.GetModelStatusResponse",
        )
        response = self._call(status_call, request, model)

        def state_name(number: int) -> str:
            return enum_name("tensorflow.serving.ModelVersionStatus.State", number)

        return [
            {
                "version": status.version,
                "state": state_name(status.state),
                "error_message": status.status.error_message,
            }
            for status in response.model_version_status
        ]


def _to_json(array: np.ndarray):
    if array.dtype == object:
        return np.vectorize(lambda item: {"b64": base64.b64encode(item).decode("ascii")}, otypes=[object])(
            array
        ).tolist()
    return array.tolist()


def _from_json(value) -> np.ndarray:
    array = np.asarray(value)
    if array.dtype == np.float64:
        array = array.astype(np.float32)  # TF Serving writes float32 outputs as JSON numbers
    elif array.dtype.kind == "U":
        array = np.vectorize(lambda item: item.encode("utf-8"), otypes=[object])(array)
    return array


class RestTransport:
    """TF Serving's REST API with one keep-alive session."""

    def __init__(self, target: str, timeout: float, security: Security | None = None):
        import requests

        security = security or Security()
        scheme = "https" if security.tls_ca is not None else "http"
        self.base = target if target.startswith("http") else f"{scheme}://{target}"
        self.timeout = timeout
        self._session = requests.Session()
        self._session.headers.update(security.headers())
        # Passed on each request: a session's own `verify` loses to REQUESTS_CA_BUNDLE in the environment.
        self._verify = security.ca_path or True

    def close(self) -> None:
        """Close the session."""
        self._session.close()

    def _url(self, model, version, label, suffix=""):
        path = f"{self.base}/v1/models/{model}"
        if version is not None:
            path += f"/versions/{int(version)}"
        elif label:
            path += f"/labels/{label}"
        return path + suffix

    def _request(self, method: str, url: str, model: str, **kwargs):
        import requests

        try:
            response = self._session.request(method, url, timeout=self.timeout, verify=self._verify, **kwargs)
        except requests.exceptions.SSLError as error:
            raise _unavailable(self.base, f"TLS failed: {error}", "MURA_SERVING_TLS_CA", tls=True) from error
        except requests.ConnectionError as error:
            raise _unavailable(self.base, "connection refused", "MURA_SERVING_REST") from error
        try:
            payload = response.json()
        except ValueError:
            payload = {"error": response.text[:200]}
        if response.status_code == 400 and PLAIN_TO_TLS in response.text:
            raise ServingClientError(
                f"{self.base} is the TLS gateway: set MURA_SERVING_TLS_CA to its certificate (`mura status`) "
                "to use https, or use TF Serving's own port",
                "UNAVAILABLE",
            )
        if response.status_code != 200:
            code = CODE_BY_HTTP.get(response.status_code, "UNKNOWN")
            raise ServingClientError(
                f"{model}: {payload.get('error')} (HTTP {response.status_code} {code})", code
            )
        return payload

    def predict(self, arrays, model, version, label, signature_name):
        """(outputs, None) of one :predict call in the columnar form (REST does not return the version)."""
        body = {"inputs": {name: _to_json(array) for name, array in arrays.items()}}
        if signature_name:
            body["signature_name"] = signature_name
        payload = self._request("POST", self._url(model, version, label, ":predict"), model, json=body)
        outputs = payload["outputs"]
        if not isinstance(outputs, dict):  # one output: TF Serving sends the bare value
            outputs = {self._single_output_name(model, version, label, signature_name): outputs}
        return {name: _from_json(value) for name, value in outputs.items()}, None

    def _single_output_name(self, model, version, label, signature_name) -> str:
        metadata = self._request("GET", self._url(model, version, label, "/metadata"), model)
        signatures = metadata["metadata"]["signature_def"]["signature_def"]
        return next(iter(signatures[signature_name or SERVING_SIGNATURE]["outputs"]))

    def model_status(self, model, version, label):
        """Version states from GET /v1/models/..."""
        payload = self._request("GET", self._url(model, version, label), model)
        return [
            {
                "version": int(entry["version"]),
                "state": entry["state"],
                "error_message": entry["status"].get("error_message", ""),
            }
            for entry in payload["model_version_status"]
        ]
