"""XNNPACK's "fp32" requantization and quantization of clamp limits (src/xnnpack/requantization.h).

XNNPACK rescales a quantized convolution's int32 accumulator in float32, not in fixed point:

    y   = float32(acc) * scale                        scale = float32(s_in * s_w) / s_out, in float32
    y   = min(max(y, out_min - zp), out_max - zp)     the clamp, in float32, before the rounding
    out = lrintf(y) + zp                              round half to even (the current rounding mode)

The x86 microkernels (`*-minmax-fp32-sse*/avx*`) round with cvtps2dq, the scalar ones with
lrintf or the "magic bias" 12582912.0f (1.5 * 2**23) trick; all round half to even, so they agree
with the scalar reference `xnn_qu8_requantize_fp32` / `xnn_qs8_requantize_fp32` bit for bit.
LiteRT's reference kernels instead use MultiplyByQuantizedMultiplier (double rounding, halves away
from zero) with a multiplier from a double quotient, hence XNNPACK's one-LSB differences.
"""

from __future__ import annotations

import numpy as np

F32 = np.float32


def requantization_scale(input_scale: float, filter_scales: np.ndarray, output_scale: float) -> np.ndarray:
    """init_requantization_scale_qu8 / _qx8_qc8w (src/operators/convolution-nhwc.c): per output
    channel input_scale * kernel_scale / output_scale, each operation rounded to float32 (C float
    arithmetic, FLT_EVAL_METHOD 0). XNNPACK refuses a scale of 256 or more."""
    with np.errstate(all="ignore"):
        return (F32(input_scale) * np.asarray(filter_scales, dtype=F32)) / F32(output_scale)


def quantize_limit(value: float, scale: float, zero_point: int, dtype: np.dtype) -> int:
    """xnn_qu8_quantize / xnn_qs8_quantize: lrintf(clamp(value / scale + zero_point)) in float32,
    the quantized form of a fused activation's limit (0, 6, +-1, +-inf)."""
    info = np.iinfo(dtype)
    with np.errstate(all="ignore"):
        level = F32(value) / F32(scale) + F32(zero_point)
    level = min(max(level, F32(info.min)), F32(info.max))
    return int(np.rint(F32(level)))


def requantize_fp32(acc: np.ndarray, scale: np.ndarray | np.float32, zero_point: int, out_min: int, out_max: int,
                    out: np.ndarray) -> np.ndarray:
    """xnn_qu8_requantize_fp32 / xnn_qs8_requantize_fp32 over an array: acc int64 (already int32
    values), scale float32 broadcasting along the last axis; writes out (uint8 or int8)."""
    y = acc.astype(F32)  # cvtdq2ps: one rounding to nearest even past 2**24
    y *= scale
    np.maximum(y, F32(out_min - zero_point), out=y)
    np.minimum(y, F32(out_max - zero_point), out=y)
    np.rint(y, out=y)  # cvtps2dq / lrintf: halves to even
    whole = y.astype(np.int32)
    whole += zero_point
    out[...] = whole
    return out
