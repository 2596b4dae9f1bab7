"""Prepare FULLY_CONNECTED, float32 (fully_connected.cc's Prepare); the quantized form is in
ops/quantized/fully_connected.py and shares the shape logic below.

LiteRT reads the input, of any rank, as [batch, depth] with depth = the filter's second
dimension and batch = (number of input values) // depth: the division is not checked, so
values past batch * depth are left unread. The output is [batch, units], or with keep_num_dims
the input's shape with its last dimension (which must then equal depth) replaced by units; a
rank-0 input with keep_num_dims is refused. The bias needs `units` values in any shape. Fused
activations are NONE, RELU, RELU_N1_TO_1 and RELU6: unlike the convolutions, LiteRT refuses
TANH and SIGN_BIT here. Refused here and not by LiteRT: weights formats other than DEFAULT
(SHUFFLED4x16INT8, uint8 with an int16 output and a second output), and empty tensors (a
filter of depth 0, or fewer input values than depth; LiteRT writes zeros or nothing).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from npdeeplab.kernels.fully_connected import FullyConnectedParams
from npdeeplab.model.ir import TensorInfo
from npdeeplab.ops.base import FLOAT32, OpContext, PreparedOp, register
from npdeeplab.ops.conv import convolution_macs

ACTIVATIONS = ("NONE", "RELU", "RELU_N1_TO_1", "RELU6")  # fully_connected.cc Prepare, for non-hybrid models


@dataclass(frozen=True)
class Geometry:
    batch: int
    depth: int
    units: int
    output_shape: tuple[int, ...]


def check_options(ctx: OpContext) -> None:
    """The weights format and the fused activation, as LiteRT's Prepare checks them."""
    o = ctx.options
    if o.weights_format != "DEFAULT":
        ctx.fail(f"weights format {o.weights_format} is not supported; only DEFAULT is")
    activation = o.fused_activation_function
    if activation not in ACTIVATIONS:
        ctx.fail(f"fused activation {activation} is not allowed; LiteRT takes {', '.join(ACTIVATIONS)}")


def geometry(ctx: OpContext, x: TensorInfo, w: TensorInfo, b: TensorInfo | None) -> Geometry:
    """batch, depth, units and the output shape, as fully_connected.cc's Prepare and
    UpdateOutputSize work them out (filter [units, depth])."""
    units, depth = w.shape
    if b is not None and math.prod(b.shape) != units:
        ctx.fail(f"bias {ctx.label(b)} has shape {list(b.shape)}; it needs {units} values, one per filter row")
    if depth == 0:
        ctx.fail(f"filter {ctx.label(w)} has shape {list(w.shape)}, which reads no input values")
    batch = math.prod(x.shape) // depth
    if ctx.options.keep_num_dims:
        if not x.shape or x.shape[-1] != depth:
            ctx.fail(
                f"with keep_num_dims the input's last dimension must be the filter's depth {depth}; input "
                f"{ctx.label(x)} has shape {list(x.shape)}"
            )
        shape = (*x.shape[:-1], units)
    else:
        shape = (batch, units)
    return Geometry(batch, depth, units, shape)


@register("FULLY_CONNECTED")
def prepare_fully_connected(ctx: OpContext) -> PreparedOp:
    ctx.expect_inputs(2, 3)
    check_options(ctx)
    x = ctx.input(0)
    w = ctx.input(1, rank=2)
    b = ctx.optional_input(2, dtypes=(FLOAT32,))
    g = geometry(ctx, x, w, b)
    low, high = ctx.activation_range()
    params = FullyConnectedParams(g.batch, g.depth, g.output_shape, low, high)
    macs = convolution_macs("FULLY_CONNECTED", x.shape, w.shape, g.output_shape)
    return ctx.prepared("fully_connected", params, [x, w, b], g.output_shape, x.dtype, macs)
