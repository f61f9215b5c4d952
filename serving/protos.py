"""TF Serving's gRPC messages and tensors without importing TensorFlow.

The official stubs (tensorflow-serving-api) import `tensorflow.core.framework.*_pb2`, and importing
that package runs `tensorflow/__init__.py`: 20-60 s on 2 cores before the first request. The
generated modules carry each .proto as a serialized FileDescriptorProto; this module reads those bytes
from the installed files (without running them) into a private descriptor pool and builds the message
classes from it, so the wire format is exactly the official one.
"""

from __future__ import annotations

import ast
import importlib
import importlib.util
import threading
from functools import cache
from pathlib import Path
from typing import Any

import numpy as np
from google.protobuf import descriptor_pb2, descriptor_pool, message_factory

PREDICTION_SERVICE = "/tensorflow.serving.PredictionService/"
MODEL_SERVICE = "/tensorflow.serving.ModelService/"
_ROOT_MODULES = (
    "tensorflow_serving.apis.predict_pb2",
    "tensorflow_serving.apis.get_model_status_pb2",
    "tensorflow_serving.apis.model_management_pb2",  # HandleReloadConfigRequest (the deploy)
    "tensorflow_serving.apis.prediction_log_pb2",  # the warm-up file's records
)

# numpy dtype -> (TensorFlow DataType name, TensorProto field holding values when tensor_content is empty)
_DTYPES: dict[np.dtype[Any], tuple[str, str]] = {
    np.dtype(np.float32): ("DT_FLOAT", "float_val"),
    np.dtype(np.float64): ("DT_DOUBLE", "double_val"),
    np.dtype(np.float16): ("DT_HALF", "half_val"),
    np.dtype(np.int8): ("DT_INT8", "int_val"),
    np.dtype(np.int16): ("DT_INT16", "int_val"),
    np.dtype(np.int32): ("DT_INT32", "int_val"),
    np.dtype(np.int64): ("DT_INT64", "int64_val"),
    np.dtype(np.uint8): ("DT_UINT8", "int_val"),
    np.dtype(np.uint16): ("DT_UINT16", "int_val"),
    np.dtype(np.uint32): ("DT_UINT32", "uint32_val"),
    np.dtype(np.uint64): ("DT_UINT64", "uint64_val"),
    np.dtype(np.bool_): ("DT_BOOL", "bool_val"),
}


def _module_file(module: str) -> Path:
    """The installed source of generated module `module`, found without importing its package."""
    package, *rest = module.split(".")
    spec = importlib.util.find_spec(package)  # a top-level package: found, not run
    if spec is None or not spec.submodule_search_locations:
        raise ModuleNotFoundError(f"{package} is not installed: pip install tensorflow-serving-api")
    for location in spec.submodule_search_locations:
        candidate = Path(location, *rest[:-1], rest[-1] + ".py")
        if candidate.is_file():
            return candidate
    raise ModuleNotFoundError(f"{module} is not installed: pip install tensorflow-serving-api")


def _read_generated(module: str) -> tuple[bytes, list[str]]:
    """(FileDescriptorProto bytes, modules it imports) read out of a generated module's source."""
    source = _module_file(module)
    serialized, imported = None, []
    for node in ast.walk(ast.parse(source.read_text(encoding="utf-8"))):
        if isinstance(node, ast.ImportFrom) and node.module:
            imported += [f"{node.module}.{alias.name}" for alias in node.names if alias.name.endswith("_pb2")]
        elif (
            isinstance(node, ast.Call)
            and getattr(node.func, "attr", "") == "AddSerializedFile"
            and node.args
            and isinstance(node.args[0], ast.Constant)
            and isinstance(node.args[0].value, bytes)
        ):
            serialized = node.args[0].value
    if serialized is None:
        raise ImportError(f"{source} holds no serialized descriptor (an unexpected protobuf generator)")
    return serialized, imported


