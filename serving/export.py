"""Export a trained Keras model as a SavedModel that TensorFlow Serving loads unchanged.

Signatures (DESIGN.md section 3): `serving_default` takes encoded PNG/JPEG bytes and runs the same
preprocessing as training (pipelines.training.preprocessing) inside the graph; `predict_pixels` takes
float32 [None, H, W, 3] in 0..255. The warm-up file and the class map go to `assets.extra/`.
"""

from __future__ import annotations

import json
import logging
import shutil
import tempfile
from pathlib import Path
from typing import Any

import numpy as np

from pipelines.data.layout import BODY_PARTS
from pipelines.settings import params_section
from serving.errors import ExportError

LOGGER = logging.getLogger(__name__)
SERVING_SIGNATURE = "serving_default"
PIXELS_SIGNATURE = "predict_pixels"
CLASS_MAP_ASSET = "mura_class_map.json"
TASKS = ("binary", "14cls")


def task_kind(task: str) -> str:
    """`binary`, `binary:XR_ELBOW` -> `binary`; `14cls` -> `14cls`; anything else is refused."""
    kind = task.split(":", 1)[0]
    if kind not in TASKS:
        raise ExportError(
            f"unknown task {task!r} in the class map: expected binary, binary:<XR_PART> or 14cls"
        )
    return kind


def _check_class_map(class_map: dict[str, Any]) -> tuple[int, int]:
    missing = [key for key in ("task", "model_name", "image_size") if key not in class_map]
    if missing:
        raise ExportError(f"class map lacks {missing}: it must carry task, model_name, classes, image_size")
    task_kind(class_map["task"])
    try:
        height, width = (int(side) for side in class_map["image_size"])
    except (TypeError, ValueError) as error:
        raise ExportError(f"class map image_size {class_map['image_size']!r} is not [H, W]") from error
    return height, width


def build_archive(model, class_map: dict[str, Any], threshold: float | None = None):
    """A keras.export.ExportArchive with the `serving_default` and `predict_pixels` endpoints."""
    import keras
    import tensorflow as tf

    from pipelines.training.preprocessing import decode_and_resize

    height, width = _check_class_map(class_map)
    kind = task_kind(class_map["task"])
    threshold = float(params_section("serving")["threshold"] if threshold is None else threshold)
    part_names = tf.constant(BODY_PARTS)
    parts = len(BODY_PARTS)

    def heads(probabilities):
        probabilities = tf.cast(probabilities, tf.float32)
        outputs = {}
        if kind == "14cls":
            # class index = 7 * abnormal + part index, so the abnormal mass is the upper half.
            abnormal = tf.reduce_sum(probabilities[:, parts:], axis=1)
            part_scores = probabilities[:, :parts] + probabilities[:, parts:]
            outputs["body_part"] = tf.gather(part_names, tf.argmax(part_scores, axis=1))
            outputs["class_probabilities"] = probabilities
        else:
            abnormal = tf.reshape(probabilities, [-1])
        outputs["abnormal_probability"] = abnormal
        outputs["label"] = tf.where(abnormal >= threshold, tf.constant("abnormal"), tf.constant("normal"))
        return outputs

    @tf.function(input_signature=[tf.TensorSpec([None, height, width, 3], tf.float32, name="pixels")])
    def predict_pixels(pixels):
        return heads(model(pixels, training=False))

    @tf.function(input_signature=[tf.TensorSpec([None], tf.string, name="image_bytes")])
    def serving_default(image_bytes):
        pixels = tf.map_fn(
            lambda one: decode_and_resize(one, (height, width)),
            image_bytes,
            fn_output_signature=tf.TensorSpec([height, width, 3], tf.float32),
        )
        return heads(model(pixels, training=False))

    archive = keras.export.ExportArchive()
    archive.track(model)
    archive.add_endpoint(SERVING_SIGNATURE, serving_default)
    archive.add_endpoint(PIXELS_SIGNATURE, predict_pixels)
    return archive


def write_warmup_file(saved_model_dir: Path, model_name: str, sample_images: list[bytes]) -> Path:
    """Write assets.extra/tf_serving_warmup_requests: one PredictionLog per sample image."""
    import tensorflow as tf
    from tensorflow_serving.apis import model_pb2, predict_pb2, prediction_log_pb2

    path = Path(saved_model_dir) / "assets.extra" / "tf_serving_warmup_requests"
    path.parent.mkdir(parents=True, exist_ok=True)
    with tf.io.TFRecordWriter(str(path)) as writer:
        for image in sample_images:
            request = predict_pb2.PredictRequest(
                model_spec=model_pb2.ModelSpec(name=model_name, signature_name=SERVING_SIGNATURE)
            )
            request.inputs["image_bytes"].CopyFrom(tf.make_tensor_proto([image], dtype=tf.string))
            log = prediction_log_pb2.PredictionLog(predict_log=prediction_log_pb2.PredictLog(request=request))
            writer.write(log.SerializeToString())
    return path


def read_warmup_file(saved_model_dir: Path) -> list:
    """The PredictionLog records of a SavedModel's warm-up file."""
    import tensorflow as tf
    from tensorflow_serving.apis import prediction_log_pb2

    path = Path(saved_model_dir) / "assets.extra" / "tf_serving_warmup_requests"
    records = []
    for raw in tf.data.TFRecordDataset(str(path)).as_numpy_iterator():
        records.append(prediction_log_pb2.PredictionLog.FromString(raw))
    return records


