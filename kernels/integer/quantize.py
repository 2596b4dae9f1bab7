"""Quantized kernels: quantize (to be filled)."""

from collections.abc import Callable

KERNELS: dict[str, Callable] = {}
