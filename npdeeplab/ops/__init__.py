"""Op preparers by kind. Importing this package registers every supported op."""

from npdeeplab.ops import conv, elementwise, reduce, shape  # noqa: F401  (registration)
from npdeeplab.ops.base import PREPARERS, OpContext, PreparedOp

SUPPORTED_OPS = tuple(sorted(PREPARERS))

__all__ = ["PREPARERS", "SUPPORTED_OPS", "OpContext", "PreparedOp"]
