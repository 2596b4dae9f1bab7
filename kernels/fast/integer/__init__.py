"""Numba twins of the quantized kernels (kernels/integer), same signatures, same integers. Each
module's KERNELS maps kernel names to functions; ACCEPTS_OUT names those that write into a
caller's buffer (`out=`)."""

from collections.abc import Callable

from npdeeplab.kernels.fast.integer import (
    conv,
    elementwise,
    fully_connected,
    pool,
    quantize,
    rectifiers,
    reduce,
    resize,
    transpose_conv,
)

MODULES = (conv, elementwise, pool, quantize, reduce, resize, fully_connected, rectifiers, transpose_conv)
INTEGER_KERNELS: dict[str, Callable] = {name: f for m in MODULES for name, f in m.KERNELS.items()}
ACCEPTS_OUT: frozenset[str] = frozenset(name for m in MODULES for name in m.ACCEPTS_OUT)
