"""Grad-CAM++ heatmaps of image files in-process, in each image's own pixel coordinates (the same
framing and maps as the served `explain` signature)."""

from __future__ import annotations

import numpy as np


def frame_image(image_bytes: bytes, size: tuple[int, int]):
    """(model pixels [H, W, 3], where the image sits in the frame, the image's own height and width)."""
    import tensorflow as tf

    from pipelines.training import (
        decode_grey,
        fitted_size,
        grey_to_model_pixels,
        resize_with_padding,
    )

    grey = decode_grey(tf.constant(image_bytes))
    height, width = (int(value) for value in grey.shape[:2])
    new_height, new_width = (int(value) for value in fitted_size(height, width, size))
    box = ((size[0] - new_height) // 2, (size[1] - new_width) // 2, new_height, new_width)
    return grey_to_model_pixels(resize_with_padding(grey, size)).numpy(), box, (height, width)


def image_heatmaps(model, images: list[bytes], batch: int = 32) -> list[np.ndarray]:
    """One heatmap (0..1, the image's height x width) per encoded image, Grad-CAM++ of the abnormal logit."""
    from pipelines.evaluation.gradcam import heatmaps, networks_of
    from serving import heatmap_on_image

    height, width = model.input_shape[1:3]
    size = (int(height), int(width))
    networks, multiclass = networks_of(model), model.output_shape[-1] > 1
    result = []
    for start in range(0, len(images), batch):
        framed = [frame_image(image, size) for image in images[start : start + batch]]
        maps = np.asarray(heatmaps(networks, np.stack([item[0] for item in framed]), multiclass))
        result += [
            heatmap_on_image(heatmap, box, shape)
            for heatmap, (_, box, shape) in zip(maps, framed, strict=True)
        ]
    return result
