"""Watch a served model after deploy: data drift of new releases against the champion's training data,
live study-level performance of the champion (and the challenger in shadow), and what to do about it."""

from __future__ import annotations

from typing import TYPE_CHECKING

from mura_core.doors import open_door

if TYPE_CHECKING:
    from pipelines.monitoring.check import drift_from_training as drift_from_training
    from pipelines.monitoring.check import run_monitor as run_monitor
    from pipelines.monitoring.readout import summary as summary
    from pipelines.monitoring.reference import record_reference as record_reference
    from pipelines.monitoring.tracking import latest_check as latest_check

# The front door: what other rooms may use, by the module of the room that defines it (loaded on
# first use, so importing the room stays cheap).
__all__, __getattr__ = open_door(
    __name__,
    {
        "drift_from_training": "check",
        "latest_check": "tracking",
        "record_reference": "reference",
        "run_monitor": "check",
        "summary": "readout",
    },
)
