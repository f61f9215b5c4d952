"""Spreading per-file work over all cores, the same way everywhere (headers, image checks, synthesis)."""

from __future__ import annotations

import multiprocessing
import os
from collections.abc import Callable, Iterator, Sequence
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
    description: str | None = None,
) -> list[Result]:
    """`function` over chunks of `items` in worker processes; results in input order. With a
    `description`, a progress bar counts the items done (mura_core.progress: terminals only).

    Runs in this process when there is one worker, fewer than `serial_below` items (starting processes
    would cost more than it saves) or when this process may not have children.
    """
    from mura_core.progress import bar

    workers = worker_count(workers)
    serial = workers == 1 or len(items) < serial_below or not can_fork_workers()
    size = max(1, -(-len(items) // (workers * chunks_per_worker)))
    chunks = [list(items[start : start + size]) for start in range(0, len(items), size)]
    results: list[Result] = []
    done: Iterator[list[Result]]
    with bar(len(items), description or "", disable=description is None) as progress:
        if serial:
            done = map(function, chunks)
        else:
            # fork (Linux default) starts workers at once and does not re-import the caller's main
            # module; callers run this before TensorFlow or GX start threads, so no foreign threads
            # are copied.
            pool = ProcessPoolExecutor(max_workers=min(workers, len(chunks)))
            done = pool.map(function, chunks)
        try:
            for chunk, result in zip(chunks, done, strict=True):
                results.extend(result)
                progress.update(len(chunk))
        finally:
            if not serial:
                pool.shutdown()
    return results
