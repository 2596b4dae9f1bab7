"""Quantized kernels that compute what LiteRT's optimized builtin kernels compute
(OpResolverType.BUILTIN_WITHOUT_DEFAULT_DELEGATES, x86), for the "optimized" numerics personality:
one function per LiteRT function mirrored, named in its docstring. They reuse the reference kernels'
exact integer accumulation and differ in the rounding only. Which ops they take over is decided in
npdeeplab.ops.optimized.
"""

from collections.abc import Callable

from npdeeplab.kernels.optimized import conv, quantize

OPTIMIZED_KERNELS: dict[str, Callable] = {**conv.KERNELS, **quantize.KERNELS}
