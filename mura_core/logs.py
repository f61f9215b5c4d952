"""Logging, configured once per process by its runner (the `mura` CLI, a DAG task, the server).

Library code only logs (`logging.getLogger(__name__)`); the CLI prints results. INFO from pipelines
and serving goes to stderr, so `--json` output on stdout stays one document.
"""

from __future__ import annotations

import logging
import sys

FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"
OWN_LOGGERS = ("mura_core", "pipelines", "serving")
_HANDLER_NAME = "mura"


def configure_logging(level: int | str = logging.INFO, stream=None) -> None:
    """Let the platform's own loggers through at `level`; idempotent.

    Where the host already routes logging (Airflow's task logs, pytest's capture: handlers on the root
    logger) records propagate there; otherwise they go to `stream` (default stderr).
    """
    own_handler = not logging.getLogger().handlers
    for name in OWN_LOGGERS:
        logger = logging.getLogger(name)
        logger.setLevel(level)
        if not own_handler or any(handler.get_name() == _HANDLER_NAME for handler in logger.handlers):
            continue
        handler = logging.StreamHandler(stream or sys.stderr)
        handler.set_name(_HANDLER_NAME)
        handler.setFormatter(logging.Formatter(FORMAT))
        logger.addHandler(handler)
