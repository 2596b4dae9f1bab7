"""Prepare quantized FULLY_CONNECTED: fully_connected.cc's Prepare for 8-bit inputs.

Three formats run, input, filter and output of one type, bias int32 or absent:

    uint8, filter per tensor (any zero point)
    int8,  filter per tensor (any zero point: LiteRT's int8 kernel subtracts it)
    int8,  filter per channel along dimension 0 (one scale per unit), zero points 0

The shapes, options and activations follow the float preparer (ops/fully_connected.py). Per
tensor, the bias scale is checked as for the convolutions (GetQuantizedConvolutionMultipler:
|double(s_in) * double(s_w) - s_bias| / s_out <= 0.02); per channel it is not. The reference
kernels rescale with scale = double(s_in) * double(s_w) / double(s_out) (in double for per
tensor too, not the float32 product the uint8 convolution uses), see kernels/integer/fully_connected.py.

Where npdeeplab is stricter than LiteRT, on purpose: per-channel filters with nonzero zero
points (LiteRT ignores them), mixed types (LiteRT accepts an int8 input with a uint8 output or
filter and reads the bytes as the other type), int64 biases (LiteRT's 8-bit kernels read them
as int32), nonzero bias zero points, hybrid models (float input, 8-bit filter), int16 and
int4/int2 formats.
"""

from __future__ import annotations

import numpy as np

from npdeeplab.kernels.fixed_point import INT32_MAX
from npdeeplab.kernels.integer.conv import ShiftedFilter, largest_shifted_input
from npdeeplab.kernels.integer.fully_connected import QuantizedFullyConnectedParams, shifted_filter
from npdeeplab.model.ir import TensorInfo
from npdeeplab.ops.base import OpContext, PreparedOp, register
from npdeeplab.ops.conv import convolution_macs
from npdeeplab.ops.fully_connected import check_options, geometry
from npdeeplab.ops.quantized.common import INT32, QUANTIZED, activation_bounds, per_channel, per_tensor
from npdeeplab.ops.quantized.conv import _check_bias_scale, _check_bias_zero_point, _zero_point_in_range


@register("FULLY_CONNECTED", quantized=True)
def prepare_quantized_fully_connected(ctx: OpContext) -> PreparedOp:
    ctx.expect_inputs(2, 3)
    check_options(ctx)
    x = ctx.input(0, dtypes=None)
    w = ctx.input(1, rank=2, dtypes=None)
    if x.dtype not in QUANTIZED:
        what = "hybrid (float input, quantized filter)" if x.dtype.kind == "f" else f"{x.dtype.name} input"
        ctx.fail(f"quantized FULLY_CONNECTED with {what} is not supported; input must be uint8 or int8")
    ctx.check(w, "filter", dtypes=(x.dtype,))
    y = ctx.output(0)
    ctx.check(y, "output", dtypes=(x.dtype,))
    b = ctx.optional_input(2, dtypes=(INT32,))
    g = geometry(ctx, x, w, b)
    s_in, z_in = _zero_point_in_range(ctx, x, "input", per_tensor(ctx, x, "input"))
    s_out, z_out = _zero_point_in_range(ctx, y, "output", per_tensor(ctx, y, "output"))
    filter_offset, filter_scales = _filter_quantization(ctx, x, w, g.units)
    if filter_scales.size == 1:
        _check_bias_scale(ctx, b, s_in, float(filter_scales[0]), s_out)
    _check_bias_zero_point(ctx, b)
    _check_bias_axis(ctx, b)
    scale = np.array([s_in * float(s) / s_out for s in np.broadcast_to(filter_scales, (g.units,))], np.float64)
    scale.flags.writeable = False
    low, high = activation_bounds(ctx, y)
    params = QuantizedFullyConnectedParams(
        g.batch, g.depth, g.output_shape, -z_in, filter_offset, z_out, scale, low, high, wraps=True
    )
    shifted = shifted_filter(params, w.data, x.dtype) if w.is_constant else None
    params = QuantizedFullyConnectedParams(
        g.batch, g.depth, g.output_shape, -z_in, filter_offset, z_out, scale, low, high,
        wraps=_accumulator_bound(params, w, b, x.dtype, shifted) > INT32_MAX, filter=shifted,
    )
    macs = convolution_macs("FULLY_CONNECTED", x.shape, w.shape, g.output_shape)
    return ctx.prepared("fully_connected_quantized", params, [x, w, b], g.output_shape, x.dtype, macs)


def _filter_quantization(ctx: OpContext, x: TensorInfo, w: TensorInfo, units: int) -> tuple[int, np.ndarray]:
    """(filter offset, scales): one scale per tensor, or one per unit (int8 only, dimension 0,
    zero points 0), as fully_connected.cc's Prepare decides between them by the scale count."""
    q = w.quantization
    if q is None or q.scale.size <= 1:
        s_w, z_w = _zero_point_in_range(ctx, w, "filter", per_tensor(ctx, w, "filter"))
        return -z_w, np.array([s_w], np.float32)
    if x.dtype != np.int8:
        ctx.fail(f"filter ({ctx.label(w)}) has {q.scale.size} scales; per-channel quantization needs int8 (LiteRT)")
    scales, zero_points = per_channel(ctx, w, "filter", 0)
    if np.any(zero_points != 0):
        ctx.fail(
            f"filter ({ctx.label(w)}) has zero point {int(zero_points[zero_points != 0][0])}; per-channel int8 "
            f"filters must be symmetric (zero points 0)"
        )
    return 0, np.asarray(scales)


def _check_bias_axis(ctx: OpContext, b: TensorInfo | None) -> None:
    """A bias quantized per axis needs one scale per entry of that axis, as LiteRT's model loader
    checks for every tensor (a [1, units] bias quantized along dimension 0 has one entry there)."""
    q = None if b is None else b.quantization
    if q is None or q.scale.size <= 1:
        return
    if not 0 <= q.quantized_dimension < len(b.shape) or b.shape[q.quantized_dimension] != q.scale.size:
        ctx.fail(
            f"bias ({ctx.label(b)}) of shape {list(b.shape)} has {q.scale.size} scales along dimension "
            f"{q.quantized_dimension}; LiteRT needs 1 or one per entry of that dimension"
        )


def _accumulator_bound(p: QuantizedFullyConnectedParams, w: TensorInfo, b: TensorInfo | None, dtype: np.dtype,
                       shifted: ShiftedFilter | None) -> int:
    """The largest |acc + bias| any input can give: from the weights when they are constant, else
    from the types (depth * 255 * 255), plus the largest |bias| (INT32_MAX for a variable bias)."""
    if shifted is not None:
        products = shifted.bound
    else:
        info = np.iinfo(w.dtype)
        weight_max = max(abs(int(info.min) + p.filter_offset), abs(int(info.max) + p.filter_offset))
        products = p.depth * weight_max * largest_shifted_input(p.input_offset, dtype)
    if b is None:
        return products
    bias = int(np.abs(b.data.astype(np.int64)).max(initial=0)) if b.is_constant else INT32_MAX
    return products + bias
