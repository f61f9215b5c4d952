"""The exported SavedModel: signatures, in-graph preprocessing, 14-class heads, warm-up, reload check."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest

from mura_core import contracts
from mura_core.contracts import BODY_PARTS

IMAGE_SIZE = (24, 32)


@pytest.fixture(scope="module")
def images():
    from serving import samples

    return [
        samples.sample_png(100, 60, seed=3),
        samples.sample_png(50, 130, seed=4, grey=False),
        samples.sample_jpeg(70, 70, seed=5),
    ]


@pytest.fixture(scope="module")
def exports(tmp_path_factory, images):
    from pipelines import export
    from serving import samples

    made = {}
    for task in ("binary", "14cls"):
        model = samples.tiny_keras_model(task, IMAGE_SIZE, seed=11)
        class_map = contracts.class_map(task, "tiny", IMAGE_SIZE)
        path = export.export_saved_model(model, class_map, tmp_path_factory.mktemp(task) / "saved", images)
        made[task] = (model, class_map, path)
    return made


def keras_on_images(model, images):
    import tensorflow as tf

    from pipelines.training.preprocessing import decode_and_resize

    # Graph mode, as tf.data runs it.
    prepare = tf.function(lambda image: decode_and_resize(image, IMAGE_SIZE))
    pixels = tf.stack([prepare(tf.constant(image)) for image in images])
    return pixels, np.asarray(model(pixels, training=False))


def test_binary_signatures_match_keras(exports, images):
    import tensorflow as tf

    model, _, path = exports["binary"]
    loaded = tf.saved_model.load(str(path))
    serving = loaded.signatures["serving_default"]
    assert serving.structured_input_signature[1]["image_bytes"].dtype == tf.string
    assert set(serving.structured_outputs) == {
        "abnormal_probability",
        "raw_probability",
        "threshold",
        "label",
    }
    pixels, expected = keras_on_images(model, images)
    outputs = serving(image_bytes=tf.constant(images))
    # No fitted operating point: the probability is the network's own, cut at params.yaml's 0.5.
    np.testing.assert_allclose(outputs["abnormal_probability"].numpy(), expected[:, 0], atol=1e-5)
    np.testing.assert_allclose(outputs["raw_probability"].numpy(), expected[:, 0], atol=1e-5)
    assert outputs["threshold"].numpy().tolist() == [0.5] * len(images)
    labels = [value.decode() for value in outputs["label"].numpy()]
    assert labels == ["abnormal" if p >= 0.5 else "normal" for p in expected[:, 0]]
    from_pixels = loaded.signatures["predict_pixels"](pixels=pixels)
    np.testing.assert_allclose(from_pixels["abnormal_probability"].numpy(), expected[:, 0], atol=1e-5)


def test_14cls_heads(exports, images):
    import tensorflow as tf

    model, _, path = exports["14cls"]
    outputs = tf.saved_model.load(str(path)).signatures["serving_default"](image_bytes=tf.constant(images))
    _, expected = keras_on_images(model, images)
    probabilities = outputs["class_probabilities"].numpy()
    np.testing.assert_allclose(probabilities, expected, atol=1e-5)
    np.testing.assert_allclose(
        outputs["abnormal_probability"].numpy(), expected[:, 7:].sum(axis=1), atol=1e-5
    )
    parts = [BODY_PARTS[i] for i in np.argmax(expected[:, :7] + expected[:, 7:], axis=1)]
    assert [value.decode() for value in outputs["body_part"].numpy()] == parts


def test_warmup_file_parses_as_prediction_logs(exports, images):
    """TensorFlow's TFRecordWriter wrote it; the deploy's reader (no TensorFlow) gets every record back."""
    from pipelines.export import read_class_map, read_warmup_file
    from serving.protos import make_ndarray

    _, class_map, path = exports["14cls"]
    records = read_warmup_file(path)
    assert len(records) == len(images)
    for record, image in zip(records, images, strict=True):
        request = record.predict_log.request
        assert request.model_spec.name == "mura_14cls"
        assert request.model_spec.signature_name == "serving_default"
        assert make_ndarray(request.inputs["image_bytes"]).tolist() == [image]
    assert read_class_map(path) == json.loads(json.dumps(class_map))


def test_reload_check_detects_a_different_model(exports, images):
    from pipelines.export import verify_export
    from serving import samples

    model, class_map, path = exports["binary"]
    assert verify_export(path, model, class_map, images) < 1e-5
    other = samples.tiny_keras_model("binary", IMAGE_SIZE, seed=99)
    assert verify_export(path, other, class_map, images) > 1e-4


def test_export_refuses_bad_input(tmp_path, exports, images):
    from mura_core.errors import ExportError
    from pipelines.export import export_saved_model

    model, class_map, path = exports["binary"]
    with pytest.raises(ExportError, match="not empty"):
        export_saved_model(model, class_map, path, images)
    with pytest.raises(ExportError, match="unknown task"):
        export_saved_model(model, {**class_map, "task": "regression"}, tmp_path / "a", images)
    with pytest.raises(ExportError, match="image_size"):
        export_saved_model(
            model, {k: v for k, v in class_map.items() if k != "image_size"}, tmp_path / "b", images
        )


def test_fitted_operating_point_is_baked_into_the_graph(tmp_path, images):
    import tensorflow as tf

    from pipelines.evaluation.calibration import OperatingPoint
    from pipelines.export import export_saved_model
    from serving import samples

    model = samples.tiny_keras_model("binary", IMAGE_SIZE, seed=11)
    point = OperatingPoint(temperature=0.4, shift=0.3, threshold=0.42, method="fitted", studies=50)
    class_map = {**contracts.class_map("binary", "tiny", IMAGE_SIZE), "operating_point": point.to_dict()}
    path = export_saved_model(model, class_map, tmp_path / "saved", images)
    outputs = tf.saved_model.load(str(path)).signatures["serving_default"](image_bytes=tf.constant(images))
    _, expected = keras_on_images(model, images)
    raw = outputs["raw_probability"].numpy()
    np.testing.assert_allclose(raw, expected[:, 0], atol=1e-5)
    calibrated = outputs["abnormal_probability"].numpy()
    np.testing.assert_allclose(calibrated, point.apply(raw), atol=1e-5)
    assert np.max(np.abs(calibrated - raw)) > 1e-3  # the calibration did something
    assert outputs["threshold"].numpy().tolist() == pytest.approx([0.42] * len(images))
    labels = [value.decode() for value in outputs["label"].numpy()]
    assert labels == ["abnormal" if p >= 0.42 else "normal" for p in calibrated]
    # A study's probability, as the client computes it from the answers, is the evaluation's.
    from serving.client import study_probability

    assert outputs["study_calibration"].numpy() == pytest.approx(np.array([[0.4, 0.3]] * len(images)))
    answers = [
        {"raw_probability": float(r), "abnormal_probability": float(c), "study_calibration": [0.4, 0.3]}
        for r, c in zip(raw, calibrated, strict=True)
    ]
    rows = pd.DataFrame({"study_id": ["one"] * len(images), "raw_probability": raw})
    assert study_probability(answers) == pytest.approx(point.study_probability(rows)[0], abs=1e-6)
    legacy = OperatingPoint.from_dict({**point.to_dict(), "level": "image"}, 0.5)
    legacy_map = {**class_map, "operating_point": legacy.to_dict()}
    legacy_path = export_saved_model(model, legacy_map, tmp_path / "legacy", images)
    legacy_out = tf.saved_model.load(str(legacy_path)).signatures["serving_default"](
        image_bytes=tf.constant(images)
    )
    assert "study_calibration" not in legacy_out  # the client then averages the calibrated images


def test_mixed_precision_model_exports_in_float32_within_the_reload_check(tmp_path, images):
    import keras

    from mura_core.contracts import parse_task
    from pipelines.export import export_saved_model
    from pipelines.export.precision import float32_model, uses_mixed_precision
    from pipelines.training.fit import compile_model
    from pipelines.training.zoo import build_model

    previous = keras.config.dtype_policy()
    keras.config.set_dtype_policy("mixed_float16")
    try:
        keras.utils.set_random_seed(5)
        model = build_model("baseline_cnn", parse_task("binary"), (32, 32), None, 0.1)
        compile_model(model, parse_task("binary"), 1e-3)
        pixels = np.random.default_rng(0).uniform(0, 255, (16, 32, 32, 3)).astype("float32")
        model.fit(pixels, np.arange(16) % 2, epochs=2, batch_size=8, verbose=0)
    finally:
        keras.config.set_dtype_policy(previous)
    assert uses_mixed_precision(model)
    rebuilt = float32_model(model)
    assert not uses_mixed_precision(rebuilt)
    for before, after in zip(model.get_weights(), rebuilt.get_weights(), strict=True):
        np.testing.assert_array_equal(before, after)
    # float16 compute vs float32 compute of the same weights: close, not equal (why export rebuilds).
    np.testing.assert_allclose(np.asarray(rebuilt(pixels)), np.asarray(model(pixels)), atol=5e-2)
    class_map = contracts.class_map("binary", "baseline_cnn", (32, 32))
    export_saved_model(model, class_map, tmp_path / "saved", images)  # raises ExportError above 1e-5


def test_explain_signature_gives_grad_cam_where_the_image_sits(exports, images):
    import tensorflow as tf

    from pipelines.evaluation.gradcam import heatmaps, networks_of

    for task in ("binary", "14cls"):
        model, _, path = exports[task]
        loaded = tf.saved_model.load(str(path))
        assert set(loaded.signatures) == {"serving_default", "predict_pixels", "explain"}
        explained = {
            k: v.numpy() for k, v in loaded.signatures["explain"](image_bytes=tf.constant(images)).items()
        }
        served = loaded.signatures["serving_default"](image_bytes=tf.constant(images))
        np.testing.assert_array_equal(
            explained["abnormal_probability"], served["abnormal_probability"].numpy()
        )
        heatmap = explained["heatmap"]
        assert heatmap.shape == (3, *IMAGE_SIZE) and heatmap.dtype == np.float32
        assert heatmap.min() >= 0.0 and heatmap.max() <= 1.0 and heatmap.max() > 0.0
        # 100x60 (w x h), 50x130 and 70x70 images fitted into the 24x32 frame with their aspect kept.
        assert explained["image_size"].tolist() == [[60, 100], [130, 50], [70, 70]]
        height, width = IMAGE_SIZE
        for (top, left, box_height, box_width), (image_height, image_width) in zip(
            explained["heatmap_box"], explained["image_size"], strict=True
        ):
            assert top + box_height <= height and left + box_width <= width
            assert abs(box_height / box_width - image_height / image_width) < 0.15
            assert box_height == height or box_width == width  # it touches the frame on one side
        pixels, _ = keras_on_images(model, images)
        in_process = np.asarray(heatmaps(networks_of(model), pixels, multiclass=task == "14cls"))
        np.testing.assert_allclose(heatmap, in_process, rtol=0, atol=1e-5)


def test_an_ensemble_explains_with_the_mean_of_its_members(tmp_path, images):
    import tensorflow as tf

    from pipelines import export
    from pipelines.evaluation.gradcam import heatmaps, networks_of
    from pipelines.training.ensemble import average_model
    from serving import samples

    members = [samples.tiny_keras_model("binary", IMAGE_SIZE, seed=seed) for seed in (21, 22)]
    pixels, _ = keras_on_images(members[0], images)
    each = [np.asarray(heatmaps(networks_of(member), pixels, multiclass=False)) for member in members]
    model = average_model(members)
    saved = export.export_saved_model(
        model, contracts.class_map("binary", "tiny", IMAGE_SIZE), tmp_path / "e", images
    )
    served = tf.saved_model.load(str(saved)).signatures["explain"](image_bytes=tf.constant(images))
    np.testing.assert_allclose(served["heatmap"].numpy(), (each[0] + each[1]) / 2, rtol=0, atol=1e-5)


def test_a_model_without_a_backbone_exports_without_explain(tmp_path, images):
    import keras
    import tensorflow as tf

    from pipelines import export

    inputs = keras.Input(shape=(*IMAGE_SIZE, 3))
    outputs = keras.layers.Dense(1, activation="sigmoid")(keras.layers.GlobalAveragePooling2D()(inputs))
    saved = export.export_saved_model(
        keras.Model(inputs, outputs),
        contracts.class_map("binary", "plain", IMAGE_SIZE),
        tmp_path / "p",
        images,
    )
    assert "explain" not in tf.saved_model.load(str(saved)).signatures
