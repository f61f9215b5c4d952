"""Named distribution shifts of synthetic releases, to make drifted data for monitoring tests and demos.

A shift changes how a release is drawn, never its layout: the tree, the CSVs and the validation gate
stay as they are (a drifted release is valid data). Without a shift the generator's draws, and so its
bytes, are exactly those of an unshifted release.
"""

from __future__ import annotations

from dataclasses import dataclass

from mura_core.contracts import BODY_PARTS


@dataclass(frozen=True)
class Shift:
    """How one release departs from the default draw."""

    contrast: float = 1.0  # pixel = pixel * contrast + offset (after noise)
    offset: float = 0.0
    noise: float = 6.0  # standard deviation of the scanner noise, grey levels
    size_range: tuple[int, int] = (100, 513)  # each side drawn uniformly in [low, high)
    abnormal_rate: float | None = None  # None: the MURA-like default
    part_weights: dict[str, float] | None = None  # None: MURA train's image shares


SHIFTS: dict[str, Shift] = {
    "brightness": Shift(contrast=0.6, offset=70.0),  # a brighter, flatter exposure
    "noise": Shift(noise=22.0),  # a noisier detector
    "resolution": Shift(size_range=(48, 160)),  # a low-resolution export
    "study_mix": Shift(part_weights={"XR_HAND": 0.45, "XR_FINGER": 0.45, "XR_SHOULDER": 0.1}),
    "prevalence": Shift(abnormal_rate=0.8),  # a referral clinic: mostly abnormal studies
    # Another hospital (external validation's known answer): darker, flatter exposures and a hand clinic's mix.
    "other_site": Shift(
        contrast=0.75, offset=-10.0, part_weights={"XR_HAND": 0.4, "XR_FINGER": 0.3, "XR_WRIST": 0.3}
    ),
}


def part_weights(shift: Shift | None, default: dict[str, float]) -> list[float]:
    """Sampling weight of each body part, in BODY_PARTS order."""
    weights = shift.part_weights if shift and shift.part_weights else default
    return [float(weights.get(part, 0.0)) for part in BODY_PARTS]
