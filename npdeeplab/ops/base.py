"""The prepare step: every op checks its inputs and works out its output once, at load time.

A preparer receives an OpContext (the op plus the tensors as they are now, after any input
resize) and returns a PreparedOp: which kernel to call, with which params, on which tensors, and
the shapes and dtypes it will produce. Eval does no checking and no shape arithmetic.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, NoReturn

import numpy as np

from npdeeplab.errors import ModelError
from npdeeplab.kernels.activation import FUSED_RANGES
from npdeeplab.model.ir import OpNode, TensorInfo

FLOAT32 = np.dtype(np.float32)
INDEX_DTYPES = (np.dtype(np.int32), np.dtype(np.int64))


@dataclass(frozen=True)
class PreparedOp:
    op: OpNode
    kernel: str  # a name in the backend's kernel table
    params: Any
    inputs: tuple[int, ...]  # tensor indices handed to the kernel, in order (-1: None)
    output_shapes: tuple[tuple[int, ...], ...]
    output_dtypes: tuple[np.dtype, ...]
    macs: int = 0  # multiply-accumulates per invoke, for `inspect`


Preparer = Callable[["OpContext"], PreparedOp]
PREPARERS: dict[str, Preparer] = {}  # float32 (and index or shape) ops
QUANTIZED_PREPARERS: dict[str, Preparer] = {}  # ops on quantized uint8/int8/int16 tensors
CUSTOM_PREPARERS: dict[str, Preparer] = {}  # "CUSTOM:<code>" kinds, filled by ops.custom.register_custom_op
QUANTIZED_DTYPES = (np.dtype(np.uint8), np.dtype(np.int8), np.dtype(np.int16))
# Ops whose float preparer also serves quantized tensors when no quantized preparer is registered:
# they move or compare raw values, which is exact whatever the scale (the quantized preparers of
# CONCATENATION, PAD and the reshapes check, or requantize, where the quantization differs).
RAW_VALUE_KINDS = frozenset({
    "RESHAPE", "SQUEEZE", "EXPAND_DIMS", "CONCATENATION", "PAD", "SLICE", "STRIDED_SLICE", "TILE", "TRANSPOSE",
    "ARG_MAX", "ARG_MIN", "RESIZE_NEAREST_NEIGHBOR",
})


def register(*kinds: str, quantized: bool = False) -> Callable[[Preparer], Preparer]:
    """Register a preparer for one or more op kinds (BuiltinOperator names); quantized=True for the
    preparer of the kinds' quantized form, chosen when the op touches a quantized integer tensor."""

    def decorate(function: Preparer) -> Preparer:
        for kind in kinds:
            (QUANTIZED_PREPARERS if quantized else PREPARERS)[kind] = function
        return function

    return decorate


def is_quantized(op: OpNode, tensors: Sequence[TensorInfo]) -> bool:
    """Whether the op reads or writes a quantized integer tensor (uint8, int8, int16 with a scale)."""
    touched = [tensors[i] for i in (*op.inputs, *op.outputs) if i != -1]
    return any(t.dtype in QUANTIZED_DTYPES and t.quantization is not None for t in touched)


def preparer_for(op: OpNode, tensors: Sequence[TensorInfo]) -> Preparer | None:
    """The preparer for this op: its kind's quantized one when it touches quantized tensors (or the
    float one, for kinds that only move raw values), else the float one; None if there is none.
    A custom op's preparer handles every dtype itself."""
    if op.kind in CUSTOM_PREPARERS:
        return CUSTOM_PREPARERS[op.kind]
    if is_quantized(op, tensors):
        if op.kind in QUANTIZED_PREPARERS:
            return QUANTIZED_PREPARERS[op.kind]
        return PREPARERS.get(op.kind) if op.kind in RAW_VALUE_KINDS else None
    return PREPARERS.get(op.kind)


class OpContext:
    """One op and the tensors it touches, with checks that raise ModelError naming both."""

    def __init__(self, op: OpNode, tensors: Sequence[TensorInfo]) -> None:
        self.op = op
        self.tensors = tensors
        self.options = op.options

    def fail(self, message: str) -> NoReturn:
        raise ModelError(f"{self.op.describe()}: {message}")

    def label(self, tensor: TensorInfo) -> str:
        return f"tensor {tensor.index} {tensor.name!r}"

    def expect_inputs(self, low: int, high: int | None = None) -> None:
        count = len(self.op.inputs)
        high = low if high is None else high
        if not low <= count <= high:
            wanted = str(low) if low == high else f"{low} to {high}"
            self.fail(f"expected {wanted} inputs, got {count}")

    def input(
        self,
        position: int,
        *,
        rank: int | tuple[int, ...] | None = None,
        dtypes: Sequence[np.dtype] | None = (FLOAT32,),
        constant: bool = False,
    ) -> TensorInfo:
        if position >= len(self.op.inputs) or self.op.inputs[position] == -1:
            self.fail(f"input {position} is missing")
        tensor = self.tensors[self.op.inputs[position]]
        self.check(tensor, f"input {position}", rank=rank, dtypes=dtypes)
        if constant and tensor.data is None:
            self.fail(f"input {position} ({self.label(tensor)}) must be a constant tensor")
        return tensor

    def optional_input(self, position: int, **checks: Any) -> TensorInfo | None:
        if position >= len(self.op.inputs) or self.op.inputs[position] == -1:
            return None
        return self.input(position, **checks)

    def check(
        self,
        tensor: TensorInfo,
        role: str,
        *,
        rank: int | tuple[int, ...] | None = None,
        dtypes: Sequence[np.dtype] | None = None,
    ) -> None:
        ranks = (rank,) if isinstance(rank, int) else rank
        if ranks is not None and len(tensor.shape) not in ranks:
            wanted = " or ".join(str(r) for r in ranks)
            self.fail(f"{role} ({self.label(tensor)}) must have rank {wanted}, got shape {list(tensor.shape)}")
        if dtypes is not None and tensor.dtype not in dtypes:
            wanted = " or ".join(np.dtype(d).name for d in dtypes)
            self.fail(f"{role} ({self.label(tensor)}) must be {wanted}, got {tensor.dtype.name}")

    def output(self, position: int = 0) -> TensorInfo:
        if position >= len(self.op.outputs):
            self.fail(f"output {position} is missing")
        return self.tensors[self.op.outputs[position]]

    def constant_ints(self, position: int) -> tuple[int, ...]:
        tensor = self.input(position, dtypes=INDEX_DTYPES, constant=True)
        return tuple(int(v) for v in np.asarray(tensor.data).reshape(-1))

    def activation_range(self) -> tuple[float, float]:
        name = getattr(self.options, "fused_activation_function", "NONE")
        if name not in FUSED_RANGES:
            self.fail(f"unknown fused activation {name}")
        return FUSED_RANGES[name]

    def prepared(
        self,
        kernel: str,
        params: Any,
        inputs: Sequence[TensorInfo | None],
        shape: tuple[int, ...],
        dtype: np.dtype,
        macs: int = 0,
    ) -> PreparedOp:
        """The common one-output case."""
        indices = tuple(-1 if t is None else t.index for t in inputs)
        return PreparedOp(self.op, kernel, params, indices, (tuple(shape),), (np.dtype(dtype),), macs)


def normalize_axis(ctx: OpContext, axis: int, rank: int, what: str = "axis") -> int:
    if not -rank <= axis < rank:
        ctx.fail(f"{what} {axis} is out of range for rank {rank}")
    return axis % rank
