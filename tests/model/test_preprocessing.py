"""Shared preprocessing (training == serving) and the grey-channel augmentation."""

import io

import numpy as np
import pandas as pd
import pytest
import tensorflow as tf
from PIL import Image

from mura_core.contracts import parse_task
from pipelines.training import augment
from pipelines.training.inputs import make_dataset
from pipelines.training.preprocessing import decode_and_resize, decode_and_resize_grey


def _encoded(pixels: np.ndarray, mode: str, image_format: str = "PNG") -> bytes:
    buffer = io.BytesIO()
    Image.fromarray(pixels).convert(mode).save(buffer, format=image_format)
    return buffer.getvalue()


def _grey_picture(height=37, width=58, seed=0) -> np.ndarray:
    ramp = np.add.outer(np.arange(height) * 3, np.arange(width) * 2)
    noise = np.random.default_rng(seed).integers(0, 40, (height, width))
    return ((ramp + noise) % 256).astype(np.uint8)


def test_grey_and_rgb_encodings_of_one_picture_give_the_same_pixels():
    picture = _grey_picture()
    from_grey = decode_and_resize(_encoded(picture, "L"), (48, 40)).numpy()
    from_rgb = decode_and_resize(_encoded(picture, "RGB"), (48, 40)).numpy()
    assert from_grey.shape == (48, 40, 3) and from_grey.dtype == np.float32
    np.testing.assert_array_equal(from_grey, from_rgb)
    np.testing.assert_array_equal(from_grey[..., 0], from_grey[..., 2])  # three equal channels
    assert from_grey.max() > 0 and np.array_equal(from_grey, np.round(from_grey))


def test_colour_pictures_become_luma():
    colour = np.zeros((20, 20, 3), np.uint8)
    colour[..., 0] = 200  # pure red: luma 0.299 * 200 = 60
    pixels = decode_and_resize(_encoded(colour, "RGB"), (20, 20)).numpy()
    assert np.all(np.abs(pixels - 60) <= 1)


@pytest.mark.parametrize("shape", [(37, 58), (58, 37), (101, 33), (40, 40)])
def test_eager_and_graph_mode_agree_and_padding_is_centred(shape):
    picture = _grey_picture(*shape)
    encoded = tf.constant(_encoded(picture, "L"))
    eager = decode_and_resize(encoded, (64, 48)).numpy()
    graph = tf.function(lambda image: decode_and_resize(image, (64, 48)))(encoded).numpy()
    np.testing.assert_array_equal(eager, graph)
    content = np.argwhere(
        decode_and_resize_grey(_encoded(np.full(shape, 255, np.uint8), "L"), (64, 48))[..., 0]
    )
    (top, left), (bottom, right) = content.min(axis=0), content.max(axis=0)
    height, width = bottom - top + 1, right - left + 1
    # Aspect ratio kept (to a pixel), content centred with integer offsets, odd pixel at the end.
    assert abs(height / width - shape[0] / shape[1]) < 0.05 * shape[0] / shape[1]
    assert top == (64 - height) // 2 and left == (48 - width) // 2


def _tree(root, pictures):
    rows = []
    for index, picture in enumerate(pictures):
        path = f"MURA-v1.1/train/XR_HAND/patient{index:05d}/study1_negative/image1.png"
        (root / path).parent.mkdir(parents=True)
        (root / path).write_bytes(_encoded(picture, "RGB" if index % 2 else "L"))
        rows.append({"image_path": path, "split": "train", "body_part": "XR_HAND", "label": index % 2})
    return pd.DataFrame(rows)


@pytest.mark.parametrize("cache", ["memory", "none"])
def test_training_pixels_without_augmentation_equal_the_serving_function(tmp_path, cache):
    pictures = [_grey_picture(30 + 7 * index, 50 - 3 * index, seed=index) for index in range(5)]
    frame = _tree(tmp_path, pictures)
    expected = [decode_and_resize(_encoded(p, "L"), (32, 24)).numpy() for p in pictures]
    dataset = make_dataset(
        frame, tmp_path, parse_task("binary"), (32, 24), 5, training=True, augment_strength=0.0, cache=cache
    )
    pixels, _ = next(iter(dataset))
    got = list(pixels.numpy())
    assert len(got) == 5
    for image in expected:  # training shuffles: every expected image appears once, bit for bit
        matches = [index for index, candidate in enumerate(got) if np.array_equal(candidate, image)]
        assert len(matches) == 1
        got.pop(matches[0])


