"""Export a trained Keras model as a SavedModel that TensorFlow Serving loads unchanged.

Signatures (docs/ARCHITECTURE.md, "Contracts"): `serving_default` takes encoded PNG/JPEG bytes and runs the same
preprocessing as training (pipelines.training.preprocessing) inside the graph; `predict_pixels` takes
float32 [None, H, W, 3] in 0..255. The warm-up file and the class map go to `assets.extra/`.
"""

from __future__ import annotations

import json
import logging
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import numpy as np

from mura_core.config import ServingParams, load_config
from mura_core.contracts import (
    BODY_PARTS,
    CLASS_MAP_ASSET,
    EXPLAIN_SIGNATURE,
    INPUT_IMAGE_BYTES,
    INPUT_PIXELS,
    OUTPUT_BODY_PART,
    OUTPUT_CLASS_PROBABILITIES,
    OUTPUT_HEATMAP,
    OUTPUT_HEATMAP_BOX,
    OUTPUT_IMAGE_SIZE,
    OUTPUT_LABEL,
    OUTPUT_PROBABILITY,
    OUTPUT_RAW_PROBABILITY,
    OUTPUT_STUDY_CALIBRATION,
    OUTPUT_THRESHOLD,
    PIXELS_SIGNATURE,
    SERVING_SIGNATURE,
    calibrated,
    parse_task,
)
from mura_core.errors import ConfigError, ExportError
from mura_core.progress import bar
from pipelines.evaluation import OperatingPoint
from pipelines.export.precision import float32_model
from pipelines.export.warmup import placeholder_image, write_warmup_file

LOGGER = logging.getLogger(__name__)


def task_kind(task: str) -> str:
    """`binary`, `binary:XR_ELBOW` -> `binary`; `14cls` -> `14cls`; anything else is refused."""
    try:
        return parse_task(task).kind
    except ConfigError as error:
        raise ExportError(f"class map: {error}") from None


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


def operating_point(class_map: dict[str, Any]) -> OperatingPoint:
    """The class map's operating point; a model without one keeps params.yaml's fixed threshold."""
    return OperatingPoint.from_dict(class_map.get("operating_point"), load_config().evaluation.threshold)


def _output_heads(kind: str, point: OperatingPoint):
    """The graph that turns the network's probabilities into the served outputs: raw and calibrated
    probability, threshold, label (and the study calibration, the body part and the class scores)."""
    import tensorflow as tf

    part_names = tf.constant(BODY_PARTS)
    parts = len(BODY_PARTS)

    def heads(probabilities):
        probabilities = tf.cast(probabilities, tf.float32)
        outputs = {}
        if kind == "14cls":
            # class index = 7 * abnormal + part index, so the abnormal mass is the upper half.
            abnormal = tf.reduce_sum(probabilities[:, parts:], axis=1)
            part_scores = probabilities[:, :parts] + probabilities[:, parts:]
            outputs[OUTPUT_BODY_PART] = tf.gather(part_names, tf.argmax(part_scores, axis=1))
            outputs[OUTPUT_CLASS_PROBABILITIES] = probabilities
        else:
            abnormal = tf.reshape(probabilities, [-1])
        outputs[OUTPUT_RAW_PROBABILITY] = abnormal
        if point.method == "fitted":  # the contract's formula, in the graph
            ops = SimpleNamespace(
                clip=tf.clip_by_value, log=tf.math.log, log1p=tf.math.log1p, exp=tf.math.exp
            )
            abnormal = calibrated(abnormal, point.temperature, point.shift, ops)
        outputs[OUTPUT_PROBABILITY] = abnormal  # an image alone: a study of one
        outputs[OUTPUT_THRESHOLD] = tf.fill(tf.shape(abnormal), tf.constant(point.threshold, tf.float32))
        if point.method == "fitted" and point.level == "study":
            # What a client needs to calibrate a study's mean raw probability (serving.client).
            parameters = tf.constant([[point.temperature, point.shift]], tf.float32)
            outputs[OUTPUT_STUDY_CALIBRATION] = tf.tile(parameters, [tf.shape(abnormal)[0], 1])
        outputs[OUTPUT_LABEL] = tf.where(
            abnormal >= point.threshold, tf.constant("abnormal"), tf.constant("normal")
        )
        return outputs

    return heads


def build_archive(model, class_map: dict[str, Any]):
    """A keras.export.ExportArchive with the `serving_default` and `predict_pixels` endpoints."""
    import keras

    from pipelines.evaluation import has_zoo_layout, networks_of

    height, width = _check_class_map(class_map)
    kind = task_kind(class_map["task"])
    point = operating_point(class_map)
    heads = _output_heads(kind, point)
    serving_default, predict_pixels = _prediction_endpoints(model, heads, height, width)
    archive = keras.export.ExportArchive()
    archive.track(model)
    archive.add_endpoint(SERVING_SIGNATURE, serving_default)
    archive.add_endpoint(PIXELS_SIGNATURE, predict_pixels)
    if has_zoo_layout(model):  # a hand-made model without a backbone gets no heatmaps
        networks = networks_of(model)
        archive.add_endpoint(
            EXPLAIN_SIGNATURE, _explain_endpoint(model, heads, networks, kind, height, width)
        )
    else:
        LOGGER.warning(
            "%s has no backbone feature map: exported without the %s signature", model.name, EXPLAIN_SIGNATURE
        )
    return archive


