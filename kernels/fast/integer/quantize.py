"""Numba twins of kernels/integer/quantize.py (to be filled)."""

from collections.abc import Callable

KERNELS: dict[str, Callable] = {}
ACCEPTS_OUT: frozenset[str] = frozenset()


def warm_up() -> None:
    """Compile (or load) this module's kernels for the argument types the engine passes."""
