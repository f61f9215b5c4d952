"""One loaded model version: its signatures, their SignatureDefs, and running a prediction."""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from mura_core.contracts import SERVING_SIGNATURE, WARMUP_ASSET
from serving.server.image_guard import check_image, is_image_input
from serving.server.status import ServingError, from_tensorflow_error, invalid_argument

LOGGER = logging.getLogger(__name__)
DEFAULT_SIGNATURE = SERVING_SIGNATURE


@dataclass
class ImageLimits:
    """Limits checked on encoded images before decoding (params.yaml `serving`)."""

    max_pixels: int = 16_777_216
    max_side: int = 8192


@dataclass
class Servable:
    """A loaded SavedModel version; callable from many threads at once."""

    name: str
    version: int
    path: Path
    loaded: Any
    signature_defs: Any  # tensorflow.serving.SignatureDefMap (for metadata)
    limits: ImageLimits = field(default_factory=ImageLimits)

    def signature(self, signature_name: str):
        """The concrete function of a signature, or FAILED_PRECONDITION like TF Serving."""
        key = signature_name or DEFAULT_SIGNATURE
        if key.startswith("__") or key not in self.loaded.signatures:
            raise ServingError("FAILED_PRECONDITION", f'Serving signature key "{key}" not found.')
        return self.loaded.signatures[key]

    def input_specs(self, signature_name: str) -> dict:
        """name -> tf.TensorSpec of a signature's inputs."""
        return dict(self.signature(signature_name).structured_input_signature[1])

    def prepare(
        self, signature_name: str, inputs: dict[str, np.ndarray], output_filter: list[str] | None = None
    ):
        """Check `inputs` (names, dtypes, shapes, image headers) and the filter; the tensors to run."""
        import tensorflow as tf

        specs = self.input_specs(signature_name)
        _check_names(set(inputs), set(specs))
        outputs = self.signature(signature_name).structured_outputs
        for alias in output_filter or []:
            if alias not in outputs:
                raise invalid_argument(
                    f"output tensor alias not found in signature: {alias} Outputs expected to be in the set "
                    f"{{{','.join(sorted(outputs))}}}."
                )
        tensors = {}
        for name, spec in specs.items():
            value = inputs[name]
            _check_tensor(name, value, spec)
            if spec.dtype == tf.string and is_image_input(name):
                for index, item in enumerate(value.reshape(-1)):
                    check_image(bytes(item), f"{name}[{index}]", self.limits.max_pixels, self.limits.max_side)
            tensors[name] = tf.constant(value, dtype=spec.dtype)
        return tensors

    def run(
        self, signature_name: str, tensors: dict, output_filter: list[str] | None = None
    ) -> dict[str, np.ndarray]:
        """Run the signature on prepared tensors; the (filtered) outputs as numpy arrays."""
        import tensorflow as tf

        try:
            result = self.signature(signature_name)(**tensors)
        except tf.errors.OpError as error:
            raise from_tensorflow_error(error) from error
        wanted = output_filter or list(result)
        return {alias: result[alias].numpy() for alias in wanted}

    def predict(
        self, signature_name: str, inputs: dict[str, np.ndarray], output_filter: list[str] | None = None
    ) -> dict[str, np.ndarray]:
        """Validate `inputs` against the signature, run it and return the (filtered) outputs."""
        return self.run(signature_name, self.prepare(signature_name, inputs, output_filter), output_filter)


def _check_names(sent: set[str], expected: set[str]) -> None:
    if len(sent) != len(expected):
        raise invalid_argument(
            f"input size does not match signature: {len(sent)}!={len(expected)} len({{{','.join(sorted(sent))}}}) "
            f"!= len({{{','.join(sorted(expected))}}}). Sent extra: {{{','.join(sorted(sent - expected))}}}. "
            f"Missing but required: {{{','.join(sorted(expected - sent))}}}."
        )
    for alias in sorted(sent - expected):
        raise invalid_argument(
            f"input tensor alias not found in signature: {alias}. Inputs expected to be in the set "
            f"{{{','.join(sorted(expected))}}}."
        )


def _check_tensor(name: str, value: np.ndarray, spec) -> None:
    import tensorflow as tf

    kind = "string" if spec.dtype == tf.string else spec.dtype.name
    given = "string" if value.dtype.kind in "OSU" else value.dtype.name
    if given != kind:
        raise invalid_argument(f"input '{name}' has dtype {given} but the signature expects {kind}")
    if not spec.shape.is_compatible_with(value.shape):
        raise invalid_argument(
            f"input '{name}' has shape {list(value.shape)} but the signature expects {spec.shape.as_list()} "
            "(None = any size)"
        )


def read_signature_defs(saved_model_dir: Path):
    """The SignatureDefMap stored in saved_model.pb (what GetModelMetadata returns)."""
    from tensorflow.core.protobuf import saved_model_pb2
    from tensorflow_serving.apis import get_model_metadata_pb2

    saved_model = saved_model_pb2.SavedModel.FromString(
        (Path(saved_model_dir) / "saved_model.pb").read_bytes()
    )
    signature_map = get_model_metadata_pb2.SignatureDefMap()
    for key, definition in saved_model.meta_graphs[0].signature_def.items():
        if not key.startswith("__"):  # internal init ops are not servable signatures
            signature_map.signature_def[key].CopyFrom(definition)
    return signature_map


def load_servable(name: str, version: int, path: Path, limits: ImageLimits | None = None) -> Servable:
    """Load a SavedModel version and replay its warm-up requests (a failing warm-up fails the load)."""
    import tensorflow as tf

    servable = Servable(
        name=name,
        version=version,
        path=Path(path),
        loaded=tf.saved_model.load(str(path)),
        signature_defs=read_signature_defs(path),
        limits=limits or ImageLimits(),
    )
    warmup = Path(path) / "assets.extra" / WARMUP_ASSET
    if warmup.is_file():
        _replay_warmup(servable, warmup)
    return servable


def _replay_warmup(servable: Servable, warmup: Path) -> None:
    import tensorflow as tf
    from tensorflow_serving.apis import prediction_log_pb2

    # TF Serving replays at most 1000 records; only predict logs apply to a Predict-only server.
    for count, raw in enumerate(tf.data.TFRecordDataset(str(warmup)).as_numpy_iterator()):
        if count >= 1000:
            break
        log = prediction_log_pb2.PredictionLog.FromString(raw)
        if log.WhichOneof("log_type") != "predict_log":
            continue
        request = log.predict_log.request
        inputs = {alias: tf.make_ndarray(proto) for alias, proto in request.inputs.items()}
        servable.predict(request.model_spec.signature_name, inputs, list(request.output_filter))
    LOGGER.info("warmed up %s version %s", servable.name, servable.version)
