"""Prepare the quantized (uint8, int8) form of each op: check the quantization of its tensors and
compute its fixed-point parameters once, as TFLite's Prepare/OpData do. Importing this package
registers them (ops.base.register(..., quantized=True))."""

from npdeeplab.ops.quantized import (  # noqa: F401  (registration)
    activation,
    conv,
    elementwise,
    fully_connected,
    pool,
    quantize,
    rectifiers,
    reduce,
    resize,
    shape,
    transpose_conv,  # noqa: F401  (registration)
)
