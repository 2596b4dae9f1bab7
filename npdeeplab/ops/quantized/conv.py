"""Prepare quantized CONV_2D and DEPTHWISE_CONV_2D: conv.cc's and depthwise_conv.cc's Prepare with
kernel_util.cc's PopulateConvolutionQuantizationParams.

Two formats run: uint8 with per-tensor filter quantization (any filter zero point) and int8 with
per-channel filter scales along the output-channel axis (0 for CONV_2D's [Cout, KH, KW, Cin], 3 for
DEPTHWISE_CONV_2D's [1, KH, KW, Cout]) and zero filter zero points. Their multipliers differ:

    uint8: QuantizeMultiplier(double(float32(s_in * s_w)) / double(s_out))   (GetQuantizedConvolutionMultipler)
    int8:  QuantizeMultiplier(double(s_in) * double(s_w[c]) / double(s_out)) per output channel

and uint8 alone checks the bias scale: |double(s_in) * double(s_w) - s_bias| / s_out <= 0.02, where
s_bias is 0 for a bias without per-tensor quantization. Where npdeeplab is stricter than LiteRT, on
purpose: a CONV_2D without bias runs with zero bias (LiteRT refuses it; so does the float path);
int8 DEPTHWISE_CONV_2D with nonzero filter zero points is refused (LiteRT silently ignores them);
zero points outside their type's range, hybrid (float input, 8-bit filter), int16 and int4, and
filters whose dtype differs from the input's (LiteRT's uint8 CONV_2D reads an int8 filter's bytes
as uint8) are refused.
"""

from __future__ import annotations

import dataclasses
import math

import numpy as np

from npdeeplab.kernels.fixed_point import INT32_MAX, float64_rescaling_is_exact, quantize_multiplier
from npdeeplab.kernels.integer.conv import (
    QuantizedConvParams,
    ShiftedFilter,
    float_rescaling,
    largest_shifted_input,
    shift_filter,
)
from npdeeplab.model.ir import TensorInfo
from npdeeplab.ops.base import OpContext, PreparedOp, register
from npdeeplab.ops.conv import convolution_macs, make_window
from npdeeplab.ops.quantized.common import INT32, QUANTIZED, UINT8, activation_bounds, per_channel, per_tensor

BIAS_SCALE_TOLERANCE = 0.02  # kernel_util.cc GetQuantizedConvolutionMultipler: scale_diff / output_scale <= 0.02
MAX_STRIDE = 2**15 - 1  # depthwise_conv.cc: stride <= INT16_MAX
PRECOMPUTED_ROW_LIMIT = 2**20  # output width x channels up to which prepare lays out the rescaling


