"""Prometheus metrics with TF Serving's names, in the text exposition format."""

from __future__ import annotations

import bisect
import threading
from collections import defaultdict

# TF Serving's request latency buckets are in microseconds (exponential: 10us .. ~30 min).
LATENCY_BUCKETS_US = tuple(10 * 1.8**power for power in range(33))


def _escape(value: str) -> str:
    return str(value).replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")


def _labels(pairs: tuple[tuple[str, str], ...]) -> str:
    return "{" + ",".join(f'{key}="{_escape(value)}"' for key, value in pairs) + "}"


class Metrics:
    """Counters and latency histograms: request_count, request_latency, runtime_latency, load attempts."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._counters: dict[str, dict[tuple, float]] = defaultdict(lambda: defaultdict(float))
        self._histograms: dict[str, dict[tuple, list]] = defaultdict(dict)

    def count(self, name: str, **labels: str) -> None:
        """Add one to counter `name` with `labels`."""
        key = tuple(sorted(labels.items()))
        with self._lock:
            self._counters[name][key] += 1

    def observe(self, name: str, value_us: float, **labels: str) -> None:
        """Record one latency (microseconds) in histogram `name`."""
        key = tuple(sorted(labels.items()))
        with self._lock:
            entry = self._histograms[name].setdefault(key, [[0] * (len(LATENCY_BUCKETS_US) + 1), 0.0, 0])
            entry[0][bisect.bisect_left(LATENCY_BUCKETS_US, value_us)] += 1
            entry[1] += value_us
            entry[2] += 1

    def record_request(
        self, model_name: str, api: str, entrypoint: str, status: str, latency_us: float
    ) -> None:
        """Count a finished request and its latency under TF Serving's metric names."""
        self.count(":tensorflow:serving:request_count", model_name=model_name, status=status)
        self.observe(
            ":tensorflow:serving:request_latency",
            latency_us,
            model_name=model_name,
            API=api,
            entrypoint=entrypoint,
        )

    def record_load(self, model_path: str, status: str) -> None:
        """Count one SavedModel load attempt."""
        self.count(":tensorflow:cc:saved_model:load_attempt_count", model_path=model_path, status=status)

    def render(self) -> str:
        """The metrics in Prometheus text format."""
        lines = []
        with self._lock:
            for name, series in sorted(self._counters.items()):
                lines.append(f"# TYPE {name} counter")
                lines.extend(f"{name}{_labels(key)} {value:g}" for key, value in sorted(series.items()))
            for name, histograms in sorted(self._histograms.items()):
                lines.append(f"# TYPE {name} histogram")
                for key, (buckets, total, count) in sorted(histograms.items()):
                    running = 0
                    for bound, hits in zip((*LATENCY_BUCKETS_US, float("inf")), buckets, strict=True):
                        running += hits
                        le = "+Inf" if bound == float("inf") else f"{bound:g}"
                        lines.append(f"{name}_bucket{_labels((*key, ('le', le)))} {running}")
                    lines.append(f"{name}_sum{_labels(key)} {total:g}")
                    lines.append(f"{name}_count{_labels(key)} {count}")
        return "\n".join(lines) + "\n"
