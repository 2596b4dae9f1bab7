"""Quantized (uint8, int8) kernels in NumPy: the specification of what LiteRT's reference kernels
compute (tensorflow/lite/kernels/internal/reference/integer_ops/ and the uint8 paths of
reference/*.h). Integer code only, separate from the float kernels; every rescaling goes through
kernels.fixed_point. Each module's KERNELS maps kernel names to functions."""

from collections.abc import Callable

from npdeeplab.kernels.integer import (
    activation,
    conv,
    elementwise,
    fully_connected,
    pool,
    quantize,
    rectifiers,
    reduce,
    resize,
    shape,
    transpose_conv,
)

INTEGER_KERNELS: dict[str, Callable] = {
    **activation.KERNELS, **conv.KERNELS, **elementwise.KERNELS, **pool.KERNELS, **quantize.KERNELS,
    **reduce.KERNELS, **resize.KERNELS, **shape.KERNELS,
    **rectifiers.KERNELS,
    **fully_connected.KERNELS,
    **transpose_conv.KERNELS,
}
