"""Progress bars on stderr, for people at a terminal only.

On when stderr is a terminal, or when MURA_PROGRESS=1; off under `--json`, in Airflow task logs, in
tests and whenever MURA_PROGRESS=0, so machine-read output never carries bar redraws.
"""

from __future__ import annotations

import os
import sys

VARIABLE = "MURA_PROGRESS"


def enabled() -> bool:
    """Whether bars are drawn (see the module docstring)."""
    setting = os.environ.get(VARIABLE, "").strip().lower()
    if setting in ("0", "false", "no", "off"):
        return False
    return setting in ("1", "true", "yes", "on") or sys.stderr.isatty()


# MLflow draws its own "Downloading artifacts" bars on stderr unless told not to.
MLFLOW_BARS = "MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR"


def silence() -> None:
    """No bars from here on, in this process and its children (`--json`)."""
    os.environ[VARIABLE] = "0"


def quiet_libraries() -> None:
    """When bars are off, the libraries' own bars are off too (MLflow's artifact downloads in
    `mura monitor`, `mura card`, ...), for this process and its children."""
    if not enabled():
        os.environ[MLFLOW_BARS] = "false"


def bar(total: int | None, description: str, unit: str = "file", disable: bool = False):
    """A tqdm bar on stderr (a no-op when bars are off); use as a context manager, `.update(n)`."""
    from tqdm import tqdm

    return tqdm(
        total=total,
        desc=description,
        unit=unit,
        disable=disable or not enabled(),
        file=sys.stderr,
        dynamic_ncols=True,
    )


def keras_verbosity() -> int:
    """Keras' `verbose`: 1 draws a bar per batch; 2 prints one line per epoch (logs, files)."""
    return 1 if enabled() else 2
