"""Grad-CAM++ overlays a person can read: the heatmap over the X-ray, a colour legend, the answer."""

from __future__ import annotations

import io

import numpy as np


def heatmap_on_image(heatmap: np.ndarray, box, image_size) -> np.ndarray:
    """The model-frame heatmap cut to where the image sits (`box`: top, left, height, width) and
    resized to the image's own `image_size` (height, width)."""
    from PIL import Image

    top, left, height, width = (int(value) for value in box)
    cut = np.asarray(heatmap, dtype=np.float32)[top : top + height, left : left + width]
    image_height, image_width = (int(value) for value in image_size)
    resized = Image.fromarray(cut, mode="F").resize((image_width, image_height), Image.Resampling.BILINEAR)
    return np.clip(np.asarray(resized), 0.0, 1.0)


def overlay_png(image_bytes: bytes, heatmap: np.ndarray, title: str) -> bytes:
    """PNG: the X-ray in grey, the heatmap (0..1, same size) on top, a legend, and `title`."""
    import matplotlib

    matplotlib.use("Agg")  # files only
    import matplotlib.pyplot as plt
    from PIL import Image

    grey = np.asarray(Image.open(io.BytesIO(image_bytes)).convert("L"))
    height, width = grey.shape
    figure, axis = plt.subplots(figsize=(6, 6 * height / max(width, 1) + 0.8), dpi=100)
    axis.imshow(grey, cmap="gray", vmin=0, vmax=255)
    shown = axis.imshow(heatmap, cmap="jet", alpha=0.4, vmin=0.0, vmax=1.0)
    axis.set_axis_off()
    axis.set_title(title, fontsize=9)
    legend = figure.colorbar(shown, ax=axis, fraction=0.046, pad=0.02)
    legend.set_label("Grad-CAM++: where the abnormality score came from (0-1)", fontsize=8)
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png", bbox_inches="tight")
    plt.close(figure)
    return buffer.getvalue()
