"""Run independent tasks in worker processes and stream their results: :func:`run_unordered`.

The resumable runners of the package (generation's local backend, the bench's evaluation) share
it: each skips what its log already holds, runs the rest here, and records every result as it
arrives, so a killed run loses only the tasks in flight. One worker runs the tasks in this
process (no pickling, easy to debug); more run them in a ``spawn`` process pool (a fresh
interpreter per worker: no forked torch threads), at most ``2 * workers`` submitted at a time.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import FIRST_COMPLETED, Executor, ProcessPoolExecutor, wait
from multiprocessing import get_context
from typing import Any

__all__ = ["run_unordered", "spawn_pool"]


def spawn_pool(
    workers: int, initializer: Callable[..., None] | None = None, initargs: tuple = ()
) -> Executor:
    """A process pool of ``workers`` spawned interpreters."""
    return ProcessPoolExecutor(
        workers, mp_context=get_context("spawn"), initializer=initializer, initargs=initargs
    )


def run_unordered(
    fn: Callable[..., Any], tasks: Sequence[tuple[Any, ...]], workers: int, pool: Executor | None = None
) -> Iterator[Any]:
    """``fn(*task)`` for every task, yielded in the order they finish.

    ``workers == 1`` runs them in this process; otherwise in ``pool`` (kept open for the caller)
    or, when none is given, a spawn pool of ``min(workers, len(tasks))`` made and shut down here.
    """
    if isinstance(workers, bool) or not isinstance(workers, int) or workers < 1:
        raise ValueError(f"workers must be a positive integer, got {workers!r}")
    if workers == 1 or (pool is None and len(tasks) <= 1):
        for task in tasks:
            yield fn(*task)
        return
    own = pool is None
    executor = spawn_pool(min(workers, len(tasks))) if pool is None else pool
    queue, pending = list(tasks), set()
    try:
        while queue or pending:
            while queue and len(pending) < 2 * workers:
                pending.add(executor.submit(fn, *queue.pop(0)))
            done, pending = wait(pending, return_when=FIRST_COMPLETED)
            for future in done:
                yield future.result()
    finally:
        if own:
            executor.shutdown(wait=not pending, cancel_futures=True)
