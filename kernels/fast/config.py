"""The one place Numba's compile options are set.

cache=True writes compiled kernels next to this file, or, where that directory is read-only,
into Numba's per-user cache; NUMBA_CACHE_DIR overrides both. Caching parallel kernels was
checked on Numba 0.68: a cache written with 2 threads loads and runs with 1 and back. Both
are tests in tests/test_backends.py.

fastmath stays off for the kernels that mirror TFLite's reference order: reassociation would change
float32 results. The GEMM and depthwise microkernels allow one flag, `contract`: a multiply and
the add that follows it may fuse into one FMA (one rounding instead of two). It never reorders a
sum, so results stay within float rounding of the reference.

LLVM's SLP vectoriser (off in Numba by default) is what turns a microkernel's named scalar
accumulators into vector registers (kernels/fast/tiles.py); it only vectorises independent
scalar operations, never a reduction's order, so it changes no result. It is switched on here,
before anything is compiled, unless the user set NUMBA_SLP_VECTORIZE.
"""

from __future__ import annotations

import functools
import os

import numba
from numba import njit

FASTMATH = False
CONTRACT = {"contract"}

if "NUMBA_SLP_VECTORIZE" not in os.environ:
    numba.config.SLP_VECTORIZE = True


def _prefer_broadcasts() -> None:
    """On x86-64, tell LLVM to avoid gathers (its `prefer-no-gather` tuning).

    A microkernel's MR loads of A (one per row, a row stride apart) otherwise become one vector
    gather followed by MR shuffles to broadcast each lane; with the tuning they are MR
    `vbroadcastss` from memory, and the K loop is broadcasts, two vector loads and FMAs only. The
    feature string is the host's own plus this tuning, so nothing else about code generation changes.
    """
    import platform

    if numba.config.CPU_FEATURES is not None or platform.machine().lower() not in ("x86_64", "amd64"):
        return  # the user chose the features (NUMBA_CPU_FEATURES), or not an x86 machine
    from llvmlite import binding

    numba.config.CPU_FEATURES = binding.get_host_cpu_features().flatten() + ",+prefer-no-gather"


_prefer_broadcasts()

serial = functools.partial(njit, cache=True, fastmath=FASTMATH, nogil=True)
parallel = functools.partial(njit, cache=True, fastmath=FASTMATH, nogil=True, parallel=True)
contract_serial = functools.partial(njit, cache=True, fastmath=CONTRACT, nogil=True)
contract_parallel = functools.partial(njit, cache=True, fastmath=CONTRACT, nogil=True, parallel=True)
# Inlined into its caller by Numba: a GEMM tile called per 4 or 8 rows cost more in the call than in
# its K loop when K is 8 to 16 (16641 x 8 x 48: 0.24 ms called, 0.07 ms inlined).
contract_inline = functools.partial(njit, cache=True, fastmath=CONTRACT, nogil=True, inline="always")
