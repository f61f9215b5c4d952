"""The exported SavedModel: signatures, in-graph preprocessing, 14-class heads, warm-up, reload check."""

from __future__ import annotations

import json

import numpy as np
import pytest

from pipelines import contracts
from pipelines.contracts import BODY_PARTS

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
    assert set(serving.structured_outputs) == {"abnormal_probability", "label"}
    pixels, expected = keras_on_images(model, images)
    outputs = serving(image_bytes=tf.constant(images))
    np.testing.assert_allclose(outputs["abnormal_probability"].numpy(), expected[:, 0], atol=1e-5)
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
    import tensorflow as tf

    from pipelines.export import read_class_map, read_warmup_file

    _, class_map, path = exports["14cls"]
    records = read_warmup_file(path)
    assert len(records) == len(images)
    for record, image in zip(records, images, strict=True):
        request = record.predict_log.request
        assert request.model_spec.name == "mura_14cls"
        assert request.model_spec.signature_name == "serving_default"
        assert tf.make_ndarray(request.inputs["image_bytes"]).tolist() == [image]
    assert read_class_map(path) == json.loads(json.dumps(class_map))


def test_reload_check_detects_a_different_model(exports, images):
    from pipelines.export import verify_export
    from serving import samples

    model, class_map, path = exports["binary"]
    assert verify_export(path, model, class_map, images) < 1e-5
    other = samples.tiny_keras_model("binary", IMAGE_SIZE, seed=99)
    assert verify_export(path, other, class_map, images) > 1e-4


def test_export_refuses_bad_input(tmp_path, exports, images):
    from pipelines.errors import ExportError
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
