"""A pool of worker processes, each loading the model once and running on one thread.

Workers are spawned, not forked: a fork of a process whose Numba or BLAS threads are running can
deadlock. The thread limits are in the environment the workers start with, so NumPy, OpenBLAS and
Numba read them when they first load.
"""

from __future__ import annotations

import multiprocessing
import os
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from typing import Any

from npdeeplab.dataset.runner import Task

ONE_THREAD = {"NUMBA_NUM_THREADS": "1", "OMP_NUM_THREADS": "1", "OPENBLAS_NUM_THREADS": "1",
              "MKL_NUM_THREADS": "1"}

_task: Task | None = None


def run_in_pool(task: Task, items: Iterable[Any], workers: int) -> Iterator[Any]:
    """task(item) for each item, in order, on `workers` spawned processes."""
    context = multiprocessing.get_context("spawn")
    with one_thread_environment():  # what the spawned interpreters inherit
        pool = context.Pool(workers, initializer=_start, initargs=(task,))
    try:
        yield from pool.imap(_run, items, chunksize=1)
        pool.close()
    finally:
        pool.terminate()  # an error or an interrupt: stop the workers now
        pool.join()


@contextmanager
def one_thread_environment() -> Iterator[None]:
    saved = {name: os.environ.get(name) for name in ONE_THREAD}
    os.environ.update(ONE_THREAD)
    try:
        yield
    finally:
        for name, value in saved.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value


def _start(task: Task) -> None:
    global _task
    task.setup()
    _task = task


def _run(item: Any) -> Any:
    assert _task is not None, "a pool worker runs only after _start"
    return _task(item)
