"""How many threads the kernels use, for Numba and BLAS alike, for the duration of an invoke."""

from __future__ import annotations

import os
from contextlib import AbstractContextManager, nullcontext
from typing import Any

from threadpoolctl import ThreadpoolController

_controller: ThreadpoolController | None = None


def quiet_waiting_threads() -> None:
    """Let OpenMP worker threads spin briefly between parallel regions, then sleep; OpenBLAS's sleep.

    An inference is ~70 parallel regions a few microseconds to a millisecond apart. A worker that
    sleeps as soon as a region ends (OMP_WAIT_POLICY=PASSIVE alone) costs ~55 us to wake on
    this 2-core VM: ~4 ms per inference of the seed model. GNU OpenMP's GOMP_SPINCOUNT=100000
    keeps it spinning for ~1-2 ms (measured: a region then costs ~2 us), long enough to bridge
    the gaps between ops and short enough that an idle process stops burning a core soon after
    its last invoke. PASSIVE stays for the OpenMP runtimes that have no spin count. The float
    kernels call no BLAS, so OpenBLAS's threads (which spun against Numba's for the cores) only
    wake for the few ops that still use it. This only takes effect when npdeeplab is imported
    before Numba and NumPy start their threads, and never overrides a value the user set.
    """
    os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
    os.environ.setdefault("GOMP_SPINCOUNT", "100000")
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
