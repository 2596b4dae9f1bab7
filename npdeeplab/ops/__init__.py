"""Op preparers by kind. Importing this package registers every supported op."""

from npdeeplab.ops import (  # noqa: F401  (registration)
    conv,
    custom,
    elementwise,
    fully_connected,
    mediapipe,
    quantized,
    reduce,
    shape,
    transpose_conv,
)
from npdeeplab.ops.base import PREPARERS, QUANTIZED_PREPARERS, OpContext, PreparedOp, preparer_for

SUPPORTED_OPS = tuple(sorted(PREPARERS))
SUPPORTED_QUANTIZED_OPS = tuple(sorted(QUANTIZED_PREPARERS))

__all__ = [
    "PREPARERS", "QUANTIZED_PREPARERS", "SUPPORTED_OPS", "SUPPORTED_QUANTIZED_OPS", "OpContext", "PreparedOp",
    "preparer_for",
]