def _reference_transform(grey, flip, angle, scale):
    """ImageProjectiveTransformV3 (float32, black fill) on the flipped batch: the old augmentation."""
    count, height, width = grey.shape[:3]
    flipped = tf.where(flip[:, None, None, None], tf.reverse(grey, [2]), grey)
    maps = augment.affine_transforms(tf.zeros([count], tf.bool), angle, scale, float(height), float(width))
    return tf.raw_ops.ImageProjectiveTransformV3(
        images=tf.cast(flipped, tf.float32),
        transforms=tf.concat([maps, tf.zeros([count, 2])], axis=1),
        output_shape=[height, width],
        fill_value=0.0,
        interpolation="BILINEAR",
        fill_mode="CONSTANT",
    ).numpy()


def test_fused_resampling_matches_the_projective_transform_kernel():
    grey = tf.constant(np.random.default_rng(1).integers(0, 256, (4, 30, 44, 1), dtype=np.uint8))
    flip = tf.constant([True, False, True, False])
    angle = tf.constant([0.4, -0.5, 0.0, 0.0])
    scale = tf.constant([1.08, 0.92, 1.0, 1.0])
    maps = augment.affine_transforms(flip, angle, scale, 30.0, 44.0)
    resampled = augment._augment_batch_xla(grey, maps, None).numpy()
    np.testing.assert_allclose(resampled, _reference_transform(grey, flip, angle, scale), atol=0.02)
    np.testing.assert_array_equal(resampled[2], grey.numpy()[2, :, ::-1])  # a plain flip is exact
    np.testing.assert_array_equal(resampled[3], grey.numpy()[3])  # identity is exact


def test_augmentation_is_seeded_bounded_and_changes_the_image():
    grey = tf.constant(np.random.default_rng(2).integers(0, 256, (3, 32, 32, 1), dtype=np.uint8))
    ops = ("flip", "rotate", "zoom", "contrast")
    seed = tf.constant([5, 6], tf.int64)
    first = augment.augment_batch(grey, seed, 1.0, ops).numpy()
    assert first.shape == (3, 32, 32, 1) and first.dtype == np.float32
    np.testing.assert_array_equal(first, augment.augment_batch(grey, seed, 1.0, ops).numpy())
    assert not np.array_equal(
        first, augment.augment_batch(grey, tf.constant([5, 7], tf.int64), 1.0, ops).numpy()
    )
    assert first.min() >= 0.0 and first.max() <= 255.0
    assert np.abs(first - grey.numpy()).mean() > 1.0
    flipped = augment.augment_batch(grey, seed, 1.0, ("flip",)).numpy()
    for image, original in zip(flipped, grey.numpy(), strict=True):  # only ever the image or its mirror
        assert np.array_equal(image, original) or np.array_equal(image, original[:, ::-1])


def test_one_pass_resize_and_augment_equals_resize_when_nothing_moves():
    picture = _grey_picture(45, 30)
    image = tf.constant(picture[..., None])
    # strength 0: no rotation, zoom or contrast; only the resize-with-padding map remains.
    one_pass = augment.augment_image(image, tf.constant([1, 2], tf.int64), 0.0, ("rotate", "zoom"), (60, 60))
    two_pass = decode_and_resize_grey(_encoded(picture, "L"), (60, 60)).numpy().astype(np.float32)
    assert one_pass.shape == (60, 60, 1)
    # Away from the content's one-pixel rim (black blend vs edge clamp): the same pixels up to the
    # rounding of the cached uint8 image; outside the content: black.
    np.testing.assert_allclose(one_pass.numpy()[1:-1, 11:-11], two_pass[1:-1, 11:-11], atol=0.51)
    assert np.all(one_pass.numpy()[:, :9] == 0) and np.all(one_pass.numpy()[:, -9:] == 0)