def _prediction_endpoints(model, heads, height: int, width: int):
    """(`serving_default` on encoded image bytes, `predict_pixels` on float32 pixels), both through the
    output heads."""
    import tensorflow as tf

    from pipelines.training import decode_and_resize

    @tf.function(input_signature=[tf.TensorSpec([None, height, width, 3], tf.float32, name=INPUT_PIXELS)])
    def predict_pixels(pixels):
        return heads(model(pixels, training=False))

    @tf.function(input_signature=[tf.TensorSpec([None], tf.string, name=INPUT_IMAGE_BYTES)])
    def serving_default(image_bytes):
        pixels = tf.map_fn(
            lambda one: decode_and_resize(one, (height, width)),
            image_bytes,
            fn_output_signature=tf.TensorSpec([height, width, 3], tf.float32),
        )
        return heads(model(pixels, training=False))

    return serving_default, predict_pixels


def _explain_endpoint(model, heads, networks, kind: str, height: int, width: int):
    """`explain` on encoded image bytes: each image's heatmap, the box the image fills in the model's
    input and its size, with the probability and label."""
    import tensorflow as tf

    from pipelines.evaluation import heatmaps
    from pipelines.training import (
        decode_grey,
        fitted_size,
        grey_to_model_pixels,
        resize_with_padding,
    )

    def decode_with_geometry(one):
        grey = decode_grey(one)
        shape = tf.shape(grey)[:2]
        new_height, new_width = fitted_size(shape[0], shape[1], (height, width))
        box = tf.stack([(height - new_height) // 2, (width - new_width) // 2, new_height, new_width])
        return grey_to_model_pixels(resize_with_padding(grey, (height, width))), shape, box

    @tf.function(input_signature=[tf.TensorSpec([None], tf.string, name=INPUT_IMAGE_BYTES)])
    def explain(image_bytes):
        pixels, sizes, boxes = tf.map_fn(
            decode_with_geometry,
            image_bytes,
            fn_output_signature=(
                tf.TensorSpec([height, width, 3], tf.float32),
                tf.TensorSpec([2], tf.int32),
                tf.TensorSpec([4], tf.int32),
            ),
        )
        outputs = heads(model(pixels, training=False))
        return {
            OUTPUT_HEATMAP: heatmaps(networks, pixels, multiclass=kind == "14cls"),
            OUTPUT_HEATMAP_BOX: boxes,
            OUTPUT_IMAGE_SIZE: sizes,
            OUTPUT_PROBABILITY: outputs[OUTPUT_PROBABILITY],
            OUTPUT_LABEL: outputs[OUTPUT_LABEL],
        }

    return explain


def verify_export(
    saved_model_dir: Path, model, class_map: dict[str, Any], sample_images: list[bytes]
) -> float:
    """Reload the SavedModel and return the max abs diff of both signatures vs the Keras model (the raw
    output, and the calibrated probability vs pipelines.evaluation.calibration on the raw one)."""
    import tensorflow as tf

    from pipelines.training import (
        decode_and_resize,
    )

    height, width = _check_class_map(class_map)
    loaded = tf.saved_model.load(str(saved_model_dir))
    # Graph mode, as in tf.data and the serving graph: resize_with_pad rounds its padding differently
    # in eager mode for some aspect ratios (a one-pixel shift), which is not what training saw.
    prepare = tf.function(lambda image: decode_and_resize(image, (height, width)))
    pixels = tf.stack([prepare(tf.constant(image)) for image in sample_images])
    expected = np.asarray(model(pixels, training=False), dtype=np.float32)
    if task_kind(class_map["task"]) == "14cls":
        key = OUTPUT_CLASS_PROBABILITIES
        raw = expected[:, len(BODY_PARTS) :].sum(axis=1)
    else:
        key, expected = OUTPUT_RAW_PROBABILITY, expected.reshape(-1)
        raw = expected
    calibrated = operating_point(class_map).apply(raw)
    by_bytes = loaded.signatures[SERVING_SIGNATURE](**{INPUT_IMAGE_BYTES: tf.constant(sample_images)})
    by_pixels = loaded.signatures[PIXELS_SIGNATURE](**{INPUT_PIXELS: pixels})
    differences = [
        np.max(np.abs(outputs[name].numpy() - wanted))
        for outputs in (by_bytes, by_pixels)
        for name, wanted in ((key, expected), (OUTPUT_PROBABILITY, calibrated))
    ]
    return float(max(differences))


def export_saved_model(
    model,
    class_map: dict[str, Any],
    out_dir: Path,
    sample_images: list[bytes],
    params: ServingParams | None = None,
) -> Path:
    """Export `model` with its class map to `out_dir` (a new folder), write warm-up, check the reload."""
    settings = params or load_config().serving
    out_dir = Path(out_dir)
    if out_dir.exists() and any(out_dir.iterdir()):
        raise ExportError(f"{out_dir} is not empty: export into a new folder")
    samples = list(sample_images)[: settings.warmup_images] or [placeholder_image()]
    with bar(4, "export", unit="step") as progress:  # tracing and the reload check take the time
        model = float32_model(model)
        archive = build_archive(model, class_map)
        progress.update()
        archive.write_out(str(out_dir), verbose=False)
        progress.update()
        write_warmup_file(out_dir, class_map["model_name"], samples)
        (out_dir / "assets.extra" / CLASS_MAP_ASSET).write_text(
            json.dumps(class_map, indent=2, sort_keys=True)
        )
        progress.update()
        difference = verify_export(out_dir, model, class_map, samples)
        progress.update()
    tolerance = settings.reload_tolerance
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
        raise ExportError(f"{path} not found: this SavedModel was not exported by pipelines.export")
    return json.loads(path.read_text())
