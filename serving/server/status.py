"""TF Serving's error model: a gRPC status code name and a message, mapped to HTTP for REST."""

from __future__ import annotations

# TF Serving's REST layer maps the gRPC code of a failed request to these HTTP statuses.
HTTP_STATUS = {
    "OK": 200,
    "CANCELLED": 499,
    "UNKNOWN": 500,
    "INVALID_ARGUMENT": 400,
    "DEADLINE_EXCEEDED": 504,
    "NOT_FOUND": 404,
    "ALREADY_EXISTS": 409,
    "PERMISSION_DENIED": 403,
    "RESOURCE_EXHAUSTED": 429,
    "FAILED_PRECONDITION": 400,
    "ABORTED": 409,
    "OUT_OF_RANGE": 400,
    "UNIMPLEMENTED": 501,
    "INTERNAL": 500,
    "UNAVAILABLE": 503,
    "DATA_LOSS": 500,
    "UNAUTHENTICATED": 401,
}
# tensorflow.error.Code numbers (the same as gRPC's), used by tf.errors.OpError.error_code.
CODE_BY_NUMBER = {
    0: "OK",
    1: "CANCELLED",
    2: "UNKNOWN",
    3: "INVALID_ARGUMENT",
    4: "DEADLINE_EXCEEDED",
    5: "NOT_FOUND",
    6: "ALREADY_EXISTS",
    7: "PERMISSION_DENIED",
    8: "RESOURCE_EXHAUSTED",
    9: "FAILED_PRECONDITION",
    10: "ABORTED",
    11: "OUT_OF_RANGE",
    12: "UNIMPLEMENTED",
    13: "INTERNAL",
    14: "UNAVAILABLE",
    15: "DATA_LOSS",
    16: "UNAUTHENTICATED",
}


class ServingError(Exception):
    """A request failed with TF Serving status `code` (e.g. NOT_FOUND) and `message`."""

    def __init__(self, code: str, message: str):
        super().__init__(message)
        self.code = code
        self.message = message

    @property
    def http_status(self) -> int:
        """The HTTP status TF Serving's REST API answers for this code."""
        return HTTP_STATUS.get(self.code, 500)

    def grpc_code(self):
        """The grpc.StatusCode member of this code."""
        import grpc

        return getattr(grpc.StatusCode, self.code, grpc.StatusCode.UNKNOWN)


def invalid_argument(message: str) -> ServingError:
    """An INVALID_ARGUMENT error."""
    return ServingError("INVALID_ARGUMENT", message)


def from_tensorflow_error(error) -> ServingError:
    """A ServingError from a tf.errors.OpError, keeping the first meaningful line of its message."""
    code = CODE_BY_NUMBER.get(getattr(error, "error_code", 2), "UNKNOWN")
    lines = [line.strip() for line in str(getattr(error, "message", error)).splitlines() if line.strip()]
    # Graph errors read "Graph execution error: Detected at node ... File ... <cause> [[{{node ...}}]]".
    noise = ("Graph execution error", "Detected at node", "File ", "[[", "{{", "<stack traces unavailable>")
    useful = [line.split(" [Op:", 1)[0] for line in lines if not line.startswith(noise)]
    return ServingError(code, useful[0] if useful else "model execution failed")
