"""Choosing a kernel table: "numpy" (the readable reference) or "numba" (the fast twin)."""

from __future__ import annotations

import os
import sys
from collections.abc import Callable

from npdeeplab.kernels.registry import NUMPY_KERNELS

BACKENDS = ("auto", "numpy", "numba")


def resolve_backend(name: str | None = None) -> str:
    """The backend to use: the argument, else $NPDEEPLAB_BACKEND, else "auto" (Numba when it imports)."""
    name = (name or os.environ.get("NPDEEPLAB_BACKEND") or "auto").lower()
    if name not in BACKENDS:
        raise ValueError(f"unknown backend {name!r}; choose one of {', '.join(BACKENDS)}")
    if name == "auto":
        return "numba" if numba_available() else "numpy"
    if name == "numba" and not numba_available():
        raise ValueError("backend 'numba' was asked for, but numba does not import here; use 'numpy'")
    return name


def numba_available() -> bool:
    try:
        from npdeeplab.kernels import fast  # noqa: F401
    except ImportError:
        return False
    return True


_announced = False


def kernel_table(backend: str) -> dict[str, Callable]:
    if backend == "numba":
        from npdeeplab.kernels.fast import NUMBA_KERNELS, needs_compiling, warm_up

        global _announced
        if not _announced and needs_compiling():
            # Compile everything now, once per machine, rather than stall in the middle of a run.
            print("npdeeplab: compiling Numba kernels for this machine (once; they are cached)...", file=sys.stderr)
            warm_up()
        _announced = True
        return {**NUMPY_KERNELS, **NUMBA_KERNELS}
    return NUMPY_KERNELS


def out_kernels(backend: str) -> frozenset[str]:
    """Kernels of this backend that write into a caller's buffer (`out=`)."""
    if backend == "numba":
        from npdeeplab.kernels.fast import ACCEPTS_OUT

        return ACCEPTS_OUT
    return frozenset()
