"""Export: a trained Keras model -> a TF Serving SavedModel with bytes/pixels signatures and warm-up.

Export is the last training-side step; the `serving` package only reads what it writes, through the
names of mura_core.contracts.
"""

from __future__ import annotations

from pipelines.export.from_run import export_run
from pipelines.export.saved_model import build_archive, export_saved_model, read_class_map, verify_export
from pipelines.export.warmup import placeholder_image, read_warmup_file, write_warmup_file

__all__ = [
    "build_archive",
    "export_run",
    "export_saved_model",
    "placeholder_image",
    "read_class_map",
    "read_warmup_file",
    "verify_export",
    "write_warmup_file",
]
