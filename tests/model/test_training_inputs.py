"""Training pieces below the fit: class weights, the tf.data pipeline, task checks, weight errors."""

import dataclasses
import io

import numpy as np
import pandas as pd
import pytest
import tensorflow as tf
from PIL import Image

from mura_core.contracts import class_map, parse_task
from mura_core.errors import ConfigError, DataError
from pipelines.training.architectures import resolve_weights
from pipelines.training.inputs import make_dataset, part_class_weights, usable_rows
from pipelines.training.tasks import check_task_rows, targets


def test_mura_paper_class_weights():
    # Elbow: 1 abnormal, 3 normal -> w1 = 3/4, w0 = 1/4; hand: 2 and 2 -> 1/2 each. Then mean 1.
    frame = pd.DataFrame({"body_part": ["XR_ELBOW"] * 4 + ["XR_HAND"] * 4, "label": [1, 0, 0, 0, 1, 1, 0, 0]})
    weights = part_class_weights(frame)
    raw = {("XR_ELBOW", 1): 0.75, ("XR_ELBOW", 0): 0.25, ("XR_HAND", 1): 0.5, ("XR_HAND", 0): 0.5}
    mean = (0.75 + 3 * 0.25 + 4 * 0.5) / 8
    for key, value in raw.items():
        assert weights[key] == pytest.approx(value / mean)
    assert weights[("XR_ELBOW", 1)] / weights[("XR_ELBOW", 0)] == pytest.approx(3.0)


def test_targets_and_class_map_follow_the_design_index():
    frame = pd.DataFrame({"body_part": ["XR_ELBOW", "XR_WRIST", "XR_HAND"], "label": [1, 0, 1]})
    assert targets(parse_task("14cls"), frame).tolist() == [7, 6, 10]
    assert targets(parse_task("binary"), frame).tolist() == [[1.0], [0.0], [1.0]]
    mapping = class_map(parse_task("14cls"), "baseline_cnn", (64, 64))
    assert mapping["model_name"] == "mura_14cls" and len(mapping["classes"]) == 14
    assert mapping["classes"][7] == "XR_ELBOW/abnormal" and mapping["classes"][6] == "XR_WRIST/normal"
    assert class_map(parse_task("binary:elbow"), "xception", (80, 80))["model_name"] == "mura_binary_elbow"


def _png(value: int, size=(40, 20), mode="L") -> bytes:
    buffer = io.BytesIO()
    Image.new(mode, size, color=value if mode == "L" else (value,) * 3).save(buffer, format="PNG")
    return buffer.getvalue()


def _tiny_tree(root, count=6):
    rows = []
    for index in range(count):
        path = f"MURA-v1.1/valid/XR_HAND/patient{index:05d}/study1_negative/image1.png"
        (root / path).parent.mkdir(parents=True)
        (root / path).write_bytes(_png(20 * index + 10, mode="RGB" if index % 2 else "L"))
        rows.append(
            {
                "image_path": path,
                "split": "valid",
                "body_part": "XR_HAND",
                "label": index % 2,
                "study_id": f"XR_HAND/patient{index:05d}/study1",
            }
        )
    return pd.DataFrame(rows)


def test_evaluation_dataset_keeps_order_and_pads(tmp_path):
    frame = _tiny_tree(tmp_path)
    dataset = make_dataset(frame, tmp_path, parse_task("binary"), (32, 32), batch_size=4, with_labels=False)
    batches = [batch.numpy() for batch in dataset]
    pixels = np.concatenate(batches)
    assert pixels.shape == (6, 32, 32, 3) and pixels.dtype == np.float32
    # 40x20 image in a 32x32 box -> 32x16 content with black bands above and below: aspect kept.
    assert pixels[0, 0, :, 0].max() == 0.0 and pixels[0, 16, 16, 0] == pytest.approx(10.0)
    centres = pixels[:, 16, 16, 0]
    assert centres.tolist() == pytest.approx([10, 30, 50, 70, 90, 110])  # manifest order, grey -> RGB


