"""Rendering of synthetic MURA-like radiographs with a learnable signal.

Each body part has its own bone layout (so a CNN can learn the study type) and an abnormal image
carries either bright metal hardware or a dark fracture gap across a bone (so it can learn
abnormality). Everything is drawn on a 256 px canvas, then jittered, resized and noised.
"""

from __future__ import annotations

import io
import math

import numpy as np
from PIL import Image, ImageDraw

CANVAS = 256
BONE_GREY = 175

# Bones as (x0, y0, x1, y1, width) segments on the canvas, per part.
BONE_LAYOUTS: dict[str, list[tuple[int, int, int, int, int]]] = {
    "XR_ELBOW": [(60, 40, 128, 140, 26), (128, 140, 200, 225, 22), (128, 140, 215, 190, 16)],
    "XR_FINGER": [(128, 20, 128, 236, 14), (121, 90, 135, 90, 20), (121, 160, 135, 160, 20)],
    "XR_FOREARM": [(95, 15, 95, 240, 20), (160, 15, 160, 240, 16)],
    "XR_HAND": [
        (128, 230, 55, 60, 12),
        (128, 230, 95, 35, 12),
        (128, 230, 135, 30, 12),
        (128, 230, 172, 45, 12),
        (128, 230, 215, 110, 12),
    ],
    "XR_HUMERUS": [(128, 10, 128, 246, 40)],
    "XR_SHOULDER": [(150, 100, 150, 250, 34), (20, 60, 230, 45, 14)],
    "XR_WRIST": [(100, 150, 100, 250, 18), (156, 150, 156, 250, 18)],
}
# Round bones (centre x, centre y, radius) drawn on top of the segments.
ROUND_BONES: dict[str, list[tuple[int, int, int]]] = {
    "XR_SHOULDER": [(150, 95, 48)],
    "XR_WRIST": [(90, 110, 16), (128, 100, 16), (166, 110, 16), (110, 70, 15), (150, 70, 15)],
}


def _draw_bones(draw: ImageDraw.ImageDraw, body_part: str, grey: int) -> None:
    for x0, y0, x1, y1, width in BONE_LAYOUTS.get(body_part, BONE_LAYOUTS["XR_FOREARM"]):
        draw.line((x0, y0, x1, y1), fill=grey, width=width)
    for cx, cy, radius in ROUND_BONES.get(body_part, []):
        draw.ellipse((cx - radius, cy - radius, cx + radius, cy + radius), fill=grey)


def _draw_abnormality(
    draw: ImageDraw.ImageDraw, body_part: str, kind: str, rng: np.random.Generator
) -> list[tuple[float, float]]:
    """Metal hardware (a saturated plate with screws) or a fracture (a dark gap across a bone); the
    outline of what was drawn, in canvas coordinates."""
    segments = BONE_LAYOUTS.get(body_part, BONE_LAYOUTS["XR_FOREARM"])
    x0, y0, x1, y1, width = segments[int(rng.integers(len(segments)))]
    t = float(rng.uniform(0.3, 0.7))
    cx, cy = x0 + t * (x1 - x0), y0 + t * (y1 - y0)
    angle = math.atan2(y1 - y0, x1 - x0)
    along, across = (math.cos(angle), math.sin(angle)), (-math.sin(angle), math.cos(angle))
    if kind == "metal":
        half_len, half_w = 38, max(6, width // 2)
        corners = [
            (
                cx + sa * half_len * along[0] + sw * half_w * across[0],
                cy + sa * half_len * along[1] + sw * half_w * across[1],
            )
            for sa, sw in ((-1, -1), (1, -1), (1, 1), (-1, 1))
        ]
        draw.polygon(corners, fill=255)
        return corners
    reach, half_line = width + 14, 4.5  # the gap is a 9 px line
    draw.line(
        (cx - reach * across[0], cy - reach * across[1], cx + reach * across[0], cy + reach * across[1]),
        fill=10,
        width=9,
    )
    return [
        (
            cx + sign * reach * across[0] + side * half_line * along[0],
            cy + sign * reach * across[1] + side * half_line * along[1],
        )
        for sign in (-1, 1)
        for side in (-1, 1)
    ]


def _box_in_image(
    outline: list[tuple[float, float]], angle: float, translate: tuple[int, int], size: tuple[int, int]
) -> tuple[int, int, int, int]:
    """(x0, y0, x1, y1) in image pixels of a canvas outline after PIL's rotate(angle, translate) about
    the canvas centre and the resize to `size` (width, height)."""
    theta, centre = math.radians(angle), CANVAS / 2
    moved = [
        (
            centre + (x - centre) * math.cos(theta) + (y - centre) * math.sin(theta) + translate[0],
            centre - (x - centre) * math.sin(theta) + (y - centre) * math.cos(theta) + translate[1],
        )
        for x, y in outline
    ]
    scale_x, scale_y = size[0] / CANVAS, size[1] / CANVAS
    xs = [min(max(x * scale_x, 0.0), size[0] - 1) for x, _ in moved]
    ys = [min(max(y * scale_y, 0.0), size[1] - 1) for _, y in moved]
    return (
        int(math.floor(min(xs))),
        int(math.floor(min(ys))),
        int(math.ceil(max(xs))),
        int(math.ceil(max(ys))),
    )


def render_radiograph(
    body_part: str,
    abnormal_kind: str | None,
    size: tuple[int, int],
    rgb: bool,
    seed: int,
    contrast: float = 1.0,
    offset: float = 0.0,
    noise: float = 6.0,
) -> tuple[bytes, tuple[int, int, int, int] | None]:
    """One PNG (the part's bones, an optional abnormality 'metal'/'fracture', jitter and `noise`, then
    the exposure `pixel * contrast + offset`) and where its abnormality is: (x0, y0, x1, y1) in pixels,
    or None."""
    rng = np.random.default_rng(seed)
    canvas = Image.new("L", (CANVAS, CANVAS), color=int(rng.integers(5, 35)))
    draw = ImageDraw.Draw(canvas)
    _draw_bones(draw, body_part, int(BONE_GREY + rng.integers(-25, 25)))
    outline = _draw_abnormality(draw, body_part, abnormal_kind, rng) if abnormal_kind is not None else None
    angle = float(rng.uniform(-12, 12))
    translate = (int(rng.integers(-12, 13)), int(rng.integers(-12, 13)))
    canvas = canvas.rotate(angle, resample=Image.Resampling.BILINEAR, translate=translate)
    box = _box_in_image(outline, angle, translate, size) if outline else None
    width, height = size
    pixels = np.asarray(canvas.resize((width, height), Image.Resampling.BILINEAR), dtype=np.float32)
    pixels += rng.normal(0.0, noise, pixels.shape)
    if (contrast, offset) != (1.0, 0.0):
        pixels = pixels * contrast + offset
    image = Image.fromarray(np.clip(pixels, 0, 255).astype(np.uint8), mode="L")
    if rgb:
        image = image.convert("RGB")
    buffer = io.BytesIO()
    image.save(buffer, format="PNG")
    return buffer.getvalue(), box
