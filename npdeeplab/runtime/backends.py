"""Choosing a kernel table: "numpy" (the readable reference) or "numba" (the fast twin)."""

from __future__ import annotations

import functools
import os
import sys
from collections.abc import Callable

from npdeeplab.errors import BackendError
from npdeeplab.kernels.registry import NUMPY_KERNELS
from npdeeplab.ops.custom import custom_kernels

BACKENDS = ("auto", "numpy", "numba")


def resolve_backend(name: str | None = None) -> str:
    """The backend to use: the argument, else $NPDEEPLAB_BACKEND, else "auto" (Numba when it imports)."""
    given = name or os.environ.get("NPDEEPLAB_BACKEND") or "auto"
    source = "backend" if name else "NPDEEPLAB_BACKEND"
    name = given.lower()
    if name not in BACKENDS:
        raise BackendError(f"unknown {source} {given!r}; choose one of {', '.join(BACKENDS)}")
    if name == "auto":
        return "numba" if numba_available() else "numpy"
    if name == "numba" and not numba_available():
        raise BackendError(
            f"{source} 'numba' was asked for, but Numba does not import here ({numba_problem()}); use 'numpy'"
        )
    return name


def numba_available() -> bool:
    return numba_problem() is None


@functools.cache
def numba_problem() -> str | None:
    """Why the Numba backend cannot load (e.g. "No module named 'numba'"), or None when it can.

    Any exception counts, not only ImportError: a Numba whose llvmlite does not match raises others.
    """
    try:
        from npdeeplab.kernels import fast  # noqa: F401
    except Exception as error:
        return f"{type(error).__name__}: {error}".splitlines()[0]
    return None


_announced: set[bool] = set()  # which warm-ups ran in this process


def kernel_table(backend: str, quantized: bool = True) -> dict[str, Callable]:
    """The kernels of a backend. For Numba, every kernel a model may call is compiled (or loaded from
    the cache) first; quantized=False leaves the integer kernels out of that, for float models."""
    if backend == "numba":
        from npdeeplab.kernels.fast import NUMBA_KERNELS, needs_compiling, warm_up

        global _announced
        if quantized not in _announced and needs_compiling(quantized):
            # Compile everything now, once per machine, rather than stall in the middle of a run.
            print("npdeeplab: compiling Numba kernels for this machine (once; they are cached)...", file=sys.stderr)
            warm_up(quantized)
        _announced.add(quantized)
        return {**NUMPY_KERNELS, **NUMBA_KERNELS, **custom_kernels(backend)}
    return {**NUMPY_KERNELS, **custom_kernels(backend)}


def out_kernels(backend: str) -> frozenset[str]:
    """Kernels of this backend that write into a caller's buffer (`out=`)."""
    if backend == "numba":
        from npdeeplab.kernels.fast import ACCEPTS_OUT

        return ACCEPTS_OUT
    return frozenset()
