"""Custom ops: BuiltinOperator CUSTOM, told apart by their custom code (op kind "CUSTOM:<code>").

One registry, keyed by custom code, that prepare (ops.base.preparer_for) and the kernel tables
(runtime.backends.kernel_table) both read. npdeeplab ships MediaPipe's Convolution2DTransposeBias
(npdeeplab/ops/mediapipe.py); a user adds their own before loading the model:

    import npdeeplab
    from npdeeplab.ops.custom import CustomPrepared

    def prepare(ctx, options: bytes) -> CustomPrepared:   # ctx: npdeeplab.ops.OpContext
        x = ctx.input(0)                                   # checks rank/dtype, one-line errors
        return CustomPrepared(params=float(options[0]), output_shapes=[x.shape], output_dtypes=[x.dtype])

    npdeeplab.register_custom_op("Scale", prepare=prepare, kernel=lambda factor, x: x * factor)

prepare gets the op's context and its custom options bytes (the file's raw bytes: a flexbuffer
or, as MediaPipe writes them, a C struct) and returns a CustomPrepared: the params handed to
the kernel, and the shape and dtype of each output. The kernel gets the params and the op's
input arrays (None for an omitted optional input) and returns the output array, or a tuple of
them; npdeeplab checks each against the prepared shape and dtype. A prepare may instead return
a PreparedOp naming a built-in kernel (ctx.prepared("transpose_conv", ...)), as the shipped
MediaPipe op does; then no kernel need be registered. `numba_kernel` is used by the Numba
backend (default: `kernel`); give one only if prepare validates its shapes, as the built-in
kernels' preparers do. Register before creating the
Interpreter: an interpreter reads the kernel tables once.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from npdeeplab.errors import ModelError, NpDeepLabError
from npdeeplab.model.ir import Model, OpNode, Subgraph, TensorInfo
from npdeeplab.ops.base import CUSTOM_PREPARERS, OpContext, PreparedOp

KIND_PREFIX = "CUSTOM:"


@dataclass(frozen=True)
class CustomPrepared:
    """What a custom op's prepare returns: the kernel's params and each output's shape and dtype."""

    params: Any
    output_shapes: Sequence[Sequence[int]]
    output_dtypes: Sequence[Any]
    macs: int = 0  # multiply-accumulates per invoke, shown by `inspect`


# (the graph, the custom op, the first free tensor index) -> (a builtin op doing the same, in the
# op's place, and the new tensors it reads, indexed from that first free index on)
LiteRTRewrite = Callable[[Subgraph, OpNode, int], tuple[OpNode, list[TensorInfo]]]


@dataclass(frozen=True)
class CustomOp:
    name: str
    prepare: Callable[[OpContext, bytes], CustomPrepared | PreparedOp]
    kernel: Callable[..., Any] | None  # None: prepare returns PreparedOps on built-in kernels
    numba_kernel: Callable[..., Any] | None = None
    describe: Callable[[bytes], str] | None = None  # the options in words, for `inspect`
    litert_rewrite: LiteRTRewrite | None = None  # the same op in LiteRT's builtins, for `compare`


@dataclass(frozen=True)
class _Checked:
    """Params of a registered kernel, with what its outputs must be."""

    params: Any
    label: str
    shapes: tuple[tuple[int, ...], ...]
    dtypes: tuple[np.dtype, ...]


CUSTOM_OPS: dict[str, CustomOp] = {}


def register_custom_op(
    name: str,
    prepare: Callable[[OpContext, bytes], CustomPrepared | PreparedOp],
    kernel: Callable[..., Any] | None = None,
    *,
    numba_kernel: Callable[..., Any] | None = None,
    describe: Callable[[bytes], str] | None = None,
    litert_rewrite: LiteRTRewrite | None = None,
    replace: bool = False,
) -> None:
    """Teach npdeeplab the custom op with this custom code (see the module docstring).

    describe: the options bytes in words, for `inspect`. litert_rewrite: the op as LiteRT
    builtins, so that `compare` and `report` can hold it against LiteRT (which cannot run it)."""
    if not isinstance(name, str) or not name:
        raise ValueError(f"a custom op's name must be a non-empty string, got {name!r}")
    if not callable(prepare) or not (kernel is None or callable(kernel)):
        raise TypeError("prepare (and kernel, if given) must be callables")
    if name in CUSTOM_OPS and not replace:
        raise ValueError(f"custom op {name!r} is already registered; pass replace=True to replace it")
    CUSTOM_OPS[name] = CustomOp(name, prepare, kernel, numba_kernel, describe, litert_rewrite)
    CUSTOM_PREPARERS[KIND_PREFIX + name] = lambda ctx: _prepare(CUSTOM_OPS[name], ctx)


