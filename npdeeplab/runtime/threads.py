"""How many threads the kernels use, for Numba and BLAS alike, for the duration of an invoke."""

from __future__ import annotations

import os
from contextlib import AbstractContextManager, nullcontext
from typing import Any

from threadpoolctl import ThreadpoolController

_controller: ThreadpoolController | None = None


def quiet_waiting_threads() -> None:
    """Ask OpenMP and OpenBLAS worker threads to sleep, not spin, between parallel regions.

    On a 2-core machine Numba's OpenMP threads spinning after one kernel and OpenBLAS's threads
    spinning after a GEMM took the cores from each other: every op cost ~8 ms more. This only
    takes effect when npdeeplab is imported before NumPy and Numba start their threads, and
    never overrides a value the user set.
    """
    os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
    os.environ.setdefault("OPENBLAS_THREAD_TIMEOUT", "4")


def default_threads() -> int:
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)


def thread_limits(backend: str, num_threads: int | None) -> AbstractContextManager[Any]:
    """Run Numba's parallel kernels and BLAS on num_threads threads (default: all cores)."""
    global _controller
    if backend == "numba":
        import numba

        threads = max(1, num_threads or default_threads())
        numba.set_num_threads(min(threads, numba.config.NUMBA_NUM_THREADS))
    if num_threads is None:
        return nullcontext()
    if _controller is None:
        _controller = ThreadpoolController()
    return _controller.limit(limits=max(1, num_threads), user_api="blas")
