"""gRPC `tensorflow.serving.PredictionService` and `ModelService` on the official tensorflow-serving-api stubs."""

from __future__ import annotations

import logging
from concurrent import futures

from mura_core.contracts import SERVING_SIGNATURE
from serving.server.core import ServingCore
from serving.server.status import ServingError

LOGGER = logging.getLogger(__name__)


def _spec(model_spec) -> tuple[str, int | None, str | None]:
    choice = model_spec.WhichOneof("version_choice")
    version = model_spec.version.value if choice == "version" else None
    label = model_spec.version_label if choice == "version_label" else None
    return model_spec.name, version, label


def build_servicers(core: ServingCore, reload_config):
    """The two servicer objects; `reload_config(model_configs)` applies a HandleReloadConfigRequest."""
    from tensorflow_serving.apis import model_service_pb2_grpc, prediction_service_pb2_grpc

    return (
        _prediction_servicer(core),
        _model_servicer(core, reload_config),
        prediction_service_pb2_grpc,
        model_service_pb2_grpc,
    )


def _abort(context, error: ServingError):
    """End the call with the error's gRPC status code and message."""
    context.abort(error.grpc_code(), error.message)


def _prediction_servicer(core: ServingCore):
    """The PredictionService servicer: Predict and GetModelMetadata on the core's models."""
    import tensorflow as tf
    from tensorflow_serving.apis import get_model_metadata_pb2, model_pb2, prediction_service_pb2_grpc

    class PredictionService(prediction_service_pb2_grpc.PredictionServiceServicer):
        def Predict(self, request, context):  # noqa: N802 - gRPC method name
            name, version, label = _spec(request.model_spec)
            try:
                inputs = {alias: _to_array(tf, core, alias, proto) for alias, proto in request.inputs.items()}
                servable, outputs = core.predict(
                    name,
                    version,
                    label,
                    request.model_spec.signature_name,
                    inputs,
                    list(request.output_filter),
                    "GRPC",
                )
            except ServingError as error:
                return _abort(context, error)
            except Exception as error:  # noqa: BLE001 - never UNKNOWN, never an object address
                LOGGER.exception("Predict on %s failed", name)
                return _abort(context, ServingError("INTERNAL", f"Predict failed: {type(error).__name__}"))
            return _predict_response(servable, outputs, request.model_spec.signature_name)

        def GetModelMetadata(self, request, context):  # noqa: N802
            name, version, label = _spec(request.model_spec)
            fields = list(request.metadata_field)
            try:
                _check_metadata_fields(fields)
                servable = core.metadata(name, version, label)
            except ServingError as error:
                return _abort(context, error)
            response = get_model_metadata_pb2.GetModelMetadataResponse(
                model_spec=model_pb2.ModelSpec(name=servable.name)
            )
            response.model_spec.version.value = servable.version
            response.metadata["signature_def"].Pack(servable.signature_defs)
            return response

    return PredictionService()


def _model_servicer(core: ServingCore, reload_config):
    """The ModelService servicer: GetModelStatus, and HandleReloadConfigRequest through `reload_config`."""
    from tensorflow_serving.apis import model_management_pb2, model_service_pb2_grpc

    class ModelService(model_service_pb2_grpc.ModelServiceServicer):
        def GetModelStatus(self, request, context):  # noqa: N802
            name, version, label = _spec(request.model_spec)
            try:
                statuses = core.manager.model_status(name, version, label)
            except ServingError as error:
                return _abort(context, error)
            return _status_response(statuses)

        def HandleReloadConfigRequest(self, request, context):  # noqa: N802
            response = model_management_pb2.ReloadConfigResponse()
            try:
                reload_config(list(request.config.model_config_list.config))
            except ServingError as error:
                response.status.error_code = _code_number(error.code)
                response.status.error_message = error.message
            return response

    return ModelService()


def _predict_response(servable, outputs: dict, signature_name: str):
    import tensorflow as tf
    from tensorflow_serving.apis import predict_pb2

    response = predict_pb2.PredictResponse()
    response.model_spec.name = servable.name
    response.model_spec.version.value = servable.version
    response.model_spec.signature_name = signature_name or SERVING_SIGNATURE
    for alias, value in outputs.items():
        response.outputs[alias].CopyFrom(tf.make_tensor_proto(value))
    return response


def _check_metadata_fields(fields: list[str]) -> None:
    """TF Serving's answer to metadata fields it does not serve (only signature_def exists)."""
    if not fields:
        raise ServingError(
            "INVALID_ARGUMENT", "GetModelMetadataRequest must specify at least one metadata_field"
        )
    for field_name in fields:
        if field_name != "signature_def":
            raise ServingError("INVALID_ARGUMENT", f"Metadata field {field_name} is not supported")


def _status_response(statuses: dict):
    from tensorflow_serving.apis import get_model_status_pb2

    response = get_model_status_pb2.GetModelStatusResponse()
    for number, status in sorted(statuses.items()):
        entry = response.model_version_status.add(version=number)
        entry.state = get_model_status_pb2.ModelVersionStatus.State.Value(status.state)
        entry.status.error_code = _code_number(status.error_code)
        entry.status.error_message = status.error_message
    return response


# Types a request tensor cannot carry (handles to server-side state, or no type at all).
UNSUPPORTED_DTYPES = ("DT_INVALID", "DT_RESOURCE", "DT_VARIANT")


def _to_array(tf, core: ServingCore, alias: str, proto):
    """A request TensorProto as numpy, after checking its dtype and declared batch size."""
    from tensorflow.core.framework import types_pb2

    dtype_name = (
        types_pb2.DataType.Name(proto.dtype)
        if proto.dtype in types_pb2.DataType.values()
        else str(proto.dtype)
    )
    if dtype_name.removesuffix("_REF") in UNSUPPORTED_DTYPES:
        raise ServingError(
            "INVALID_ARGUMENT", f"tensor parsing error: {alias} has unsupported dtype {dtype_name}"
        )
    core.check_batch(alias, [dim.size for dim in proto.tensor_shape.dim])
    try:
        return tf.make_ndarray(proto)
    except Exception as error:  # noqa: BLE001 - TensorFlow raises several types for a malformed proto
        raise ServingError(
            "INVALID_ARGUMENT", f"tensor parsing error: {alias} ({type(error).__name__})"
        ) from error


def _code_number(code: str) -> int:
    from serving.server.status import CODE_BY_NUMBER

    return next(number for number, name in CODE_BY_NUMBER.items() if name == code)


def start_grpc_server(core: ServingCore, reload_config, address: str, workers: int, max_message_bytes: int):
    """Start the gRPC server on `address` (port 0 picks a free one); returns (server, bound port)."""
    import grpc

    prediction, models, prediction_grpc, model_grpc = build_servicers(core, reload_config)
    server = grpc.server(
        futures.ThreadPoolExecutor(max_workers=workers, thread_name_prefix="mura-grpc"),
        options=[
            ("grpc.max_receive_message_length", max_message_bytes),
            ("grpc.max_send_message_length", max_message_bytes),
            # Without this a second server binds the same port and the kernel splits clients between them.
            ("grpc.so_reuseport", 0),
        ],
    )
    prediction_grpc.add_PredictionServiceServicer_to_server(prediction, server)
    model_grpc.add_ModelServiceServicer_to_server(models, server)
    try:
        port = server.add_insecure_port(address)
    except RuntimeError:  # newer grpcio raises where older ones return 0
        port = 0
    if port == 0:
        raise ServingError(
            "UNAVAILABLE",
            f"cannot listen on {address} for gRPC: the port is in use (or the address is not local)",
        )
    server.start()
    return server, port
