"""Quantized kernels: conv (to be filled)."""

from collections.abc import Callable

KERNELS: dict[str, Callable] = {}
