"""Choosing a kernel table: "numpy" (the readable reference) or "numba" (the fast twin)."""

from __future__ import annotations

import functools
import os
import sys
from collections.abc import Callable, Mapping, Sequence

from npdeeplab.errors import BackendError
from npdeeplab.kernels.registry import NUMPY_KERNELS
from npdeeplab.model.ir import TensorInfo
from npdeeplab.ops import PreparedOp
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


def kernel_table(backend: str) -> dict[str, Callable]:
    """The kernels of a backend, by name. Numba compiles a kernel at its first call;
    `compile_ahead` does it before a model's first run instead."""
    if backend == "numba":
        from npdeeplab.kernels.fast import NUMBA_KERNELS

        return {**NUMPY_KERNELS, **NUMBA_KERNELS, **custom_kernels(backend)}
    return {**NUMPY_KERNELS, **custom_kernels(backend)}


def compile_ahead(backend: str, kernels: Mapping[str, Callable], steps: Sequence[PreparedOp],
                  tensors: Sequence[TensorInfo]) -> None:
    """With Numba, compile the kernels these prepared ops call that no cache holds yet, before the
    first run rather than in the middle of it; only those (a float model never compiles the integer
    kernels)."""
    if backend != "numba":
        return
    from npdeeplab.kernels.fast.compiling import compile_units, uncached

    todo = uncached(compile_units_needed(kernels, steps, tensors))
    if todo:
        print("npdeeplab: compiling Numba kernels for this machine (once; they are cached)...", file=sys.stderr)
        compile_units(todo)


def compile_units_needed(kernels: Mapping[str, Callable], steps: Sequence[PreparedOp],
                         tensors: Sequence[TensorInfo]) -> set[str]:
    """The Numba compile units (kernels/fast/compiling.py) these prepared ops call."""
    from npdeeplab.kernels.fast import NUMBA_KERNELS
    from npdeeplab.kernels.fast.compiling import units_for

    needed: set[str] = set()
    for step in steps:
        if step.kernel in NUMBA_KERNELS and kernels.get(step.kernel) is NUMBA_KERNELS[step.kernel]:
            inputs = [None if i == -1 else tensors[i] for i in step.inputs]
            needed.update(units_for(step.kernel, step.params, [t and t.shape for t in inputs],
                                    [t and t.dtype for t in inputs]))
    return needed


def slice_kernels(backend: str, kernels: Mapping[str, Callable]) -> frozenset[str]:
    """Kernels in this table that write their output into a slice of a larger buffer in place:
    the Numba backend's own (not another numerics' replacement of one of them)."""
    if backend != "numba":
        return frozenset()
    from npdeeplab.kernels.fast import NUMBA_KERNELS, WRITES_CHANNEL_SLICES

    return frozenset(name for name in WRITES_CHANNEL_SLICES if kernels.get(name) is NUMBA_KERNELS.get(name))


def out_kernels(backend: str) -> frozenset[str]:
    """Kernels of this backend that write into a caller's buffer (`out=`)."""
    if backend == "numba":
        from npdeeplab.kernels.fast import ACCEPTS_OUT

        return ACCEPTS_OUT
    return frozenset()
