"""Numerics personalities: whose rounding a quantized model's kernels reproduce.

- "reference" (the default): LiteRT's reference kernels (OpResolverType.BUILTIN_REF), bit for bit.
- "xnnpack": LiteRT's default interpreter, XNNPACK on (OpResolverType.AUTO): the quantized ops
  XNNPACK takes over (npdeeplab.ops.xnnpack) run kernels.xnnpack's kernels, the ones it declines
  what "optimized" runs for them (LiteRT falls back to its optimized builtins), every other op
  its reference kernel. Float models keep reference numerics under every personality: XNNPACK's float
  kernels reorder sums, which this does not imitate.
- "optimized": LiteRT without delegates (OpResolverType.BUILTIN_WITHOUT_DEFAULT_DELEGATES): the
  quantized ops whose optimized builtin kernels round differently (npdeeplab.ops.optimized) run
  kernels.optimized's kernels, every other op its reference kernel.

A personality is an overlay: it renames prepared steps to its own kernels (NumPy, on every
backend) and adds those kernels to the backend's table.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

from npdeeplab.errors import BackendError
from npdeeplab.model.ir import TensorInfo
from npdeeplab.ops.base import PreparedOp

NUMERICS = ("reference", "xnnpack", "optimized")


def resolve_numerics(name: str | None) -> str:
    """The personality's name, checked; None means "reference"."""
    chosen = "reference" if name is None else str(name).lower()
    if chosen not in NUMERICS:
        raise BackendError(f"unknown numerics {name!r}; choose one of {', '.join(NUMERICS)}")
    return chosen


def numerics_kernels(name: str) -> dict[str, Callable]:
    """The kernels a personality adds to the backend's table."""
    if name == "xnnpack":  # and the optimized builtins, which run what XNNPACK declines
        from npdeeplab.kernels.optimized import OPTIMIZED_KERNELS
        from npdeeplab.kernels.xnnpack import XNNPACK_KERNELS

        return {**OPTIMIZED_KERNELS, **XNNPACK_KERNELS}
    if name == "optimized":
        from npdeeplab.kernels.optimized import OPTIMIZED_KERNELS

        return dict(OPTIMIZED_KERNELS)
    return {}


def apply_numerics(name: str, steps: Sequence[PreparedOp], tensors: Sequence[TensorInfo]) -> list[PreparedOp]:
    """The prepared steps with the personality's kernels swapped in where it takes the op over."""
    if name == "xnnpack":
        from npdeeplab.ops.optimized import optimized_step
        from npdeeplab.ops.xnnpack import xnnpack_step

        taken = [xnnpack_step(step, tensors) for step in steps]
        # What XNNPACK declines, LiteRT runs on its optimized builtin kernels.
        return [optimized_step(step, tensors) if new is step else new for step, new in zip(steps, taken, strict=True)]
    if name == "optimized":
        from npdeeplab.ops.optimized import optimized_step

        return [optimized_step(step, tensors) for step in steps]
    return list(steps)
