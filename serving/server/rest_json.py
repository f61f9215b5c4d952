"""TF Serving's JSON encoding of tensors: `instances` (row) and `inputs` (columnar), `{"b64": ...}` bytes."""

from __future__ import annotations

import base64
import binascii
import json
from collections.abc import Iterable
from typing import Any

import numpy as np

from serving.server.status import invalid_argument


def parse_body(body: bytes) -> dict:
    """The JSON object of a request body, with TF Serving's parse error messages."""
    if not body.strip():
        raise invalid_argument("JSON Parse error: The document is empty")
    try:
        document = json.loads(body)
    except json.JSONDecodeError as error:
        raise invalid_argument(f"JSON Parse error: {error.msg} at offset: {error.pos}") from error
    except UnicodeDecodeError as error:
        raise invalid_argument(
            f"JSON Parse error: Invalid encoding in string at offset: {error.start}"
        ) from error
    except RecursionError:
        raise invalid_argument("JSON Parse error: the document is nested too deeply") from None
    if not isinstance(document, dict):
        raise invalid_argument(f"JSON Value: {_short(document)} Is not object")
    signature = document.get("signature_name", "")
    if not isinstance(signature, str):
        raise invalid_argument(
            f"JSON Value: {_short(document)} not formatted correctly. 'signature_name' key must be a string value."
        )
    return document


def _short(value) -> str:
    text = json.dumps(value)
    return text if len(text) <= 200 else text[:200] + "..."


def _is_b64(value) -> bool:
    return isinstance(value, dict) and len(value) == 1 and isinstance(value.get("b64"), str)


def _leaf(value, dtype_name: str):
    if dtype_name == "string":
        if isinstance(value, str):
            return value.encode("utf-8")
        if _is_b64(value):
            try:
                return base64.b64decode(value["b64"], validate=True)
            except (binascii.Error, ValueError) as error:
                raise invalid_argument("Unable to base64 decode") from error
    elif dtype_name == "bool":
        if isinstance(value, bool):
            return value
    elif dtype_name.startswith(("int", "uint")):
        if isinstance(value, int) and not isinstance(value, bool):
            return value
    elif isinstance(value, int | float) and not isinstance(value, bool):
        return value
    kind = type(value).__name__.replace("dict", "Object").replace("str", "String").replace("list", "Array")
    raise invalid_argument(f"JSON Value: {_short(value)} Type: {kind} is not of expected type: {dtype_name}")


def _walk(value, dtype_name: str):
    if isinstance(value, list):
        return [_walk(item, dtype_name) for item in value]
    return _leaf(value, dtype_name)


def to_array(value, dtype_name: str, where: str) -> np.ndarray:
    """A JSON value (scalar or nested lists) as a numpy array of `dtype_name` (a tf dtype name)."""
    try:
        converted = _walk(value, dtype_name)
    except RecursionError:
        raise invalid_argument(f"{where}: nested too deeply for a tensor") from None
    try:
        if dtype_name == "string":
            return np.array(converted, dtype=object)
        return np.array(converted, dtype=np.dtype(dtype_name))
    except (ValueError, OverflowError) as error:
        raise invalid_argument(
            f"{where}: nested lists of unequal length or out-of-range values ({error})"
        ) from error


def request_tensors(document: dict, dtypes: dict[str, str]) -> tuple[dict[str, np.ndarray], bool]:
    """(inputs, row_format) from a predict request; `dtypes` maps input names to tf dtype names."""
    has_rows, has_columns = "instances" in document, "inputs" in document
    if has_rows and has_columns:
        raise invalid_argument(
            f"JSON Value: {_short(document)} Not formatted correctly expecting only one of 'inputs' or "
            "'instances' keys to exist "
        )
    if has_rows:
        return _rows(document["instances"], dtypes, document), True
    if has_columns:
        return _columns(document["inputs"], dtypes), False
    raise invalid_argument("Missing 'inputs' or 'instances' key")


