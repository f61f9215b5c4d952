"""Every architecture builds with weights=None at its smallest input and has the task's head."""

import keras
import numpy as np
import pytest

import pipelines.training.layers  # noqa: F401  (registers the custom layers)
from pipelines.contracts import parse_task
from pipelines.training.architectures import ARCHITECTURES
from pipelines.training.zoo import build_model, set_backbone_trainable

HEAVY = {"densenet169", "resnet152", "efficientnetv2_s"}
PARAMS = [pytest.param(name, marks=pytest.mark.slow) if name in HEAVY else name for name in ARCHITECTURES]


@pytest.mark.parametrize("arch", PARAMS)
def test_every_architecture_builds_for_each_task(arch):
    size = ARCHITECTURES[arch].min_input
    pixels = np.random.default_rng(0).uniform(0, 255, (2, size, size, 3)).astype("float32")
    for task_name, shape in (("binary", (2, 1)), ("binary:XR_ELBOW", (2, 1)), ("14cls", (2, 14))):
        model = build_model(arch, parse_task(task_name), (size, size), weights=None)
        assert model.input_shape == (None, size, size, 3)
        assert model.output_shape == (None, shape[1])
        if task_name != "binary:XR_ELBOW":  # same head as binary; skip the extra forward pass
            output = np.asarray(model(pixels, training=False))
            assert output.shape == shape and output.dtype == np.float32
            if task_name == "14cls":
                assert np.allclose(output.sum(axis=1), 1.0, atol=1e-4)
            else:
                assert ((output >= 0) & (output <= 1)).all()


def test_saved_model_reloads_with_the_custom_layer(tmp_path):
    model = build_model("resnet50", parse_task("binary"), (32, 32))
    path = tmp_path / "model.keras"
    model.save(path)
    reloaded = keras.saving.load_model(path)
    pixels = np.full((1, 32, 32, 3), 128.0, dtype="float32")
    assert np.allclose(np.asarray(model(pixels)), np.asarray(reloaded(pixels)), atol=1e-6)
    assert reloaded.get_layer("normalization").mode == "caffe"


def test_mixed_precision_head_stays_float32():
    previous = keras.config.dtype_policy()
    keras.config.set_dtype_policy("mixed_float16")
    try:
        model = build_model("baseline_cnn", parse_task("14cls"), (32, 32))
        output = model(np.zeros((1, 32, 32, 3), dtype="float32"))
    finally:
        keras.config.set_dtype_policy(previous)
    assert keras.backend.standardize_dtype(output.dtype) == "float32"
    assert model.get_layer("backbone").layers[1].compute_dtype == "float16"


def test_fine_tune_depth_unfreezes_the_top_layers():
    model = build_model("mobilenet_v3_small", parse_task("binary"), (32, 32))
    weighted = [layer for layer in model.get_layer("backbone").layers if layer.weights]
    assert set_backbone_trainable(model, 0) == 0
    assert not any(layer.trainable for layer in weighted)
    assert set_backbone_trainable(model, 5) == 5
    assert [layer.trainable for layer in weighted[-6:]] == [False] + [True] * 5
    assert set_backbone_trainable(model, -1) == len(weighted)
