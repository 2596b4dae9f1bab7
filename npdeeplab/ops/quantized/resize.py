"""Prepare quantized RESIZE_BILINEAR and RESIZE_NEAREST_NEIGHBOR (resize_bilinear.cc,
resize_nearest_neighbor.cc).

Both move or blend raw values; LiteRT's Prepare checks neither scales nor zero points, and runs an
op whose input and output quantization differ (checked: the output's raw values are the same). So
do we: the tensors must carry valid per-tensor quantization, equal or not. RESIZE_BILINEAR refuses
align_corners with half_pixel_centers; RESIZE_NEAREST_NEIGHBOR accepts them together, as LiteRT does.
"""

from __future__ import annotations

import numpy as np

from npdeeplab.kernels.integer.resize import (
    QuantizedBilinearParams,
    QuantizedNearestParams,
    exact_blend_bits,
    float_taps,
    integer_taps,
)
from npdeeplab.kernels.resize import nearest_indices
from npdeeplab.model.ir import TensorInfo
from npdeeplab.ops.base import OpContext, PreparedOp, register
from npdeeplab.ops.quantized.common import INT8, INT16, INT32, UINT8, per_tensor

MAX_SIZE = 1 << 20  # the integer kernel computes 1024 * size in int32


def _prepare(ctx: OpContext, dtypes: tuple[np.dtype, ...]) -> tuple[TensorInfo, int, int, tuple[int, ...]]:
    """The checks both resizes share: the input, its quantization and the output's, the size."""
    ctx.expect_inputs(2)
    x = ctx.input(0, rank=4, dtypes=dtypes)
    size = ctx.input(1, rank=1, dtypes=(INT32,), constant=True)
    if size.shape != (2,):
        ctx.fail(f"size ({ctx.label(size)}) must hold 2 values, got shape {list(size.shape)}")
    per_tensor(ctx, x, "input")
    out = ctx.output(0)
    ctx.check(out, "output", dtypes=(x.dtype,))
    per_tensor(ctx, out, "output")
    out_h, out_w = (int(v) for v in size.data)
    if out_h < 1 or out_w < 1:
        ctx.fail(f"output size must be positive, got {out_h}x{out_w}")
    if max(out_h, out_w, *x.shape[1:3]) > MAX_SIZE:
        ctx.fail(f"sizes above {MAX_SIZE} are not supported, got {list(x.shape[1:3])} -> {out_h}x{out_w}")
    return x, out_h, out_w, (x.shape[0], out_h, out_w, x.shape[3])


@register("RESIZE_BILINEAR", quantized=True)
def prepare_quantized_resize_bilinear(ctx: OpContext) -> PreparedOp:
    x, out_h, out_w, shape = _prepare(ctx, (UINT8, INT8, INT16))
    align, half = bool(ctx.options.align_corners), bool(ctx.options.half_pixel_centers)
    if align and half:
        ctx.fail("align_corners and half_pixel_centers cannot both be set")
    taps, kernel = (float_taps, "quantized_resize_bilinear") if x.dtype == UINT8 else (
        integer_taps, "quantized_resize_bilinear_integer")
    y0, y1, wy = taps(x.shape[1], out_h, align, half)
    x0, x1, wx = taps(x.shape[2], out_w, align, half)
    for axis, size, lower in (("height", x.shape[1], y0), ("width", x.shape[2], x0)):
        if lower.size and lower.max() >= size:
            # The integer kernel's 10-bit scale rounds up: 1 -> 600 rows reads row 1 (garbage, checked).
            ctx.fail(
                f"resizing {axis} {size} to {out_h if axis == 'height' else out_w}: LiteRT's {x.dtype.name} kernel "
                f"would read source index {int(lower.max())}, past the input"
            )
    blend_bits = exact_blend_bits(wy, wx) if x.dtype == UINT8 else None
    params = QuantizedBilinearParams(out_h, out_w, y0, y1, wy, x0, x1, wx, blend_bits)
    return ctx.prepared(kernel, params, [x], shape, x.dtype)


@register("RESIZE_NEAREST_NEIGHBOR", quantized=True)
def prepare_quantized_resize_nearest_neighbor(ctx: OpContext) -> PreparedOp:
    x, out_h, out_w, shape = _prepare(ctx, (UINT8, INT8, INT16))
    align, half = bool(ctx.options.align_corners), bool(ctx.options.half_pixel_centers)
    rows = nearest_indices(x.shape[1], out_h, align, half)
    params = QuantizedNearestParams(out_h, out_w, rows, nearest_indices(x.shape[2], out_w, align, half))
    return ctx.prepared("quantized_resize_nearest_neighbor", params, [x], shape, x.dtype)
