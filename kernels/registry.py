"""Kernel tables by name: the interpreter looks kernels up here, per backend."""

from __future__ import annotations

from collections.abc import Callable

from npdeeplab.kernels import (
    activation,
    conv,
    elementwise,
    fully_connected,
    pool,
    rectifiers,
    reduce,
    resize,
    shape,
    transpose_conv,
)
from npdeeplab.kernels.integer import INTEGER_KERNELS

NUMPY_KERNELS: dict[str, Callable] = {
    "conv2d": conv.conv2d,
    "depthwise_conv2d": conv.depthwise_conv2d,
    "fully_connected": fully_connected.fully_connected,
    "transpose_conv": transpose_conv.transpose_conv,
    "average_pool2d": pool.average_pool2d,
    "max_pool2d": pool.max_pool2d,
    "resize_bilinear": resize.resize_bilinear,
    "resize_nearest_neighbor": resize.resize_nearest_neighbor,
    "add": elementwise.add,
    "sub": elementwise.sub,
    "mul": elementwise.mul,
    "mean": reduce.mean,
    "arg_max": reduce.arg_max,
    "arg_min": reduce.arg_min,
    "reshape": shape.reshape,
    "concatenation": shape.concatenation,
    "pad": shape.pad,
    "slice": shape.slice_,
    "tile": shape.tile,
    "transpose": shape.transpose,
    "relu": activation.relu,
    "relu6": activation.relu6,
    "relu_n1_to_1": activation.relu_n1_to_1,
    "tanh": activation.tanh,
    "logistic": activation.logistic,
    "softmax": activation.softmax,
    "hard_swish": rectifiers.hard_swish,
    "leaky_relu": rectifiers.leaky_relu,
    "prelu": rectifiers.prelu,
    **INTEGER_KERNELS,
}