def _add(pool: descriptor_pool.DescriptorPool, module: str, added: set[str]) -> None:
    """Add the .proto of generated `module` to `pool`, its dependencies first."""
    if module in added:
        return
    imported: list[str]
    if module.startswith("google.protobuf."):  # protobuf's own types: importing them is cheap
        serialized, imported = importlib.import_module(module).DESCRIPTOR.serialized_pb, []
    else:
        serialized, imported = _read_generated(module)
    file_proto = descriptor_pb2.FileDescriptorProto.FromString(serialized)
    for dependency in file_proto.dependency:
        # The import naming a dependency ends with its path: xla/tsl/protobuf/status.proto is
        # tensorflow.compiler.xla.tsl.protobuf.status_pb2 in TensorFlow's wheel.
        suffix = dependency.removesuffix(".proto").replace("/", ".") + "_pb2"
        found = next((name for name in imported if name == suffix or name.endswith("." + suffix)), suffix)
        _add(pool, found, added)
    pool.Add(file_proto)
    added.add(module)


# functools.cache does not hold back a second caller while the first computes: two threads making
# their first request at once built two pools, and a message of one refused the other's fields
# ("Parameter to CopyFrom() must be instance of same class") for the life of the process.
_BUILDING = threading.RLock()


@cache
def _built_pool() -> descriptor_pool.DescriptorPool:
    pool = descriptor_pool.DescriptorPool()
    added: set[str] = set()
    for module in _ROOT_MODULES:
        _add(pool, module, added)
    return pool


def _pool() -> descriptor_pool.DescriptorPool:
    """The one private pool of the process (built once, by whichever thread comes first)."""
    with _BUILDING:
        return _built_pool()


@cache
def _message_class(full_name: str):
    return message_factory.GetMessageClass(_pool().FindMessageTypeByName(full_name))


def message(full_name: str):
    """The message class of `full_name`, e.g. "tensorflow.serving.PredictRequest" (one per process)."""
    with _BUILDING:
        return _message_class(full_name)


def enum_name(enum: str, number: int) -> str:
    """The name of value `number` of enum `enum`, e.g. ("tensorflow.serving.ModelVersionStatus.State", 30)."""
    return _pool().FindEnumTypeByName(enum).values_by_number[number].name


def _data_type(name: str) -> int:
    return _pool().FindEnumTypeByName("tensorflow.DataType").values_by_name[name].number


def make_tensor_proto(array: np.ndarray):
    """A tensorflow.TensorProto of `array` (bytes/str objects become DT_STRING), as tf.make_tensor_proto."""
    proto = message("tensorflow.TensorProto")()
    array = np.asarray(array)
    for size in array.shape:
        proto.tensor_shape.dim.add(size=size)
    if array.dtype == object or array.dtype.kind in "SU":
        proto.dtype = _data_type("DT_STRING")
        proto.string_val.extend(
            item if isinstance(item, bytes) else str(item).encode("utf-8") for item in array.reshape(-1)
        )
        return proto
    if array.dtype not in _DTYPES:
        raise TypeError(f"no TensorFlow type for numpy {array.dtype}")
    proto.dtype = _data_type(_DTYPES[array.dtype][0])
    proto.tensor_content = np.ascontiguousarray(array, dtype=array.dtype.newbyteorder("<")).tobytes()
    return proto


def make_ndarray(proto) -> np.ndarray:
    """The numpy array of a tensorflow.TensorProto, as tf.make_ndarray (either encoding of the values)."""
    shape = tuple(dim.size for dim in proto.tensor_shape.dim)
    size = int(np.prod(shape, dtype=np.int64))
    if proto.dtype == _data_type("DT_STRING"):
        return _filled(np.array(list(proto.string_val), dtype=object), size).reshape(shape)
    known: tuple[np.dtype[Any], str] | None = next(
        ((dtype, field) for dtype, (name, field) in _DTYPES.items() if _data_type(name) == proto.dtype),
        None,
    )
    if known is None:
        raise TypeError(f"tensor of {enum_name('tensorflow.DataType', proto.dtype)} is not supported here")
    dtype, field = known
    if proto.tensor_content:
        return np.frombuffer(proto.tensor_content, dtype=dtype.newbyteorder("<")).astype(dtype).reshape(shape)
    values = getattr(proto, field)
    flat = (
        np.array(values, dtype=np.uint16).view(np.float16) if field == "half_val" else np.array(values, dtype)
    )
    return _filled(flat, size).reshape(shape)


def _filled(values: np.ndarray, size: int) -> np.ndarray:
    """TensorProto's short form: fewer values than elements repeat the last one (none: zeros)."""
    if values.size >= size:
        return values[:size]
    fill = values[-1] if values.size else (b"" if values.dtype == object else 0)
    return np.concatenate([values, np.full(size - values.size, fill, dtype=values.dtype)])