def placeholder_image(size: int = 64) -> bytes:
    """A small grey gradient PNG, used for warm-up when no sample image is at hand."""
    import tensorflow as tf

    ramp = np.linspace(0, 255, size, dtype=np.float32)
    grey = np.outer(ramp, ramp[::-1]) / 255.0
    return tf.io.encode_png(grey.astype(np.uint8)[:, :, None]).numpy()


def verify_export(
    saved_model_dir: Path, model, class_map: dict[str, Any], sample_images: list[bytes]
) -> float:
    """Reload the SavedModel and return the max abs diff of both signatures vs the Keras model."""
    import tensorflow as tf

    from pipelines.training.preprocessing import decode_and_resize

    height, width = _check_class_map(class_map)
    loaded = tf.saved_model.load(str(saved_model_dir))
    # Graph mode, as in tf.data and the serving graph: resize_with_pad rounds its padding differently
    # in eager mode for some aspect ratios (a one-pixel shift), which is not what training saw.
    prepare = tf.function(lambda image: decode_and_resize(image, (height, width)))
    pixels = tf.stack([prepare(tf.constant(image)) for image in sample_images])
    expected = np.asarray(model(pixels, training=False), dtype=np.float32)
    if task_kind(class_map["task"]) == "14cls":
        key = "class_probabilities"
    else:
        key, expected = "abnormal_probability", expected.reshape(-1)
    from_bytes = loaded.signatures[SERVING_SIGNATURE](image_bytes=tf.constant(sample_images))[key].numpy()
    from_pixels = loaded.signatures[PIXELS_SIGNATURE](pixels=pixels)[key].numpy()
    return float(max(np.max(np.abs(from_bytes - expected)), np.max(np.abs(from_pixels - expected))))


def export_saved_model(model, class_map: dict[str, Any], out_dir: Path, sample_images: list[bytes]) -> Path:
    """Export `model` with its class map to `out_dir` (a new folder), write warm-up, check the reload."""
    settings = params_section("serving")
    out_dir = Path(out_dir)
    if out_dir.exists() and any(out_dir.iterdir()):
        raise ExportError(f"{out_dir} is not empty: export into a new folder")
    samples = list(sample_images)[: int(settings["warmup_images"])] or [placeholder_image()]
    archive = build_archive(model, class_map, threshold=class_map.get("threshold"))
    archive.write_out(str(out_dir), verbose=False)
    write_warmup_file(out_dir, class_map["model_name"], samples)
    (out_dir / "assets.extra" / CLASS_MAP_ASSET).write_text(json.dumps(class_map, indent=2, sort_keys=True))
    difference = verify_export(out_dir, model, class_map, samples)
    tolerance = float(settings["reload_tolerance"])
    if not difference < tolerance:
        raise ExportError(
            f"reloaded SavedModel differs from the Keras model by {difference:.3g} (limit {tolerance:g}): "
            "check for layers that behave differently in inference"
        )
    LOGGER.info("exported %s to %s (reload max abs diff %.2g)", class_map["model_name"], out_dir, difference)
    return out_dir


def read_class_map(saved_model_dir: Path) -> dict[str, Any]:
    """The class map stored beside an exported SavedModel."""
    path = Path(saved_model_dir) / "assets.extra" / CLASS_MAP_ASSET
    if not path.is_file():
        raise ExportError(f"{path} not found: this SavedModel was not exported by serving.export")
    return json.loads(path.read_text())


def export_run(run_id: str, out_dir: Path | None = None, sample_images: list[bytes] | None = None) -> dict:
    """Download a training run's model, export it and log the SavedModel under the run's `tf_serving/`."""
    import keras
    import mlflow

    from pipelines.settings import get_settings

    mlflow.set_tracking_uri(get_settings().mlflow_tracking_uri)
    client = mlflow.MlflowClient()
    with tempfile.TemporaryDirectory(prefix="mura-export-") as scratch:
        try:
            model_file = client.download_artifacts(run_id, "model/model.keras", scratch)
            map_file = client.download_artifacts(run_id, "model/class_map.json", scratch)
        except mlflow.exceptions.MlflowException as error:
            raise ExportError(
                f"run {run_id}: cannot download model/model.keras and model/class_map.json ({error}); "
                "is it a finished training run of this tracking server?"
            ) from error
        class_map = json.loads(Path(map_file).read_text())
        import pipelines.training  # noqa: F401  (registers the zoo's custom layers for load_model)

        model = keras.saving.load_model(model_file, compile=False)
        target = Path(out_dir) if out_dir else Path(scratch) / "tf_serving"
        export_saved_model(model, class_map, target, sample_images or [])
        client.log_artifacts(run_id, str(target), artifact_path="tf_serving")
        if out_dir is None:
            shutil.rmtree(target, ignore_errors=True)
    return {
        "run_id": run_id,
        "model_name": class_map["model_name"],
        "artifact_path": "tf_serving",
        "saved_model_dir": str(out_dir) if out_dir else None,
    }
