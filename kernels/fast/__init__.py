"""The Numba backend: a fast twin of every compute kernel, with the reference's signature.

Importing this package fails with ImportError where Numba is not installed; the interpreter then
falls back to the NumPy kernels. Data-movement kernels (reshape, pad, slice, tile, transpose,
concatenation) have no twin: they are memory copies NumPy already does in C.
"""

from __future__ import annotations

from collections.abc import Callable

import numba  # noqa: F401  (fail here, with ImportError, where Numba is missing)

from npdeeplab.kernels import activation
from npdeeplab.kernels.fast import conv, elementwise, pool, reduce, resize

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
    "mean": reduce.mean,
    "arg_max": reduce.arg_max,
    "arg_min": reduce.arg_min,
    # tanh and logistic: NumPy's ufuncs are already a single vectorised pass.
    "tanh": activation.tanh,
    "logistic": activation.logistic,
}
