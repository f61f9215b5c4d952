"""What gRPC and REST share: resolve the servable, run the prediction, count it in the metrics."""

from __future__ import annotations

import time

import numpy as np

from serving.server.manager import ModelManager
from serving.server.metrics import Metrics
from serving.server.servable import Servable
from serving.server.status import ServingError


class ServingCore:
    """Entry points of the PredictionService independent of the wire protocol."""

    def __init__(self, manager: ModelManager, metrics: Metrics):
        self.manager = manager
        self.metrics = metrics

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
            servable = self.manager.resolve(model, version, label)
            return servable, servable.predict(signature_name, inputs, output_filter)
        except ServingError as error:
            status = error.code
            raise
        finally:
            elapsed_us = (time.perf_counter() - started) * 1e6
            self.metrics.record_request(model, "predict", entrypoint, status, elapsed_us)

    def input_specs(self, model: str, version: int | None, label: str | None, signature_name: str) -> dict:
        """The input TensorSpecs of a signature (REST needs them to read JSON values)."""
        return self.manager.resolve(model, version, label).input_specs(signature_name)

    def metadata(self, model: str, version: int | None, label: str | None) -> Servable:
        """The servable whose SignatureDefMap answers GetModelMetadata."""
        return self.manager.resolve(model, version, label)


def parse_version(text: str) -> int:
    """A version from a URL or request; INVALID_ARGUMENT when it is not a positive integer."""
    if not text.isdigit():
        raise ServingError("INVALID_ARGUMENT", f"Invalid version: {text!r} is not a positive integer")
    return int(text)
