"""Prepare a whole subgraph: find unsupported ops, then check and shape every op in order."""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping

import numpy as np

from npdeeplab.errors import ModelError
from npdeeplab.model.ir import OpNode, Subgraph, TensorInfo
from npdeeplab.model.options import OPTIONS_FOR_KIND, OPTIONS_REQUIRED
from npdeeplab.ops import OpContext, PreparedOp, preparer_for
from npdeeplab.ops.base import QUANTIZED_DTYPES, is_quantized

LISTED_INDICES = 3  # op indices named per kind in an error before "… and N more"


def check_supported(graph: Subgraph) -> None:
    """One ModelError, one line, listing every op kind npdeeplab cannot run (quantized ones named
    with their type: "SOFTMAX on uint8") with (the first few of) its op indices."""
    missing: dict[str, list[int]] = {}
    for op in graph.ops:
        if preparer_for(op, graph.tensors) is None:
            missing.setdefault(_kind_label(op, graph), []).append(op.index)
    if missing:
        numerics = model_numerics(graph)
        prefix = f"{numerics} model: " if numerics != "float32" else ""
        custom = [kind for kind in missing if kind.startswith("CUSTOM:")]
        how = (
            f"; register a custom op with npdeeplab.register_custom_op({custom[0][7:]!r}, prepare=..., "
            f"kernel=...)" if custom else ""
        )
        raise ModelError(
            f"{prefix}the model uses {len(missing)} op kind{'s' if len(missing) > 1 else ''} npdeeplab does not "
            f"support: {listing(missing)}; `npdeeplab inspect --ops` lists the supported ones{how}"
        )


def _kind_label(op: OpNode, graph: Subgraph) -> str:
    if not is_quantized(op, graph.tensors):
        return op.kind
    dtypes = [graph.tensors[i].dtype for i in (*op.inputs, *op.outputs) if i != -1]
    return f"{op.kind} on {next(d for d in dtypes if d in QUANTIZED_DTYPES).name}"


def model_numerics(graph: Subgraph) -> str:
    """"uint8-quantized", "int8-quantized", "int16-quantized", "float16-weight" or "float32",
    from the tensors the ops read and write."""
    activations = [graph.tensors[i] for op in graph.ops for i in (*op.inputs, *op.outputs) if i != -1]
    for dtype in QUANTIZED_DTYPES:
        if any(t.dtype == dtype and t.quantization is not None and not t.is_constant for t in activations):
            return f"{dtype.name}-quantized"
    if any(t.dtype == np.float16 and t.is_constant for t in activations):
        return "float16-weight"
    return "float32"


def listing(ops_by_kind: Mapping[str, list[int]]) -> str:
    """`CONV_2D (38 ops: 0, 2, 3 … and 35 more), QUANTIZE (op 65)`."""
    parts = []
    for kind, indices in ops_by_kind.items():
        shown = ", ".join(map(str, indices[:LISTED_INDICES]))
        if len(indices) == 1:
            parts.append(f"{kind} (op {shown})")
        else:
            more = f" … and {len(indices) - LISTED_INDICES} more" if len(indices) > LISTED_INDICES else ""
            parts.append(f"{kind} ({len(indices)} ops: {shown}{more})")
    return ", ".join(parts)


def prepare_graph(
    graph: Subgraph, input_shapes: Mapping[int, tuple[int, ...]] | None = None
) -> tuple[list[PreparedOp], list[TensorInfo]]:
    """Prepare every op in execution order.

    Returns the prepared ops and the tensors with their shapes as they will be at run time. With
    no resized inputs, each inferred output shape must equal the declared one (dynamic
    dimensions, -1 in the shape signature, excepted); after a resize the inferred shapes win.
    """
    check_supported(graph)
    input_shapes = dict(input_shapes or {})
    tensors = list(graph.tensors)
    for index, shape in input_shapes.items():
        tensors[index] = dataclasses.replace(tensors[index], shape=tuple(shape))
    resized = any(graph.tensors[i].shape != tuple(s) for i, s in input_shapes.items())
    for position, index in enumerate(graph.inputs):
        check_activation(tensors[index], f"graph input {position} (tensor {index} {tensors[index].name!r})")
    ready = {t.index for t in tensors if t.is_constant} | set(graph.inputs)
    prepared = []
    for op in graph.ops:
        _check_inputs_ready(op, tensors, ready)
        _check_outputs_fresh(op, tensors, ready)
        _check_not_empty(op, "input", op.inputs, tensors)
        step = preparer_for(op, tensors)(OpContext(with_options(op), tensors))
        if len(step.output_shapes) != len(op.outputs):
            raise ModelError(f"{op.describe()}: expected {len(step.output_shapes)} outputs, got {len(op.outputs)}")
        for position, (index, shape, dtype) in enumerate(
            zip(op.outputs, step.output_shapes, step.output_dtypes, strict=True)
        ):
            declared = tensors[index]
            where = f"{op.describe()}: output {position} (tensor {index} {declared.name!r})"
            if declared.dtype != dtype:
                raise ModelError(f"{where} is declared {declared.dtype.name}, but the op produces {dtype.name}")
            if not resized and not _shape_matches(declared, shape):
                raise ModelError(
                    f"{where} is declared with shape {list(declared.shape)}, but the op produces {list(shape)}"
                )
            tensors[index] = dataclasses.replace(declared, shape=tuple(shape))
            check_activation(tensors[index], where)
            ready.add(index)
        _check_not_empty(op, "output", op.outputs, tensors)
        prepared.append(step)
    for index in graph.outputs:
        if index not in ready:
            raise ModelError(f"graph output tensor {index} {tensors[index].name!r} is not computed by any op")
    return prepared, tensors


