"""The rescaling LiteRT's optimized quantized convolutions use where they part from the reference
kernels' MultiplyByQuantizedMultiplier (SaturatingRoundingDoublingHighMul, then RoundingDivideByPOT,
whose negative halves round away from zero). In int64, vectorised; M and shift broadcast per channel.
"""

from __future__ import annotations

import numpy as np

from npdeeplab.kernels.fixed_point import saturating_rounding_doubling_high_mul, wrap_int32


def multiply_by_quantized_multiplier_upward(x: np.ndarray, multiplier: np.ndarray | int,
                                            shift: np.ndarray | int) -> np.ndarray:
    """MultiplyByQuantizedMultiplier with DepthwiseConvOutputRounding::kUpward's divide
    (optimized/depthwiseconv_3x3_filter_common.h `DivideByPOT<kUpward>`: vqrshlq_s32 by -r), which
    is also what ruy's x86 8-bit kernels compute for cpu_backend_gemm's CONV_2D output stage:

        h   = SaturatingRoundingDoublingHighMul(int32(x << max(shift, 0)), M)   as the reference
        out = (h + 2**(r-1)) >> r,  r = max(-shift, 0)                          halves upward

    RoundingDivideByPOT instead rounds a negative half down (away from zero), so the two differ by
    one exactly where h / 2**r is a negative half: the rescaled value is then within 2**(r-31) of
    a half (about 0.0016 with dm05's r = 10). Measured against LiteRT 2.3's
    BUILTIN_WITHOUT_DEFAULT_DELEGATES on x86; ruy's single rounding of x * M (no high multiply)
    matches none of dm05's CONV_2D ops (10,171 elements off on op 0).
    """
    shift = np.asarray(shift, dtype=np.int64)
    left = np.maximum(shift, 0)
    right = np.maximum(-shift, 0)
    high = saturating_rounding_doubling_high_mul(wrap_int32(np.asarray(x, dtype=np.int64) << left), multiplier)
    return (high + ((np.int64(1) << right) >> 1)) >> right
