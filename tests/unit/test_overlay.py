"""A served heatmap is mapped back onto the image's own pixels (the box where the image sits)."""

from __future__ import annotations

import numpy as np

from serving.overlay import heatmap_on_image


def test_the_box_is_cut_out_and_stretched_to_the_image_size():
    frame = np.zeros((32, 32), dtype=np.float32)
    frame[8:24, :] = 0.25  # a 64x128 (h x w) image fitted into 32x32 sits in rows 8..23
    frame[8:16, :16] = 1.0  # hot in its top-left quarter
    mapped = heatmap_on_image(frame, box=(8, 0, 16, 32), image_size=(64, 128))
    assert mapped.shape == (64, 128) and 0.0 <= mapped.min() and mapped.max() <= 1.0
    assert mapped[:24, :56].mean() > 0.9 and mapped[40:, 72:].mean() < 0.3
    assert abs(mapped[40:, 72:].mean() - 0.25) < 0.01  # padding (zeros) never leaks into the image
