"""Small helpers: random draws from a numpy Generator, and a message's shape for grouping."""

from __future__ import annotations

import re
from typing import Any

import numpy as np


def pick(rng: np.random.Generator, choices: Any) -> Any:
    choices = list(choices)
    return choices[int(rng.integers(len(choices)))]


def chance(rng: np.random.Generator, probability: float) -> bool:
    return bool(rng.random() < probability)


def weighted(rng: np.random.Generator, weights: dict[Any, float]) -> Any:
    keys = list(weights)
    p = np.array([weights[k] for k in keys], dtype=np.float64)
    return keys[int(rng.choice(len(keys), p=p / p.sum()))]


def random_shape(rng: np.random.Generator, rank: int, low: int = 1, high: int = 4) -> tuple[int, ...]:
    return tuple(int(v) for v in rng.integers(low, high + 1, rank))


def random_array(rng: np.random.Generator, shape: tuple[int, ...], dtype: Any) -> np.ndarray:
    """Floats in [-1, 1], integers over their type's range, bools 0/1 (as npdeeplab's own inputs)."""
    dtype = np.dtype(dtype)
    if dtype.kind == "f":
        return rng.uniform(-1, 1, shape).astype(dtype)
    if dtype.kind == "c":
        return (rng.uniform(-1, 1, shape) + 1j * rng.uniform(-1, 1, shape)).astype(dtype)
    if dtype.kind in "iu":
        info = np.iinfo(dtype)
        return rng.integers(info.min, info.max, shape, dtype=dtype, endpoint=True)
    return rng.integers(0, 2, shape).astype(dtype)


def normalise_message(message: str, limit: int = 110) -> str:
    """A message's shape: numbers, quoted names and lists replaced, so that similar errors group."""
    text = message.split("\n", 1)[0]
    text = re.sub(r"'[^']*'|\"[^\"]*\"", "'…'", text)
    text = re.sub(r"\[[^\[\]]*\]", "[…]", text)
    text = re.sub(r"(?<!\w)-?\d+(\.\d+)?(e[-+]?\d+)?(?!\w)", "N", text)
    return text[:limit]


# --- op parameters both seed tables draw (seeds.py: float, quantized_seeds.py: quantized) -----------

ACTIVATIONS = ("NONE", "NONE", "RELU", "RELU6", "RELU_N1_TO_1")


def window_options(rng: np.random.Generator) -> dict[str, Any]:
    return {
        "padding": pick(rng, ["SAME", "VALID"]),
        "stride_h": int(rng.integers(1, 4)),
        "stride_w": int(rng.integers(1, 4)),
        "fused_activation_function": pick(rng, ACTIVATIONS),
    }


def conv_geometry(rng: np.random.Generator, kind: str) -> tuple[tuple[int, ...], tuple[int, ...], dict[str, Any]]:
    """(input shape, filter shape, options) of a CONV_2D (1 or 2 groups) or DEPTHWISE_CONV_2D
    (multiplier 1-3): a 1-8 x 1-8 input, a 1-3 x 1-3 kernel, strides 1-3, dilations 1-2."""
    n, h, w = int(rng.integers(1, 3)), int(rng.integers(1, 9)), int(rng.integers(1, 9))
    kh, kw = int(rng.integers(1, 4)), int(rng.integers(1, 4))
    options = window_options(rng)
    options["dilation_h_factor"], options["dilation_w_factor"] = int(rng.integers(1, 3)), int(rng.integers(1, 3))
    if kind == "CONV_2D":
        groups = pick(rng, [1, 1, 1, 2])
        cin, cout = groups * int(rng.integers(1, 4)), groups * int(rng.integers(1, 4))
        weights = (cout, kh, kw, cin // groups)
    else:
        cin, multiplier = int(rng.integers(1, 5)), int(rng.integers(1, 4))
        weights = (1, kh, kw, cin * multiplier)
        options["depth_multiplier"] = multiplier
    return (n, h, w, cin), weights, options


def transpose_conv_geometry(
    rng: np.random.Generator,
) -> tuple[tuple[int, ...], tuple[int, ...], tuple[int, ...], dict[str, Any]]:
    """(input shape, weights shape [Cout, KH, KW, Cin], output shape, options) of a TRANSPOSE_CONV:
    a 1-6 x 1-6 input, a 1-4 x 1-4 kernel, strides 1-3, SAME or VALID, 1-4 channels in and out,
    and an output size LiteRT accepts (one a convolution from it maps back to the input)."""
    n, cin, cout = int(rng.integers(1, 3)), int(rng.integers(1, 5)), int(rng.integers(1, 5))
    options = window_options(rng)
    sizes, kernels, outputs = [int(rng.integers(1, 7)) for _ in "hw"], [int(rng.integers(1, 5)) for _ in "hw"], []
    for size, kernel, stride in zip(sizes, kernels, (options["stride_h"], options["stride_w"]), strict=True):
        low = (size - 1) * stride + (1 if options["padding"] == "SAME" else kernel)
        outputs.append(int(rng.integers(low, low + stride)))
    return (n, *sizes, cin), (cout, *kernels, cin), (n, *outputs, cout), options


def filter_axis(kind: str) -> int:
    """The filter's output-channel axis: 0 in CONV_2D's [Cout, KH, KW, Cin], 3 in DEPTHWISE_CONV_2D's
    [1, KH, KW, Cout]."""
    return 0 if kind == "CONV_2D" else 3


def broadcast_shapes(rng: np.random.Generator) -> tuple[tuple[int, ...], tuple[int, ...]]:
    """Two shapes of rank 0-4 that broadcast: some of the first's dimensions set to 1 in the second,
    which may also drop the leading one; sometimes swapped."""
    a_shape = random_shape(rng, int(rng.integers(0, 5)))
    b_shape = tuple([1 if chance(rng, 0.3) else d for d in a_shape][int(rng.integers(0, 2)) :])
    if chance(rng, 0.2):
        a_shape, b_shape = b_shape, a_shape
    return a_shape, b_shape


def reduction_axes(rng: np.random.Generator, rank: int) -> list[int]:
    """1 to `rank` distinct axes in random order, some of them negative."""
    return [int(a) - (rank if chance(rng, 0.3) else 0) for a in rng.permutation(rank)[: int(rng.integers(1, rank + 1))]]


def fully_connected_geometry(rng: np.random.Generator) -> tuple[tuple[int, ...], int, int, dict[str, Any]]:
    """(input shape, depth, units, options) of a FULLY_CONNECTED: an input of rank 1-4 read as rows
    of depth values (its last dimension, or with keep_num_dims off sometimes a product of trailing
    dimensions), 1-8 units, a fused activation LiteRT takes for this op (not TANH or SIGN_BIT)."""
    shape = random_shape(rng, int(rng.integers(1, 5)))
    keep = chance(rng, 0.4)
    depth = shape[-1] if keep or chance(rng, 0.6) else int(np.prod(shape[int(rng.integers(len(shape))):]))
    options = {"keep_num_dims": keep, "fused_activation_function": pick(rng, ACTIVATIONS)}
    return shape, depth, int(rng.integers(1, 9)), options
