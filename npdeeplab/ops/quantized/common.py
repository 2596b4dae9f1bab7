"""Checks every quantized preparer shares: a tensor's scale and zero point, per-channel arrays, the
fused activation's clamp in the quantized domain. Each refuses what LiteRT's Prepare refuses,
with a ModelError naming op, tensor and values."""

from __future__ import annotations

import math

import numpy as np

from npdeeplab.kernels.fixed_point import quantized_activation_range, round_half_away
from npdeeplab.model.ir import TensorInfo
from npdeeplab.ops.base import OpContext

UINT8 = np.dtype(np.uint8)
INT8 = np.dtype(np.int8)
INT16 = np.dtype(np.int16)
INT32 = np.dtype(np.int32)
INT64 = np.dtype(np.int64)
QUANTIZED = (UINT8, INT8)


def per_tensor(ctx: OpContext, tensor: TensorInfo, role: str) -> tuple[float, int]:
    """(scale, zero point) of a per-tensor quantized tensor; the scale as the float32 it is stored as."""
    q = tensor.quantization
    where = f"{role} ({ctx.label(tensor)})"
    if q is None:
        ctx.fail(f"{where} is {tensor.dtype.name} without quantization parameters")
    if q.scale.size != 1:
        ctx.fail(f"{where} must be quantized per tensor, it has {q.scale.size} scales")
    scale = float(q.scale[0])
    if not math.isfinite(scale) or scale <= 0:
        ctx.fail(f"{where} has scale {scale}; a scale must be positive and finite")
    return scale, int(q.zero_point[0])


def per_channel(ctx: OpContext, tensor: TensorInfo, role: str, axis: int) -> tuple[np.ndarray, np.ndarray]:
    """(scales, zero points) per channel along axis, a single per-tensor pair broadcast to them.

    The quantized dimension must be axis, there must be one scale per channel (or one for all),
    and every scale positive and finite.
    """
    q = tensor.quantization
    where = f"{role} ({ctx.label(tensor)})"
    if q is None:
        ctx.fail(f"{where} is {tensor.dtype.name} without quantization parameters")
    channels = tensor.shape[axis]
    if q.scale.size not in (1, channels):
        ctx.fail(f"{where} has {q.scale.size} scales for its {channels} channels (axis {axis})")
    if q.scale.size > 1 and q.quantized_dimension != axis:
        ctx.fail(f"{where} is quantized along dimension {q.quantized_dimension}, expected {axis}")
    scales = np.broadcast_to(q.scale.astype(np.float32), (channels,))
    zero_points = np.broadcast_to(q.zero_point.astype(np.int64), (channels,))
    bad = ~np.isfinite(scales) | (scales <= 0)
    if bad.any():
        ctx.fail(f"{where} has scale {float(scales[bad][0])}; a scale must be positive and finite")
    return scales, zero_points


ACTIVATION_LIMITS = {"RELU": (0.0,), "RELU6": (0.0, 6.0), "RELU_N1_TO_1": (-1.0, 1.0)}


def activation_bounds(ctx: OpContext, output: TensorInfo) -> tuple[int, int]:
    """The fused activation's clamp in the output's quantized domain, refusing what kernel_util.cc's
    Quantize refuses: a limit whose round(limit / scale) (float32) lies outside int32 (RELU6 on a
    scale below about 3e-9)."""
    scale, zero_point = per_tensor(ctx, output, "output")
    activation = getattr(ctx.options, "fused_activation_function", "NONE")
    if activation.startswith("UNKNOWN"):
        ctx.fail(f"unknown fused activation {activation}")
    for limit in ACTIVATION_LIMITS.get(activation, ()):
        with np.errstate(over="ignore"):
            steps = round_half_away(np.float32(limit) / np.float32(scale))
        if not np.float32(-(2**31)) <= steps <= np.float32(2**31 - 1):
            ctx.fail(
                f"the fused {activation}'s limit {limit} is {float(steps):.6g} steps of the output "
                f"({ctx.label(output)}) scale {scale}, more than int32 holds"
            )
    return quantized_activation_range(activation, scale, zero_point, output.dtype)


def same_quantization(ctx: OpContext, a: TensorInfo, b: TensorInfo, what: str) -> None:
    """LiteRT requires some ops' input and output quantization to be equal (pools, nearest resize...)."""
    if per_tensor(ctx, a, "input") != per_tensor(ctx, b, "output"):
        ctx.fail(
            f"{what}: input ({ctx.label(a)}) and output ({ctx.label(b)}) must share scale and zero point, got "
            f"{per_tensor(ctx, a, 'input')} and {per_tensor(ctx, b, 'output')}"
        )
