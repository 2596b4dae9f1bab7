"""Prepare quantized AVERAGE_POOL_2D and MAX_POOL_2D (uint8, int8): pooling.cc's GenericPrepare.

The kernels work on raw values, which is right only when input and output share scale and zero
point. LiteRT states that requirement as a debug check (|s_in - s_out| <= 1e-6, equal zero
points) that release builds skip; npdeeplab refuses the models that would fail it.
"""

from __future__ import annotations

from npdeeplab.kernels.integer.pool import QuantizedPoolParams
from npdeeplab.ops.base import OpContext, PreparedOp, register
from npdeeplab.ops.conv import make_window
from npdeeplab.ops.quantized.common import QUANTIZED, activation_bounds, per_tensor

SCALE_TOLERANCE = 1.0e-6  # pooling.cc: TFLITE_DCHECK_LE(std::abs(input scale - output scale), 1.0e-6)


@register("AVERAGE_POOL_2D", "MAX_POOL_2D", quantized=True)
def prepare_quantized_pool2d(ctx: OpContext) -> PreparedOp:
    ctx.expect_inputs(1)
    x = ctx.input(0, rank=4, dtypes=QUANTIZED)
    out = ctx.output(0)
    ctx.check(out, "output", dtypes=(x.dtype,))
    (s_in, z_in), (s_out, z_out) = per_tensor(ctx, x, "input"), per_tensor(ctx, out, "output")
    if z_in != z_out or abs(s_in - s_out) > SCALE_TOLERANCE:
        ctx.fail(
            f"input ({ctx.label(x)}) and output ({ctx.label(out)}) must share scale and zero point (LiteRT pools "
            f"raw values), got ({s_in}, {z_in}) and ({s_out}, {z_out})"
        )
    n, height, width, channels = x.shape
    o = ctx.options
    window = make_window(ctx, height, width, o.filter_height, o.filter_width)
    low, high = activation_bounds(ctx, out)
    kernel = "quantized_average_pool2d" if ctx.op.kind == "AVERAGE_POOL_2D" else "quantized_max_pool2d"
    shape = (n, window.out_h, window.out_w, channels)
    return ctx.prepared(kernel, QuantizedPoolParams(window, low, high), [x], shape, x.dtype)
