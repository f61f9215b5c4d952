"""The data validation gate (Great Expectations): image profiling, the manifest suite, the report.

Public calls: validate(manifest, data_root, ...), validate_manifest_file(path, data_root, ...) and
validate_data_dir(data_root, ...). They are loaded on first use so that worker processes importing
pipelines.validation.image_checks do not pay for pandas and GX.
"""

from __future__ import annotations

__all__ = ["validate", "validate_data_dir", "validate_manifest_file"]


def __getattr__(name: str):
    if name in __all__:
        from pipelines.validation import runner

        return getattr(runner, name)
    raise AttributeError(f"module 'pipelines.validation' has no attribute '{name}'")
