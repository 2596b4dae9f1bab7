"""How many threads the kernels use, for Numba and BLAS alike, for the duration of an invoke."""

from __future__ import annotations

import os
import time
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


ADAPTIVE_ENV = "NPDEEPLAB_ADAPTIVE_THREADS"


def busy_elsewhere() -> int:
    """Threads running or waiting to run on this machine outside this process, this instant.

    Linux: the run queue of /proc/loadavg less this process's own threads that were running just
    before or just after it was read (an OpenMP worker that starts or stops spinning in between
    is still ours). 0 where /proc is not there.
    """
    try:
        before = _running_threads()
        with open("/proc/loadavg") as f:
            running = int(f.read().split()[3].split("/")[0])
        mine = len(before | _running_threads())
    except (OSError, ValueError, IndexError):
        return 0
    return max(0, running - mine)


def _running_threads() -> set[str]:
    running = set()
    for task in os.listdir("/proc/self/task"):
        try:
            with open(f"/proc/self/task/{task}/stat") as f:
                stat = f.read()
        except OSError:
            continue  # a thread that ended meanwhile
        if stat[stat.rindex(")") + 2] == "R":
            running.add(task)
    return running


def adaptive_threads(requested: int) -> int:
    """The threads an invoke uses: at most `requested`, and no more than the cores nobody else is
    busy on ($NPDEEPLAB_ADAPTIVE_THREADS=0: always `requested`).

    Every parallel region ends in a barrier. With a core busy with another program, one of two
    threads is descheduled for whole time slices and the other waits for it at every barrier:
    measured on this 2-core VM, a 1.35 ms region took 8 ms with spinning workers and 2.7 ms with
    sleeping ones, the time of one thread alone. So on a busy machine the invoke runs on the
    cores that are free: one thread of two keeps a whole core and meets no barrier.
    """
    if os.environ.get(ADAPTIVE_ENV, "1") == "0" or requested <= 1:
        return requested
    return max(1, min(requested, default_threads() - _recent_busy()))


LOOK_EVERY_S = 0.02  # a look at /proc costs ~85 us: at most one per 20 ms, not one per invoke
_last_look = (float("-inf"), 0, 0)  # (time.monotonic() of the last look, what it saw, the load taken)


def _recent_busy() -> int:
    """The load other programs put on the cores: what two looks in a row, an interval apart, both
    saw. The run queue counts a task for a moment as it wakes: on this 2-core VM, right after an
    invoke, 6 looks in 100 saw one runnable task more than the machine had (a second look at once
    saw it too), and each halved an invoke's threads; invokes a few ms apart ran 45% slower."""
    global _last_look
    now = time.monotonic()
    if now - _last_look[0] >= LOOK_EVERY_S:
        seen = busy_elsewhere()
        _last_look = (now, seen, min(seen, _last_look[1]))
    return _last_look[2]


def thread_limits(backend: str, num_threads: int | None) -> AbstractContextManager[Any]:
    """Run Numba's parallel kernels on up to num_threads threads (default: all cores; fewer while
    other processes keep cores busy, see adaptive_threads) and BLAS on num_threads."""
    global _controller
    if backend == "numba":
        import numba

        threads = adaptive_threads(max(1, num_threads or default_threads()))
        numba.set_num_threads(min(threads, numba.config.NUMBA_NUM_THREADS))
    if num_threads is None:
        return nullcontext()
    if _controller is None:
        _controller = ThreadpoolController()
    return _controller.limit(limits=max(1, num_threads), user_api="blas")