def _rows(instances, dtypes: dict[str, str], document: dict) -> dict[str, np.ndarray]:
    if not isinstance(instances, list):
        raise invalid_argument(f"JSON Value: {_short(document)} Excepting 'instances' to be an list/array")
    if not instances:
        raise invalid_argument(f"JSON Value: {_short(document)} No values in 'instances' array")
    named = isinstance(instances[0], dict) and not _is_b64(instances[0])
    if not named and len(dtypes) > 1:
        raise invalid_argument(
            "instances is a plain list, but expecting list of objects as multiple input tensors required as "
            "per tensorinfo_map"
        )
    columns: dict[str, list[np.ndarray]] = {name: [] for name in dtypes}
    for index, instance in enumerate(instances):
        items: Iterable[tuple[str, Any]]
        if named:
            if not isinstance(instance, dict) or _is_b64(instance):
                raise invalid_argument(f"Expecting object but got list at item {index} of input list")
            if set(instance) != set(dtypes):
                raise invalid_argument(
                    f"Failed to process element: {index} of 'instances' list. JSON object: {_short(instance)} "
                    f"must only have keys: {','.join(sorted(dtypes))}"
                )
            items = instance.items()
        else:
            if isinstance(instance, dict) and not _is_b64(instance):
                raise invalid_argument(f"Expecting value/list but got object at item {index} of input list")
            items = [(next(iter(dtypes)), instance)]
        for name, value in items:
            array = to_array(value, dtypes[name], f"element {index} key {name} of 'instances'")
            if columns[name] and columns[name][0].shape != array.shape:
                raise invalid_argument(
                    f"Failed to process element: {index} key: {name} of 'instances' list. Error: Expecting shape "
                    f"{list(columns[name][0].shape)} but got: {list(array.shape)}"
                )
            columns[name].append(array)
    return {name: np.stack(arrays) for name, arrays in columns.items()}


def _columns(inputs, dtypes: dict[str, str]) -> dict[str, np.ndarray]:
    if not isinstance(inputs, dict) or _is_b64(inputs):
        if len(dtypes) > 1:
            raise invalid_argument(
                "inputs is a plain value/list, but expecting an object as multiple input tensors required as "
                "per tensorinfo_map"
            )
        name = next(iter(dtypes))
        return {name: to_array(inputs, dtypes[name], "'inputs'")}
    result = {}
    for name, dtype_name in dtypes.items():
        if name not in inputs:
            raise invalid_argument(f"Missing named input: {name} in 'inputs' object.")
        result[name] = to_array(inputs[name], dtype_name, f"'inputs' key {name}")
    return result


def _jsonable(array: np.ndarray, name: str):
    if array.dtype.kind in "OS":

        def convert(item: bytes):
            if not name.endswith("_bytes"):
                try:
                    return item.decode("utf-8")
                except UnicodeDecodeError:
                    pass
            return {"b64": base64.b64encode(item).decode("ascii")}

        return np.vectorize(convert, otypes=[object])(array).tolist() if array.size else array.tolist()
    return array.tolist()


def response_json(outputs: dict[str, np.ndarray], row_format: bool) -> dict:
    """`{"predictions": ...}` (row) or `{"outputs": ...}` (columnar), as TF Serving answers."""
    if not row_format:
        if len(outputs) == 1:
            name, value = next(iter(outputs.items()))
            return {"outputs": _jsonable(value, name)}
        return {"outputs": {name: _jsonable(value, name) for name, value in outputs.items()}}
    sizes = {value.shape[0] if value.ndim else None for value in outputs.values()}
    batch = sizes.pop() if len(sizes) == 1 else None
    if batch is None:
        raise invalid_argument(
            "Expecting all output tensors to have the same first (batch) dimension for 'instances'"
        )
    if len(outputs) == 1:
        name, value = next(iter(outputs.items()))
        return {"predictions": _jsonable(value, name)}
    columns = {name: _jsonable(value, name) for name, value in outputs.items()}
    return {"predictions": [{name: column[i] for name, column in columns.items()} for i in range(batch)]}
