"""The Numba backend: a fast twin of every compute kernel, with the reference's signature.

Importing this package fails with ImportError where Numba is not installed; the interpreter then
falls back to the NumPy kernels. Data-movement kernels (reshape, pad, slice, tile, transpose,
concatenation) stay NumPy's: they are memory copies NumPy already does in C; concatenation only
learns to write into the caller's buffer.
"""

from __future__ import annotations

import os
import subprocess
import sys
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
    tiles,
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
    no cache entry of their own); the integer kernels' only with quantized=True."""
    modules = FLOAT_MODULES + (integer.MODULES if quantized else ())
    return [
        f
        for m in modules
        for f in vars(m).values()
        if isinstance(f, numba.core.registry.CPUDispatcher) and f.targetoptions.get("inline", "never") == "never"
    ]


def needs_compiling(quantized: bool = True) -> bool:
    """True when some kernel has no compiled copy in Numba's on-disk cache yet."""
    try:
        functions = jitted_functions(quantized) + generated_functions()
        return not all(os.path.exists(f._cache._cache_file._index_path) for f in functions)
    except AttributeError:  # a Numba whose cache internals moved: say nothing rather than guess
        return False


def generated_functions() -> list:
    """The register-tiled kernels' dispatchers (kernels/fast/tiles.py), which Python calls."""
    from npdeeplab.kernels.fast.gemm import generated

    return [f for name, f in vars(generated()).items()
            if isinstance(f, numba.core.registry.CPUDispatcher) and name.startswith(("gemm_", "depthwise3x3_"))]


def warm_up(quantized: bool = True) -> None:
    """Compile (or load from the cache) every kernel for the argument types the engine passes; the
    integer kernels only with quantized=True (a float model never calls them, and they are most of
    a first run's compiling).

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

    helper = _compile_tiles_beside() if _tiles_need_compiling() else None
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
    if quantized:
        for module in integer.MODULES:
            module.warm_up()
    if helper is not None:
        helper.wait()  # its compiled tiles are in the cache now (or, if it failed, they compile here)
    warm_up_tiles()


def warm_up_tiles() -> None:
    """Compile (or load) the register-tiled kernels: both GEMM tiles, both depthwise lane widths."""
    from npdeeplab.kernels.conv import ConvParams
    from npdeeplab.kernels.windows import Window

    machine = tiles.machine_tiles()
    window = Window(3, 3, 1, 1, 1, 1, 1, 1, 3, 3)
    lanes = machine.vector_floats
    wide = np.ones((1, 3, 3, lanes + lanes // 2), dtype=np.float32)  # a whole vector and a half
    conv.depthwise_conv2d(ConvParams(window, 0.0, 6.0), wide, wide, None)
    x = np.ones((1, 3, 3, 2), dtype=np.float32)
    for channels in (machine.wide.nr, machine.narrow.nr):
        conv.conv2d(ConvParams(Window(1, 1, 1, 1, 1, 1, 0, 0, 3, 3), 0.0, 6.0), x,
                    np.ones((channels, 1, 1, 2), np.float32), None)


def _tiles_need_compiling() -> bool:
    try:
        return not all(os.path.exists(f._cache._cache_file._index_path) for f in generated_functions())
    except AttributeError:
        return False


def _compile_tiles_beside() -> subprocess.Popen | None:
    """Compile the register tiles in a second process while this one compiles the rest: they are
    half of a first run's compiling, and Numba compiles on one core. Both write Numba's cache."""
    from npdeeplab.runtime.threads import default_threads

    if default_threads() < 2:
        return None
    command = [sys.executable, "-c", "from npdeeplab.kernels.fast import warm_up_tiles; warm_up_tiles()"]
    try:
        return subprocess.Popen(command, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    except OSError:
        return None

# Kernels that write into a caller's buffer when given `out=`.
ACCEPTS_OUT = frozenset(
    {"conv2d", "depthwise_conv2d", "average_pool2d", "max_pool2d", "resize_bilinear", "resize_nearest_neighbor",
     "add", "sub", "mul", "relu", "relu6", "relu_n1_to_1", "softmax", "arg_max", "arg_min", "concatenation"}
) | fully_connected.ACCEPTS_OUT | transpose_conv.ACCEPTS_OUT | rectifiers.ACCEPTS_OUT | integer.ACCEPTS_OUT
