"""Every architecture builds with weights=None at its smallest input and has the task's head."""

import keras
import numpy as np
import pytest

import pipelines.training.layers  # noqa: F401  (registers the custom layers)
from mura_core.contracts import parse_task
from pipelines.evaluation.gradcam import split_network
from pipelines.training.architectures import ARCHITECTURES
from pipelines.training.zoo import build_model, set_backbone_trainable

HEAVY = {"densenet169", "resnet152", "efficientnetv2_s"}
PARAMS = [pytest.param(name, marks=pytest.mark.slow) if name in HEAVY else name for name in ARCHITECTURES]


@pytest.mark.parametrize("arch", PARAMS)
def test_every_architecture_builds_for_each_task(arch):
    size = ARCHITECTURES[arch].min_input
    pixels = np.random.default_rng(0).uniform(0, 255, (2, size, size, 3)).astype("float32")
    # A one-part task has the binary head (the head comes from the task alone: no third build).
    elbow, binary = parse_task("binary:XR_ELBOW"), parse_task("binary")
    assert (elbow.units, elbow.activation) == (binary.units, binary.activation)
    for task_name, shape in (("binary", (2, 1)), ("14cls", (2, 14))):
        model = build_model(arch, parse_task(task_name), (size, size), weights=None)
        assert model.input_shape == (None, size, size, 3)
        assert model.output_shape == (None, shape[1])
        output = np.asarray(model(pixels, training=False))
        assert output.shape == shape and output.dtype == np.float32
        if task_name == "14cls":
            assert np.allclose(output.sum(axis=1), 1.0, atol=1e-4)
        else:
            assert ((output >= 0) & (output <= 1)).all()
        # Grad-CAM's split at the last feature map recomputes the very same output.
        network = split_network(model)
        maps = network.to_maps(pixels)
        assert len(maps.shape) == 4
        scores = network.to_scores(maps)
        again = (
            keras.activations.softmax(scores) if task_name == "14cls" else keras.activations.sigmoid(scores)
        )
        np.testing.assert_allclose(np.asarray(again), output, rtol=0, atol=1e-6)


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


@pytest.mark.parametrize("train_batch_norm", [True, False])
def test_pretrained_batch_norm_statistics_adapt_only_when_asked(tmp_path, train_batch_norm):
    from pipelines.training.fit import compile_model, plan_phases
    from pipelines.training.presets import resolve_config
    from pipelines.training.zoo import build_backbone

    weights = tmp_path / "backbone.weights.h5"  # stands for ImageNet weights (offline here)
    build_backbone("mobilenet_v3_small", (32, 32), None).save_weights(weights)
    task = parse_task("binary")
    model = build_model("mobilenet_v3_small", task, (32, 32), str(weights), 0.0, train_batch_norm)
    set_backbone_trainable(model, -1, train_batch_norm)  # the fine-tuning phase unfreezes everything
    compile_model(model, task, 1e-3)
    norm = next(
        layer
        for layer in model.get_layer("backbone").layers
        if isinstance(layer, keras.layers.BatchNormalization)
    )
    before = np.asarray(norm.moving_mean).copy()
    pixels = np.random.default_rng(1).uniform(0, 255, (4, 32, 32, 3)).astype("float32")
    model.fit(pixels, np.array([0, 1, 0, 1]), epochs=1, verbose=0)
    moved = not np.allclose(np.asarray(norm.moving_mean), before)
    assert moved == train_batch_norm
    # The paper preset: one end-to-end phase, no frozen warm-up, LR / 10 on a plateau.
    paper = resolve_config(
        "mura_paper", {"weights": str(weights), "arch": "mobilenet_v3_small", "image_size": 32}
    )
    phases = plan_phases(paper, pretrained=True)
    assert [(p.name, p.epochs, p.trainable_layers, p.train_batch_norm) for p in phases] == [
        ("full", 30, -1, True)
    ]
    assert paper.train_batch_norm and paper.reduce_lr_factor == 0.1 and paper.learning_rate == 1e-4


@pytest.mark.parametrize("flip_tta", [False, True])
def test_ensemble_averages_members_and_reloads(tmp_path, flip_tta):
    from pipelines.training.ensemble import average_model

    members = [build_model("baseline_cnn", parse_task("binary"), (32, 32), None, 0.0) for _ in range(2)]
    pixels = np.random.default_rng(2).uniform(0, 255, (3, 32, 32, 3)).astype("float32")
    mirrored = pixels[:, :, ::-1, :]
    outputs = [
        np.asarray(member(batch))
        for member in members
        for batch in ([pixels, mirrored] if flip_tta else [pixels])
    ]
    ensemble = average_model(members, flip_tta)
    expected = np.mean(outputs, axis=0)
    np.testing.assert_allclose(np.asarray(ensemble(pixels)), expected, atol=1e-6)
    assert not np.allclose(outputs[0], outputs[-1])  # the members (or views) really differ
    ensemble.save(tmp_path / "ensemble.keras")
    reloaded = keras.saving.load_model(tmp_path / "ensemble.keras")
    np.testing.assert_allclose(np.asarray(reloaded(pixels)), expected, atol=1e-6)