@register("CONV_2D", quantized=True)
def prepare_quantized_conv2d(ctx: OpContext) -> PreparedOp:
    x, w, b = _inputs(ctx)
    n, height, width, cin = x.shape
    cout, kh, kw, filter_cin = w.shape
    if filter_cin == 0 or cin < filter_cin or cin % filter_cin or cout % (cin // filter_cin):
        ctx.fail(
            f"input has {cin} channels but the filter ({ctx.label(w)}) expects {filter_cin} per group "
            f"for {cout} output channels"
        )
    return _prepare(ctx, x, w, b, kh, kw, cout, "conv2d_quantized", filter_axis=0)


@register("DEPTHWISE_CONV_2D", quantized=True)
def prepare_quantized_depthwise_conv2d(ctx: OpContext) -> PreparedOp:
    x, w, b = _inputs(ctx)
    cin = x.shape[3]
    one, kh, kw, cout = w.shape
    # The multiplier comes from the shapes, not from the depth_multiplier option (as in LiteRT).
    if one != 1 or cin == 0 or cout % cin:
        ctx.fail(
            f"filter {ctx.label(w)} has shape {list(w.shape)}; expected [1, KH, KW, {cin} x multiplier] "
            f"for an input with {cin} channels"
        )
    o = ctx.options
    if max(o.stride_h, o.stride_w) > MAX_STRIDE:
        ctx.fail(f"stride ({o.stride_h}, {o.stride_w}) is over {MAX_STRIDE}, the most LiteRT accepts")
    return _prepare(ctx, x, w, b, kh, kw, cout, "depthwise_conv2d_quantized", filter_axis=3)


def _inputs(ctx: OpContext) -> tuple[TensorInfo, TensorInfo, TensorInfo | None]:
    """Input, filter and bias, with their dtypes checked: 8-bit input, filter and output of one type."""
    ctx.expect_inputs(2, 3)
    x = ctx.input(0, rank=4, dtypes=None)
    w = ctx.input(1, rank=4, dtypes=None)
    if x.dtype not in QUANTIZED:
        what = "hybrid (float input, quantized filter)" if x.dtype == np.float32 else f"{x.dtype.name} input"
        ctx.fail(f"quantized {ctx.op.kind} with {what} is not supported; input must be uint8 or int8")
    ctx.check(w, "filter", dtypes=(x.dtype,))
    ctx.check(ctx.output(0), "output", dtypes=(x.dtype,))
    b = ctx.optional_input(2, rank=1, dtypes=(INT32,))
    return x, w, b


def _prepare(ctx: OpContext, x: TensorInfo, w: TensorInfo, b: TensorInfo | None, kh: int, kw: int, cout: int,
             kernel: str, filter_axis: int) -> PreparedOp:
    y = ctx.output(0)
    if b is not None and b.shape != (cout,):
        ctx.fail(f"bias {ctx.label(b)} has shape {list(b.shape)}, expected [{cout}]")
    s_in, z_in = _zero_point_in_range(ctx, x, "input", per_tensor(ctx, x, "input"))
    s_out, z_out = _zero_point_in_range(ctx, y, "output", per_tensor(ctx, y, "output"))
    if x.dtype == UINT8:
        s_w, z_w = _zero_point_in_range(ctx, w, "filter", per_tensor(ctx, w, "filter"))
        _check_bias_scale(ctx, b, s_in, s_w, s_out)
        real = float(np.float32(s_in) * np.float32(s_w)) / s_out  # the product rounded to float32 first
        reals = [real] * cout
        filter_offset = -z_w
    else:
        q = w.quantization
        if q is not None and q.zero_point.size not in (1, q.scale.size):
            ctx.fail(f"filter ({ctx.label(w)}) has {q.zero_point.size} zero points for {q.scale.size} scales")
        scales, zero_points = per_channel(ctx, w, "filter", filter_axis)
        if np.any(zero_points != 0):
            ctx.fail(
                f"filter ({ctx.label(w)}) has zero point {int(zero_points[zero_points != 0][0])}; int8 filters "
                f"must be symmetric (zero points 0)"
            )
        reals = [s_in * float(s) / s_out for s in scales]  # double(s_in) * double(s_w[c]) / double(s_out)
        filter_offset = 0
    _check_bias_zero_point(ctx, b)
    multipliers, shifts = _quantize_multipliers(ctx, reals)
    o = ctx.options
    window = make_window(ctx, x.shape[1], x.shape[2], kh, kw, o.dilation_h_factor, o.dilation_w_factor)
    low, high = activation_bounds(ctx, y)
    params = QuantizedConvParams(window, -z_in, filter_offset, z_out, multipliers, shifts, low, high, True, False)
    depthwise = filter_axis == 3
    shifted = shift_filter(params, w.data, depthwise, x.dtype) if w.is_constant else None
    bound = _accumulator_bound(params, w, b, x.dtype, shifted, depthwise)
    params = QuantizedConvParams(
        window, -z_in, filter_offset, z_out, multipliers, shifts, low, high, wraps=bound > INT32_MAX,
        float64_exact=float64_rescaling_is_exact(bound, multipliers, shifts, z_out), filter=shifted,
    )
    if (b is None or b.is_constant) and window.out_w * cout <= PRECOMPUTED_ROW_LIMIT:
        # The float64 rescaling's constants, laid out along an output row, once (the kernel works
        # them out per call otherwise: after the memory check, which a huge row must pass first).
        bias = None if b is None else b.data
        params = dataclasses.replace(params, rescaling=float_rescaling(params, bias, window.out_w, cout))
    shape = (x.shape[0], window.out_h, window.out_w, cout)
    macs = convolution_macs(ctx.op.kind, x.shape, w.shape, shape)
    return ctx.prepared(kernel, params, [x, w, b], shape, x.dtype, macs)


def _zero_point_in_range(ctx: OpContext, t: TensorInfo, role: str, q: tuple[float, int]) -> tuple[float, int]:
    info = np.iinfo(t.dtype)
    if not info.min <= q[1] <= info.max:
        ctx.fail(f"{role} ({ctx.label(t)}) has zero point {q[1]}, outside the {t.dtype.name} range")
    return q


def _check_bias_scale(ctx: OpContext, b: TensorInfo | None, s_in: float, s_w: float, s_out: float) -> None:
    """uint8 only: the bias must be quantized (nearly) with scale s_in * s_w, as LiteRT checks."""
    if b is None:
        return
    q = b.quantization
    s_bias = float(q.scale[0]) if q is not None and q.scale.size == 1 else 0.0  # LiteRT's legacy params
    if not abs(s_in * s_w - s_bias) / s_out <= BIAS_SCALE_TOLERANCE:
        ctx.fail(
            f"bias ({ctx.label(b)}) has scale {s_bias}, but input scale x filter scale is {s_in * s_w}; LiteRT "
            f"needs |difference| / output scale ({s_out}) <= {BIAS_SCALE_TOLERANCE}"
        )


def _check_bias_zero_point(ctx: OpContext, b: TensorInfo | None) -> None:
    if b is not None and b.quantization is not None and np.any(b.quantization.zero_point != 0):
        ctx.fail(f"bias ({ctx.label(b)}) has zero point {int(b.quantization.zero_point[0])}; it must be 0")


def _quantize_multipliers(ctx: OpContext, reals: list[float]) -> tuple[np.ndarray, np.ndarray]:
    """QuantizeMultiplier of every channel's real multiplier; shifts above 31 would overflow int32."""
    pairs = []
    for c, real in enumerate(reals):
        if not math.isfinite(real) or real >= 2.0**31:
            ctx.fail(f"output channel {c} has real multiplier {real} (input x filter / output scale); it must be "
                     f"finite and below 2**31")
        pairs.append(quantize_multiplier(real))
    multipliers = np.array([m for m, _ in pairs], dtype=np.int64)
    shifts = np.array([s for _, s in pairs], dtype=np.int64)
    multipliers.flags.writeable = False
    shifts.flags.writeable = False
    return multipliers, shifts


def _accumulator_bound(params: QuantizedConvParams, w: TensorInfo, b: TensorInfo | None, dtype: np.dtype,
                       shifted: ShiftedFilter | None, depthwise: bool) -> int:
    """The largest |acc + bias| any input can give: from the weights when they are constant, else
    from the types (K * 255 * 255), plus the largest |bias| (or INT32_MAX for a variable bias)."""
    if shifted is not None:
        products = shifted.bound
    else:
        taps = w.shape[1] * w.shape[2] * (1 if depthwise else w.shape[3])
        weight_max = max(abs(int(v) + params.filter_offset) for v in (np.iinfo(w.dtype).min, np.iinfo(w.dtype).max))
        products = taps * weight_max * largest_shifted_input(params.input_offset, dtype)
    if b is None:
        return products
    bias = int(np.abs(b.data.astype(np.int64)).max(initial=0)) if b.is_constant else INT32_MAX
    return products + bias

