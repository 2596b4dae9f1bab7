"""The Numba backend: a fast twin of every compute kernel, with the reference's signature.

Importing this package fails with ImportError where Numba is not installed; the interpreter then
falls back to the NumPy kernels. Data-movement kernels (reshape, pad, slice, tile, transpose,
concatenation) stay NumPy's: they are memory copies NumPy already does in C; concatenation only
learns to write into the caller's buffer.
"""

from __future__ import annotations

import os
from collections.abc import Callable

import numba  # fail here, with ImportError, where Numba is missing
import numpy as np

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


def jitted_functions() -> list:
    """Every Numba dispatcher of this backend that Python calls (helpers inlined into them have
    no cache entry of their own)."""
    modules = (conv, elementwise, pool, reduce, resize, rectifiers, fully_connected, transpose_conv, *integer.MODULES)
    return [
        f
        for m in modules
        for f in vars(m).values()
        if isinstance(f, numba.core.registry.CPUDispatcher) and f.targetoptions.get("inline", "never") == "never"
    ]


def needs_compiling() -> bool:
    """True when some kernel has no compiled copy in Numba's on-disk cache yet."""
    try:
        return not all(os.path.exists(f._cache._cache_file._index_path) for f in jitted_functions())
    except AttributeError:  # a Numba whose cache internals moved: say nothing rather than guess
        return False


def warm_up() -> None:
    """Compile (or load from the cache) every kernel for the argument types the engine passes.

    Calling each kernel once on tiny, valid inputs gives the same type signatures as real runs,
    so the first real inference never stops to compile.
    """
    from npdeeplab.kernels.activation import SoftmaxParams
    from npdeeplab.kernels.conv import ConvParams
    from npdeeplab.kernels.elementwise import BinaryParams
    from npdeeplab.kernels.pool import PoolParams
    from npdeeplab.kernels.reduce import ArgParams, ReduceParams
    from npdeeplab.kernels.resize import ResizeParams
    from npdeeplab.kernels.windows import Window

    x = np.ones((1, 3, 3, 2), dtype=np.float32)
    window = Window(3, 3, 1, 1, 1, 1, 1, 1, 3, 3)
    conv.conv2d(ConvParams(window, 0.0, 6.0), x, np.ones((2, 3, 3, 2), np.float32), np.ones(2, np.float32))
    conv.conv2d(ConvParams(Window(1, 1, 1, 1, 1, 1, 0, 0, 3, 3), 0.0, 6.0), x, np.ones((2, 1, 1, 2), np.float32), None)
    conv.depthwise_conv2d(ConvParams(window, 0.0, 6.0), x, np.ones((1, 3, 3, 2), np.float32), None)
    pool.average_pool2d(PoolParams(window, 0.0, 6.0), x)
    pool.max_pool2d(PoolParams(window, 0.0, 6.0), x)
    resize.resize_bilinear(ResizeParams(5, 5, True, False), x)
    resize.resize_nearest_neighbor(ResizeParams(5, 5, False, True), x)
    elementwise.add(BinaryParams(0.0, 6.0), x, x)
    elementwise.relu(None, x)
    elementwise.softmax(SoftmaxParams(1.0), x)
    reduce.mean(ReduceParams((1, 2), True), x)
    for dtype in (np.int32, np.int64):
        reduce.arg_max(ArgParams(3, np.dtype(dtype)), x)
    fully_connected.warm_up()
    transpose_conv.warm_up()
    rectifiers.warm_up()
    for module in integer.MODULES:
        module.warm_up()

# Kernels that write into a caller's buffer when given `out=`.
ACCEPTS_OUT = frozenset(
    {"conv2d", "depthwise_conv2d", "average_pool2d", "max_pool2d", "resize_bilinear", "resize_nearest_neighbor",
     "add", "sub", "mul", "relu", "relu6", "relu_n1_to_1", "softmax", "arg_max", "arg_min", "concatenation"}
) | fully_connected.ACCEPTS_OUT | transpose_conv.ACCEPTS_OUT | rectifiers.ACCEPTS_OUT | integer.ACCEPTS_OUT
