"""TF Serving's request batching: concurrent Predicts on one servable and signature run as one batch.

`--enable_batching --batching_parameters_file F` with F in TF Serving's text format (the file compose
gives the real TF Serving): `max_batch_size`, `batch_timeout_micros`, `num_batch_threads`,
`max_enqueued_batches`, `allowed_batch_sizes`. Each request is checked on its own first, so a bad
request fails alone; a batch is padded up to the next allowed size and the outputs are split back.
"""

from __future__ import annotations

import logging
import queue
import re
import threading
import time
from concurrent.futures import Future
from dataclasses import dataclass, field
from pathlib import Path

from mura_core.contracts import SERVING_SIGNATURE
from serving.server.status import ServingError

LOGGER = logging.getLogger(__name__)


@dataclass(frozen=True)
class BatchingParameters:
    """The fields of tensorflow.serving.BatchingParameters this server honours (TF Serving's defaults)."""

    max_batch_size: int = 1000
    batch_timeout_micros: int = 0
    num_batch_threads: int = 4
    max_enqueued_batches: int = 10
    allowed_batch_sizes: tuple[int, ...] = ()


def read_batching_parameters(path: str | Path) -> BatchingParameters:
    """Parse a BatchingParameters text proto (wrapper fields `name { value: N }`, repeated sizes)."""
    path = Path(path)
    if not path.is_file():
        raise ServingError("INVALID_ARGUMENT", f"--batching_parameters_file {path} does not exist")
    text = re.sub(r"#[^\n]*", "", path.read_text())
    values = {}
    for name in ("max_batch_size", "batch_timeout_micros", "num_batch_threads", "max_enqueued_batches"):
        found = re.search(rf"\b{name}\s*\{{\s*value\s*:\s*(\d+)\s*\}}", text)
        if found:
            values[name] = int(found.group(1))
    sizes = tuple(int(size) for size in re.findall(r"\ballowed_batch_sizes\s*:\s*(\d+)", text))
    parameters = BatchingParameters(**values, allowed_batch_sizes=sizes)
    if sizes and (sizes != tuple(sorted(sizes)) or sizes[-1] != parameters.max_batch_size):
        raise ServingError(
            "INVALID_ARGUMENT",
            f"{path}: allowed_batch_sizes must increase and end with max_batch_size ({parameters.max_batch_size})",
        )
    return parameters


@dataclass
class _Task:
    tensors: dict
    size: int
    output_filter: tuple[str, ...]
    future: Future = field(default_factory=Future)


class _Queue:
    """The tasks waiting for one servable and signature, and the threads that run them in batches."""

    def __init__(self, servable, signature: str, parameters: BatchingParameters, counters: dict):
        self.servable, self.signature, self.parameters = servable, signature, parameters
        self.tasks: queue.Queue[_Task] = queue.Queue()
        self.counters = counters
        self.threads = [
            threading.Thread(target=self._work, name=f"mura-batch-{servable.name}", daemon=True)
            for _ in range(max(1, parameters.num_batch_threads))
        ]
        for thread in self.threads:
            thread.start()

    def submit(self, task: _Task) -> Future:
        limit = self.parameters.max_enqueued_batches * self.parameters.max_batch_size
        if self.tasks.qsize() >= limit:
            raise ServingError(
                "UNAVAILABLE", "The batch scheduling queue to which this task was submitted is full"
            )
        self.tasks.put(task)
        return task.future

    def close(self) -> None:
        """Let the threads finish what is queued, then stop (the servable was replaced)."""
        for _ in self.threads:
            self.tasks.put(None)  # type: ignore[arg-type]

    def _work(self) -> None:
        while True:
            first = self.tasks.get()
            if first is None:
                return
            batch, size = [first], first.size
            deadline = time.monotonic() + self.parameters.batch_timeout_micros / 1e6
            while size < self.parameters.max_batch_size:
                try:
                    task = self.tasks.get(timeout=max(0.0, deadline - time.monotonic()))
                except queue.Empty:
                    break
                if task is None:
                    self.tasks.put(task)
                    break
                if (
                    size + task.size > self.parameters.max_batch_size
                    or task.output_filter != first.output_filter
                ):
                    self.tasks.put(
                        task
                    )  # next batch; order across batches is not guaranteed, as in TF Serving
                    break
                batch.append(task)
                size += task.size
            self._run(batch, size)

    def _run(self, batch: list[_Task], size: int) -> None:
        import tensorflow as tf

        padded = next((allowed for allowed in self.parameters.allowed_batch_sizes if allowed >= size), size)
        try:
            merged = {}
            for name in batch[0].tensors:
                parts = [task.tensors[name] for task in batch]
                if padded > size:  # repeat the last row: the padding rows' outputs are dropped
                    parts.append(tf.repeat(parts[-1][-1:], padded - size, axis=0))
                merged[name] = tf.concat(parts, axis=0)
            outputs = self.servable.run(self.signature, merged, list(batch[0].output_filter) or None)
            self.counters["batches"] += 1
            self.counters["items"] += size
            offset = 0
            for task in batch:
                task.future.set_result(
                    {key: value[offset : offset + task.size] for key, value in outputs.items()}
                )
                offset += task.size
        except ServingError as error:
            for task in batch:
                task.future.set_exception(error)
        except Exception as error:  # noqa: BLE001 - every waiting request gets an answer
            LOGGER.exception("batch of %d on %s failed", size, self.servable.name)
            failure = ServingError("INTERNAL", f"batched Predict failed: {type(error).__name__}")
            for task in batch:
                task.future.set_exception(failure)


class Batcher:
    """Routes each Predict to the queue of its servable and signature (queues made on first use)."""

    def __init__(self, parameters: BatchingParameters):
        self.parameters = parameters
        self.counters = {"batches": 0, "items": 0}
        self._queues: dict[tuple[str, int, str], _Queue] = {}
        self._lock = threading.Lock()

    def predict(self, servable, signature: str, inputs: dict, output_filter: list[str] | None) -> dict:
        """Check this request alone, run it within a batch, return its own rows of the outputs."""
        tensors = servable.prepare(signature, inputs, output_filter)
        sizes = {int(tensor.shape[0]) if tensor.shape.rank else -1 for tensor in tensors.values()}
        if len(sizes) != 1 or -1 in sizes or not tensors:
            return servable.run(signature, tensors, output_filter)  # not batchable: run it as it is
        (size,) = sizes
        if size > self.parameters.max_batch_size:
            raise ServingError(
                "INVALID_ARGUMENT",
                f"Task size {size} is larger than maximum input batch size {self.parameters.max_batch_size}",
            )
        key = (servable.name, servable.version, signature or SERVING_SIGNATURE)
        with self._lock:
            current = self._queues.get(key)
            if current is None or current.servable is not servable:
                if current is not None:
                    current.close()
                self._queues[key] = _Queue(servable, signature, self.parameters, self.counters)
            batch_queue = self._queues[key]
        task = _Task(tensors, size, tuple(output_filter or ()))
        return batch_queue.submit(task).result()