@pytest.mark.parametrize("cache", ["memory", "none"])
def test_training_dataset_has_weights_and_augments(tmp_path, cache):
    frame = _tiny_tree(tmp_path)
    weights = part_class_weights(frame)
    dataset = make_dataset(
        frame,
        tmp_path,
        parse_task("binary"),
        (32, 32),
        3,
        training=True,
        weights=weights,
        augment_strength=1.0,
        augment_ops=("flip", "rotate", "zoom", "contrast"),
        seed=3,
        cache=cache,
    )
    pixels, labels, sample_weights = next(iter(dataset))
    assert pixels.shape == (3, 32, 32, 3) and labels.shape == (3, 1) and sample_weights.shape == (3,)
    assert pixels.dtype == tf.float32
    assert float(pixels.numpy().min()) >= 0.0 and float(pixels.numpy().max()) <= 255.0
    np.testing.assert_array_equal(pixels[..., 0], pixels[..., 2])  # grey: three equal channels
    # Rotation and zoom move pixels: the flat 40x20 images get soft, non-flat edges.
    plain = next(iter(make_dataset(frame, tmp_path, parse_task("binary"), (32, 32), 6, with_labels=False)))
    assert len(np.unique(pixels.numpy())) > len(np.unique(plain.numpy()))


def test_unusable_rows_are_left_out():
    frame = pd.DataFrame(
        {
            "file_exists": [True, False, True],
            "intact": [True, True, False],
            "width": [10, 10, 10],
            "file_bytes": [5, 5, 5],
        }
    )
    assert usable_rows(frame).index.tolist() == [0]


def _rows(splits, parts, labels):
    return pd.DataFrame({"split": splits, "body_part": parts, "label": labels})


def test_missing_splits_and_parts_are_data_errors():
    frame = _rows(["train", "train", "holdout"], ["XR_HAND"] * 3, [0, 1, 0])
    with pytest.raises(DataError, match="no usable 'valid' rows"):
        check_task_rows(parse_task("binary"), frame)
    frame = _rows(["train", "train", "holdout", "valid"], ["XR_HAND"] * 4, [0, 1, 0, 1])
    check_task_rows(parse_task("binary"), frame)
    with pytest.raises(DataError, match="for body part XR_ELBOW"):
        check_task_rows(parse_task("binary:XR_ELBOW"), frame)
    one_class = _rows(["train", "train", "holdout", "valid"], ["XR_HAND"] * 4, [0, 0, 0, 1])
    with pytest.raises(DataError, match="both classes"):
        check_task_rows(parse_task("binary"), one_class)


def test_imagenet_weights_offline_error_names_file_and_folder(tmp_path, monkeypatch):
    monkeypatch.setenv("KERAS_HOME", str(tmp_path / "keras"))
    monkeypatch.delenv("MURA_ALLOW_WEIGHT_DOWNLOAD", raising=False)
    with pytest.raises(ConfigError) as caught:
        resolve_weights("densenet169", "imagenet")
    message = str(caught.value)
    assert "densenet169_weights_tf_dim_ordering_tf_kernels_notop.h5" in message
    assert str(tmp_path / "keras" / "models") in message
    cached = tmp_path / "keras" / "models" / "densenet169_weights_tf_dim_ordering_tf_kernels_notop.h5"
    cached.parent.mkdir(parents=True)
    cached.write_bytes(b"")
    assert resolve_weights("densenet169", "imagenet") == "imagenet"
    with pytest.raises(ConfigError, match="not found"):
        resolve_weights("resnet50", str(tmp_path / "missing.h5"))
    assert resolve_weights("resnet50", None) is None


def test_batch_size_is_per_replica_and_precision_policy_is_scoped(tmp_path):
    import keras

    from pipelines.training.presets import resolve_config
    from pipelines.training.run import Devices, devices, make_datasets

    frame = pd.concat(
        [_tiny_tree(tmp_path).assign(split="train"), _tiny_tree(tmp_path / "h").assign(split="holdout")]
    )
    config = dataclasses.replace(resolve_config("ci_tiny"), batch_size=2, augment=False, cache="none")
    for replicas, expected in ((1, 2), (2, 4)):
        train_data, _ = make_datasets(config, frame, tmp_path, replicas)
        shapes = [batch[0].shape[0] for batch in train_data]
        assert max(shapes) == expected, shapes  # 2 per replica (batches may come out of order)
    previous = keras.config.dtype_policy().name
    hardware = devices(dataclasses.replace(resolve_config("ci_tiny"), mixed_precision="on"))
    assert isinstance(hardware, Devices) and hardware.mixed and hardware.replicas == 1
    with hardware.precision():
        assert keras.config.dtype_policy().name == "mixed_float16"
    assert keras.config.dtype_policy().name == previous
    assert not devices(
        dataclasses.replace(resolve_config("ci_tiny"), mixed_precision="auto")
    ).mixed  # no GPU here
