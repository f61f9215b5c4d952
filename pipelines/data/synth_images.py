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


def _draw_abnormality(draw: ImageDraw.ImageDraw, body_part: str, kind: str, rng: np.random.Generator) -> None:
    """Metal hardware (a saturated plate with screws) or a fracture (a dark gap across a bone)."""
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
    else:
        reach = width + 14
        draw.line(
            (cx - reach * across[0], cy - reach * across[1], cx + reach * across[0], cy + reach * across[1]),
            fill=10,
            width=9,
        )


def render_radiograph(
    body_part: str, abnormal_kind: str | None, size: tuple[int, int], rgb: bool, seed: int
) -> bytes:
    """One PNG: the part's bones, an optional abnormality ('metal'/'fracture'), jitter and noise."""
    rng = np.random.default_rng(seed)
    canvas = Image.new("L", (CANVAS, CANVAS), color=int(rng.integers(5, 35)))
    draw = ImageDraw.Draw(canvas)
    _draw_bones(draw, body_part, int(BONE_GREY + rng.integers(-25, 25)))
    if abnormal_kind is not None:
        _draw_abnormality(draw, body_part, abnormal_kind, rng)
    canvas = canvas.rotate(
        float(rng.uniform(-12, 12)),
        resample=Image.BILINEAR,
        translate=(int(rng.integers(-12, 13)), int(rng.integers(-12, 13))),
    )
    width, height = size
    pixels = np.asarray(canvas.resize((width, height), Image.BILINEAR), dtype=np.float32)
    pixels += rng.normal(0.0, 6.0, pixels.shape)
    image = Image.fromarray(np.clip(pixels, 0, 255).astype(np.uint8), mode="L")
    if rgb:
        image = image.convert("RGB")
    buffer = io.BytesIO()
    image.save(buffer, format="PNG")
    return buffer.getvalue()