def unregister_custom_op(name: str) -> None:
    """Forget a custom op (a no-op for names never registered)."""
    CUSTOM_OPS.pop(name, None)
    CUSTOM_PREPARERS.pop(KIND_PREFIX + name, None)


def kernel_name(name: str) -> str:
    return f"custom:{name}"


def custom_kernels(backend: str) -> dict[str, Callable[..., Any]]:
    """The registered custom kernels for a backend's kernel table, each checking its outputs."""
    table = {}
    for op in CUSTOM_OPS.values():
        chosen = op.numba_kernel if backend == "numba" and op.numba_kernel is not None else op.kernel
        if chosen is not None:
            table[kernel_name(op.name)] = _checking(chosen)
    return table


def describe_options(kind: str, options: bytes) -> str | None:
    """A registered custom op's options in words, or None."""
    op = CUSTOM_OPS.get(kind.removeprefix(KIND_PREFIX)) if kind.startswith(KIND_PREFIX) else None
    if op is None or op.describe is None:
        return None
    try:
        return op.describe(options)
    except Exception as error:  # noqa: BLE001 - a description must never stop `inspect`
        return f"options not readable ({error})"


def rewrite_for_litert(model: Model) -> tuple[Model, list[str]]:
    """The model with every custom op replaced by its registered builtin equivalent, for LiteRT,
    and a note per op replaced. Tensor indices stay the same (new tensors come after the file's
    own), so tensors line up between the two models. Raises NpDeepLabError for a custom op with
    no rewrite."""
    graph = model.main
    ops, tensors, notes = list(graph.ops), list(graph.tensors), []
    for op in graph.ops:
        if not op.kind.startswith(KIND_PREFIX):
            continue
        custom = CUSTOM_OPS.get(op.kind.removeprefix(KIND_PREFIX))
        if custom is None or custom.litert_rewrite is None:
            raise NpDeepLabError(
                f"LiteRT cannot run {op.describe()}, and npdeeplab knows no builtin equivalent of it to run "
                f"instead (register_custom_op(..., litert_rewrite=...))"
            )
        replacement, added = custom.litert_rewrite(dataclasses.replace(graph, tensors=tuple(tensors)), op,
                                                    len(tensors))
        ops[op.index] = replacement
        tensors.extend(added)
        notes.append(f"op {op.index} ({op.kind}) runs in LiteRT as builtin {replacement.kind}")
    if not notes:
        return model, []
    main = dataclasses.replace(graph, ops=tuple(ops), tensors=tuple(tensors))
    return dataclasses.replace(model, subgraphs=(main, *model.subgraphs[1:])), notes


def has_custom_ops(model: Model) -> bool:
    return any(op.kind.startswith(KIND_PREFIX) for op in model.main.ops)


def _prepare(op: CustomOp, ctx: OpContext) -> PreparedOp:
    result = op.prepare(ctx, ctx.op.custom_options)
    if isinstance(result, PreparedOp):
        return result
    if not isinstance(result, CustomPrepared):
        ctx.fail(f"the prepare function of custom op {op.name!r} returned {type(result).__name__}, "
                 f"not a CustomPrepared or PreparedOp")
    if op.kernel is None:
        ctx.fail(f"custom op {op.name!r} was registered without a kernel, so its prepare must return a PreparedOp")
    shapes = tuple(tuple(int(d) for d in shape) for shape in result.output_shapes)
    dtypes = tuple(np.dtype(d) for d in result.output_dtypes)
    if len(shapes) != len(dtypes):
        ctx.fail(f"custom op {op.name!r}: {len(shapes)} output shapes but {len(dtypes)} output dtypes")
    params = _Checked(result.params, ctx.op.describe(), shapes, dtypes)
    return PreparedOp(ctx.op, kernel_name(op.name), params, tuple(ctx.op.inputs), shapes, dtypes, int(result.macs))


def _checking(kernel: Callable[..., Any]) -> Callable[..., Any]:
    def run(checked: _Checked, *inputs: np.ndarray | None) -> tuple[np.ndarray, ...]:
        result = kernel(checked.params, *inputs)
        outputs = result if isinstance(result, tuple) else (result,)
        if len(outputs) != len(checked.shapes):
            raise ModelError(f"{checked.label}: the kernel returned {len(outputs)} outputs, expected "
                             f"{len(checked.shapes)}")
        arrays = []
        for position, (value, shape, dtype) in enumerate(zip(outputs, checked.shapes, checked.dtypes, strict=True)):
            array = np.asarray(value)
            if array.shape != shape or array.dtype != dtype:
                raise ModelError(f"{checked.label}: output {position} of the kernel is {array.dtype.name} "
                                 f"{list(array.shape)}, prepare said {dtype.name} {list(shape)}")
            arrays.append(array)
        return tuple(arrays)

    return run
