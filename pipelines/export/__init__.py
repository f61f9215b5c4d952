"""Export: a trained Keras model -> a TF Serving SavedModel with bytes/pixels signatures and warm-up.

Export is the last training-side step; the `serving` package only reads what it writes, through the
names of mura_core.contracts.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from mura_core.doors import open_door

if TYPE_CHECKING:
    from pipelines.export.from_run import export_run as export_run
    from pipelines.export.saved_model import build_archive as build_archive
    from pipelines.export.saved_model import export_saved_model as export_saved_model
    from pipelines.export.saved_model import read_class_map as read_class_map
    from pipelines.export.saved_model import verify_export as verify_export
    from pipelines.export.warmup import placeholder_image as placeholder_image
    from pipelines.export.warmup import read_warmup_file as read_warmup_file
    from pipelines.export.warmup import write_warmup_file as write_warmup_file

# The front door: what other rooms may use, by the module of the room that defines it (loaded on
# first use, so importing the room stays cheap).
__all__, __getattr__ = open_door(
    __name__,
    {
        "build_archive": "saved_model",
        "export_run": "from_run",
        "export_saved_model": "saved_model",
        "placeholder_image": "warmup",
        "read_class_map": "saved_model",
        "read_warmup_file": "warmup",
        "verify_export": "saved_model",
        "write_warmup_file": "warmup",
    },
)
