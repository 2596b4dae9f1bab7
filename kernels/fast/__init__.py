"""The Numba backend: a fast twin of every compute kernel, with the reference's signature.

Importing this package fails with ImportError where Numba is not installed; the interpreter then
falls back to the NumPy kernels. Data-movement kernels (reshape, pad, slice, tile, transpose,
concatenation) stay NumPy's: they are memory copies NumPy already does in C; concatenation only
learns to write into the caller's buffer.
"""

from __future__ import annotations

from collections.abc import Callable

import numba  # noqa: F401  (fail here, with ImportError, where Numba is missing)

from npdeeplab.kernels import activation
from npdeeplab.kernels.fast import (
    conv,
    elementwise,
    fully_connected,
    integer,
    pool,
    rectifiers,
    reduce,
    resize,
    shape,
    transpose_conv,
)

NUMBA_KERNELS: dict[str, Callable] = {
    "conv2d": conv.conv2d,
    "depthwise_conv2d": conv.depthwise_conv2d,
    "average_pool2d": pool.average_pool2d,
    "max_pool2d": pool.max_pool2d,
    "resize_bilinear": resize.resize_bilinear,
    "resize_nearest_neighbor": resize.resize_nearest_neighbor,
    "add": elementwise.add,
    "sub": elementwise.sub,
    "mul": elementwise.mul,
    "relu": elementwise.relu,
    "relu6": elementwise.relu6,
    "relu_n1_to_1": elementwise.relu_n1_to_1,
    "softmax": elementwise.softmax,
    "concatenation": shape.concatenation,
    "mean": reduce.mean,
    "arg_max": reduce.arg_max,
    "arg_min": reduce.arg_min,
    # tanh and logistic: NumPy's ufuncs are already a single vectorised pass.
    "tanh": activation.tanh,
    "logistic": activation.logistic,
    **rectifiers.KERNELS,
    **fully_connected.KERNELS,
    **transpose_conv.KERNELS,
    **integer.INTEGER_KERNELS,
}


FLOAT_MODULES = (conv, elementwise, pool, reduce, resize, rectifiers, fully_connected, transpose_conv)


def jitted_functions(quantized: bool = True) -> list:
    """Every Numba dispatcher of this backend that Python calls (helpers inlined into them have
    no cache entry of their own), the register tiles' included; the integer kernels' only with
    quantized=True."""
    from npdeeplab.kernels.fast.compiling import all_units, module_dispatchers

    modules = FLOAT_MODULES + (integer.MODULES if quantized else ())
    kinds = ("gemm_", "direct_", "depthwise3x3_")
    kinds += tuple(f"q{kind}" for kind in kinds) if quantized else ()
    tiles = [d for name, unit in all_units().items() if name.startswith(kinds) for d in unit.dispatchers()]
    return list(dict.fromkeys([f for m in modules for f in module_dispatchers(m)] + tiles))


def needs_compiling() -> bool:
    """True when some kernel has no compiled copy in Numba's on-disk cache yet."""
    from npdeeplab.kernels.fast.compiling import every_unit, uncached

    return bool(uncached(every_unit()))


def warm_up() -> None:
    """Compile (or load from the cache) every kernel of this backend, for every argument type the
    engine passes, on two processes where there are two cores. A model needs only some: the
    interpreter compiles those (npdeeplab.kernels.fast.compiling.units_for)."""
    from npdeeplab.kernels.fast.compiling import compile_units, every_unit

    compile_units(every_unit())


# Kernels that write into a caller's buffer when given `out=`, and of those, the ones that write a
# slice of a larger buffer along its last axis in place (buffers.output_rows): a concatenation's
# inputs made by them cost no copy (npdeeplab.runtime.plan.in_place_concatenations).
WRITES_CHANNEL_SLICES = frozenset({"conv2d", "conv2d_quantized", "resize_bilinear", "quantized_resize_bilinear"})
ACCEPTS_OUT = frozenset(
    {"conv2d", "depthwise_conv2d", "average_pool2d", "max_pool2d", "resize_bilinear", "resize_nearest_neighbor",
     "add", "sub", "mul", "relu", "relu6", "relu_n1_to_1", "softmax", "arg_max", "arg_min", "concatenation"}
) | fully_connected.ACCEPTS_OUT | transpose_conv.ACCEPTS_OUT | rectifiers.ACCEPTS_OUT | integer.ACCEPTS_OUT
