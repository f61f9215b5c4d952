"""Spreading per-file work over all cores, the same way everywhere (headers, image checks, synthesis)."""

from __future__ import annotations

import multiprocessing
import os
from collections.abc import Callable, Sequence
from concurrent.futures import ProcessPoolExecutor
from typing import TypeVar

Item = TypeVar("Item")
Result = TypeVar("Result")


def worker_count(workers: int | None = None) -> int:
    """`workers`, or every core when None/0."""
    return max(1, workers or os.cpu_count() or 1)


def can_fork_workers() -> bool:
    """False inside a daemonic process (a Celery prefork child): it may not start children of its own."""
    return not multiprocessing.current_process().daemon


def map_in_chunks(
    function: Callable[[list[Item]], list[Result]],
    items: Sequence[Item],
    workers: int | None = None,
    serial_below: int = 2,
    chunks_per_worker: int = 8,
) -> list[Result]:
    """`function` over chunks of `items` in worker processes; results in input order.

    Runs in this process when there is one worker, fewer than `serial_below` items (starting processes
    would cost more than it saves) or when this process may not have children.
    """
    workers = worker_count(workers)
    if workers == 1 or len(items) < serial_below or not can_fork_workers():
        return function(list(items))
    size = max(1, -(-len(items) // (workers * chunks_per_worker)))
    chunks = [list(items[start : start + size]) for start in range(0, len(items), size)]
    # fork (Linux default) starts workers at once and does not re-import the caller's main module; callers
    # run this before TensorFlow or GX start threads, so no foreign threads are copied.
    with ProcessPoolExecutor(max_workers=min(workers, len(chunks))) as pool:
        return [result for chunk in pool.map(function, chunks) for result in chunk]
