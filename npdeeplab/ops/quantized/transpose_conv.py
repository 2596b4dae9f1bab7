"""Prepare quantized TRANSPOSE_CONV: transpose_conv.cc's Prepare with kernel_util.cc's
PopulateConvolutionQuantizationParams, as for CONV_2D (ops/quantized/conv.py, whose checks and
multiplier helpers serve here unchanged).

Two formats run, as LiteRT's reference kernels take them: uint8 with per-tensor weight
quantization (any zero point; the bias scale checked against input x weight scale, the multiplier
from their float32 product) and int8 with per-channel weight scales along the output-channel axis
0 of the OHWI weights and zero weight zero points (the multipliers from double products). The
bias is int32. The fused activation is applied: transpose_conv.cc reads it through a
TfLiteConvParams cast of its TfLiteTransposeConvParams, whose activation field sits at the same
place. Where npdeeplab is stricter than LiteRT, on purpose: int8 weights with nonzero zero points
(LiteRT ignores them), per-channel scales along another axis of the same size, int16 activations
(16x8), hybrid (float input, int8 weights) and a non-constant output_shape are refused.
"""

from __future__ import annotations

import dataclasses

import numpy as np

from npdeeplab.kernels.fixed_point import INT32_MAX, float64_rescaling_is_exact
from npdeeplab.kernels.integer.conv import QuantizedConvParams, float_rescaling, largest_shifted_input
from npdeeplab.kernels.integer.transpose_conv import (
    QuantizedTransposeConvParams,
    TransposedFilter,
    transpose_filter,
)
from npdeeplab.kernels.transpose_conv import flat_bias
from npdeeplab.model.ir import TensorInfo
from npdeeplab.ops.base import OpContext, PreparedOp, register
from npdeeplab.ops.conv import convolution_macs
from npdeeplab.ops.quantized.common import INT16, INT32, QUANTIZED, UINT8, activation_bounds, per_channel, per_tensor
from npdeeplab.ops.quantized.conv import (
    _check_bias_scale,
    _check_bias_zero_point,
    _quantize_multipliers,
    _zero_point_in_range,
)
from npdeeplab.ops.transpose_conv import transpose_conv_inputs, transpose_conv_params


@register("TRANSPOSE_CONV", quantized=True)
def prepare_quantized_transpose_conv(ctx: OpContext) -> PreparedOp:
    shape, x, w, b = transpose_conv_inputs(ctx)
    # The output's declared dtype is checked against the one prepared (x's) by the graph, after
    # prepare; its quantization is read here as x's type (GraphBuilder's provisional output carries
    # its first input's dtype, output_shape's int32).
    y = dataclasses.replace(ctx.output(0), dtype=x.dtype)
    if x.dtype not in QUANTIZED:
        what = ("hybrid (float input, quantized weights)" if x.dtype == np.float32 else
                "16x8 (int16 input)" if x.dtype == INT16 else f"{x.dtype.name} input")
        ctx.fail(f"quantized TRANSPOSE_CONV with {what} is not supported; input must be uint8 or int8")
    ctx.check(w, "weights", dtypes=(x.dtype,))
    if b is not None:
        ctx.check(b, "bias", dtypes=(INT32,))
    o = ctx.options
    window = transpose_conv_params(ctx, x.shape, w.shape, o.padding, o.stride_h, o.stride_w, shape[1:3]).window
    cout = w.shape[0]
    s_in, z_in = _zero_point_in_range(ctx, x, "input", per_tensor(ctx, x, "input"))
    s_out, z_out = _zero_point_in_range(ctx, y, "output", per_tensor(ctx, y, "output"))
    if x.dtype == UINT8:
        s_w, z_w = _zero_point_in_range(ctx, w, "weights", per_tensor(ctx, w, "weights"))
        _check_bias_scale(ctx, b, s_in, s_w, s_out)
        reals = [float(np.float32(s_in) * np.float32(s_w)) / s_out] * cout  # the product rounded to float32
        filter_offset = -z_w
    else:
        scales = _int8_weight_scales(ctx, w)
        reals = [s_in * float(s) / s_out for s in scales]  # double(s_in) * double(s_w[c]) / double(s_out)
        filter_offset = 0
    _check_bias_zero_point(ctx, b)
    multipliers, shifts = _quantize_multipliers(ctx, reals)
    low, high = activation_bounds(ctx, y)
    conv = QuantizedConvParams(window.dual, -z_in, filter_offset, z_out, multipliers, shifts, low, high, True, False)
    params = QuantizedTransposeConvParams(window, conv)
    weights = transpose_filter(params, w.data, x.dtype) if w.is_constant else None
    bound = _accumulator_bound(params, w, b, x.dtype, weights)
    conv = QuantizedConvParams(
        window.dual, -z_in, filter_offset, z_out, multipliers, shifts, low, high, wraps=bound > INT32_MAX,
        float64_exact=float64_rescaling_is_exact(bound, multipliers, shifts, z_out),
    )
    if b is None or b.is_constant:  # the float64 rescaling's constants, laid out along an output row
        bias = None if b is None else flat_bias(b.data)
        conv = dataclasses.replace(conv, rescaling=float_rescaling(conv, bias, window.out_w, cout))
    params = QuantizedTransposeConvParams(window, conv, weights)
    macs = convolution_macs("TRANSPOSE_CONV", x.shape, w.shape, shape)
    return ctx.prepared("transpose_conv_quantized", params, [x, w, b], shape, x.dtype, macs)


def _int8_weight_scales(ctx: OpContext, w: TensorInfo) -> np.ndarray:
    """Per-channel (or one) scales along the weights' output-channel axis 0, zero points all 0."""
    q = w.quantization
    if q is not None and q.zero_point.size not in (1, q.scale.size):
        ctx.fail(f"weights ({ctx.label(w)}) have {q.zero_point.size} zero points for {q.scale.size} scales")
    scales, zero_points = per_channel(ctx, w, "weights", 0)
    if np.any(zero_points != 0):
        ctx.fail(
            f"weights ({ctx.label(w)}) have zero point {int(zero_points[zero_points != 0][0])}; int8 weights "
            f"must be symmetric (zero points 0)"
        )
    return scales


def _accumulator_bound(p: QuantizedTransposeConvParams, w: TensorInfo, b: TensorInfo | None, dtype: np.dtype,
                       weights: TransposedFilter | None) -> int:
    """The largest |acc + bias| any input can give: from the weights when they are constant, else
    from the types (the ceil(KH / stride_h) * ceil(KW / stride_w) taps that reach one output, times
    Cin, of the largest product), plus the largest |bias| (or INT32_MAX for a variable bias)."""
    if weights is not None:
        products = weights.bound
    else:
        weight_max = max(abs(int(v) + p.conv.filter_offset) for v in (np.iinfo(w.dtype).min, np.iinfo(w.dtype).max))
        win = p.window
        taps = -(-win.filter_h // win.stride_h) * -(-win.filter_w // win.stride_w) * w.shape[3]
        products = taps * weight_max * largest_shifted_input(p.conv.input_offset, dtype)
    if b is None:
        return products
    return products + (int(np.abs(b.data.astype(np.int64)).max(initial=0)) if b.is_constant else INT32_MAX)