def with_options(op: OpNode) -> OpNode:
    """The op with the options table its kind needs: defaults where the file has none and they
    make a valid op (as LiteRT's parser does), a ModelError where they do not or the table is
    another kind's."""
    expected = OPTIONS_FOR_KIND.get(op.kind)
    if expected is None or isinstance(op.options, expected):
        return op
    if op.options is None and op.kind not in OPTIONS_REQUIRED:
        return dataclasses.replace(op, options=expected())
    got = "no options table" if op.options is None else f"a {type(op.options).__name__} table"
    raise ModelError(f"{op.describe()}: expected {expected.__name__}, the file has {got}")


ACTIVATION_DTYPES = frozenset(
    np.dtype(d) for d in (np.float32, np.int32, np.int64, np.uint8, np.int8, np.int16, np.bool_, np.float64)
)


# Ops whose kernels handle empty tensors by doing nothing, as LiteRT runs them: data movement
# and elementwise arithmetic. Every other op refuses an empty input or output at load.
EMPTY_OK_KINDS = frozenset({
    "RESHAPE", "SQUEEZE", "EXPAND_DIMS", "CONCATENATION", "PAD", "SLICE", "STRIDED_SLICE", "TILE", "TRANSPOSE",
    "ADD", "SUB", "MUL", "RELU", "RELU6", "RELU_N1_TO_1", "TANH", "LOGISTIC",
})


INT32_MAX = 2**31 - 1  # TFLite's dimensions are int32


def check_activation(tensor: TensorInfo, where: str) -> None:
    """Tensors computed at run time must be of a type the kernels compute in (float16 and complex
    values are refused: float16 appears only as constant weights, for DEQUANTIZE), with every
    dimension an int32, as in TFLite (a TILE can multiply one past it)."""
    if tensor.dtype not in ACTIVATION_DTYPES:
        raise ModelError(f"{where} is {tensor.dtype.name}; npdeeplab computes in float32 and integer types")
    if any(d > INT32_MAX for d in tensor.shape):
        raise ModelError(f"{where} would have shape {list(tensor.shape)}, with a dimension over {INT32_MAX}")


def _check_not_empty(op: OpNode, role: str, indices: tuple[int, ...], tensors: list[TensorInfo]) -> None:
    """Convolutions, pools, resizes, reductions and softmax need values: an empty tensor (a resize
    of a 0-row image) would make their kernels index an empty axis, which in Numba, which does
    not bounds-check, reads out of bounds. Refused here, before the op's preparer sees it."""
    if op.kind in EMPTY_OK_KINDS:
        return
    for position, index in enumerate(indices):
        if index != -1 and 0 in tensors[index].shape:
            tensor = tensors[index]
            raise ModelError(
                f"{op.describe()}: {role} {position} (tensor {index} {tensor.name!r}) has shape {list(tensor.shape)}, "
                f"which holds no values; {op.kind} needs at least one"
            )


def _check_outputs_fresh(op: OpNode, tensors: list[TensorInfo], ready: set[int]) -> None:
    """Every op writes tensors of its own: not a constant, a graph input, or another op's output."""
    for position, index in enumerate(op.outputs):
        if index in ready or op.outputs.index(index) != position:
            what = "a constant" if tensors[index].is_constant else "already computed (or a graph input)"
            raise ModelError(
                f"{op.describe()}: output {position} (tensor {index} {tensors[index].name!r}) is {what}; "
                "each tensor is written by one op only"
            )


def _check_inputs_ready(op: OpNode, tensors: list[TensorInfo], ready: set[int]) -> None:
    for position, index in enumerate(op.inputs):
        if index != -1 and index not in ready:
            raise ModelError(
                f"{op.describe()}: input {position} (tensor {index} {tensors[index].name!r}) is neither a constant, "
                "a graph input, nor the output of an earlier op"
            )


def _shape_matches(declared: TensorInfo, shape: tuple[int, ...]) -> bool:
    if len(declared.shape) != len(shape):
        return False
    signature = declared.shape_signature if len(declared.shape_signature) == len(shape) else declared.shape
    return all(s == -1 or d == got for d, s, got in zip(declared.shape, signature, shape, strict=True))
