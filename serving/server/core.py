"""What gRPC and REST share: resolve the servable, run the prediction, count it in the metrics."""

from __future__ import annotations

import re
import time

import numpy as np

from serving.server.manager import ModelManager
from serving.server.metrics import Metrics
from serving.server.servable import Servable
from serving.server.status import ServingError


class ServingCore:
    """Entry points of the PredictionService independent of the wire protocol."""

    def __init__(self, manager: ModelManager, metrics: Metrics, max_batch_size: int, batcher=None):
        self.manager = manager
        self.metrics = metrics
        self.max_batch_size = max_batch_size
        self.batcher = batcher  # serving.server.batching.Batcher with --enable_batching, else None

    def check_batch(self, name: str, shape) -> None:
        """INVALID_ARGUMENT when an input holds more items (first dimension) than the server accepts.

        Checked on the declared shape before a tensor is expanded: a few bytes can declare a huge batch.
        """
        if len(shape) and int(shape[0]) > self.max_batch_size:
            raise ServingError(
                "INVALID_ARGUMENT",
                f"input '{name}' holds {int(shape[0])} items, over this server's limit of {self.max_batch_size} "
                "per request (--max_request_batch_size); split the request",
            )

    def predict(
        self,
        model: str,
        version: int | None,
        label: str | None,
        signature_name: str,
        inputs: dict[str, np.ndarray],
        output_filter: list[str] | None,
        entrypoint: str,
    ) -> tuple[Servable, dict[str, np.ndarray]]:
        """Run one Predict; ServingError on failure (counted with its status in the metrics)."""
        started = time.perf_counter()
        status = "OK"
        try:
            for name, value in inputs.items():
                self.check_batch(name, np.shape(value))
            servable = self.manager.resolve(model, version, label)
            if self.batcher is not None:
                return servable, self.batcher.predict(servable, signature_name, inputs, output_filter)
            return servable, servable.predict(signature_name, inputs, output_filter)
        except ServingError as error:
            status = error.code
            raise
        finally:
            elapsed_us = (time.perf_counter() - started) * 1e6
            # Only configured models get a label of their own: a client must not grow the metrics page.
            known = model if self.manager.is_configured(model) else ""
            self.metrics.record_request(known, "predict", entrypoint, status, elapsed_us)

    def input_specs(self, model: str, version: int | None, label: str | None, signature_name: str) -> dict:
        """The input TensorSpecs of a signature (REST needs them to read JSON values)."""
        return self.manager.resolve(model, version, label).input_specs(signature_name)

    def metadata(self, model: str, version: int | None, label: str | None) -> Servable:
        """The servable whose SignatureDefMap answers GetModelMetadata."""
        return self.manager.resolve(model, version, label)


def parse_version(text: str) -> int:
    """A version from a URL or request; INVALID_ARGUMENT unless ASCII digits of an int64."""
    if not re.fullmatch(r"[0-9]{1,18}", text):
        shown = text[:40].encode("ascii", "backslashreplace").decode()
        raise ServingError("INVALID_ARGUMENT", f"Invalid version: '{shown}' is not a positive integer")
    return int(text)
