"""Build small .tflite models by hand: for tests, for bug reports, for trying an op.

Every op's output shape and dtype are worked out by npdeeplab's own preparer as the op is added,
so a graph that builds is one npdeeplab accepts (ops npdeeplab does not run need an explicit
`output_shape` and `output_dtype`). Options are given as keyword arguments named as in the
schema (and in npdeeplab.model.options), enums by name:

    >>> import numpy as np
    >>> from npdeeplab.model.builder import GraphBuilder
    >>> b = GraphBuilder()
    >>> x = b.add_input("image", (1, 9, 9, 3))
    >>> w = b.add_constant("weights", np.ones((4, 3, 3, 3), np.float32))
    >>> y = b.add_op("CONV_2D", [x, w], padding="VALID", stride_h=2, stride_w=2,
    ...              fused_activation_function="RELU6")
    >>> b.shape(y)
    (1, 4, 4, 4)
    >>> b.mark_outputs(y)
    >>> model = b.build()          # the IR; b.to_bytes() or b.save("conv.tflite") for the file
    >>> model.main.ops[0].options.padding
    'VALID'
"""

from __future__ import annotations

import dataclasses
import os
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from npdeeplab.errors import ModelError
from npdeeplab.model.ir import Model, OpNode, Quantization, SignatureDef, Subgraph, TensorInfo
from npdeeplab.model.options import OPTIONS_FOR_KIND
from npdeeplab.model.writer import save_model, write_model
from npdeeplab.ops import OpContext, preparer_for

# The options table each op kind carries in converted models (kinds not listed take none).

QuantizationLike = Quantization | tuple[Any, Any] | tuple[Any, Any, int] | None


class GraphBuilder:
    """Accumulates tensors and ops of one subgraph; build() freezes them into a Model.

    Tensors are referred to by their index (what add_input, add_constant and add_op return).
    """

    def __init__(self, name: str = "main", description: str = "npdeeplab GraphBuilder") -> None:
        self.name = name
        self.description = description
        self.tensors: list[TensorInfo] = []
        self.ops: list[OpNode] = []
        self.inputs: list[int] = []
        self.outputs: list[int] = []
        self.metadata: dict[str, bytes] = {}
        self.signatures: list[SignatureDef] = []
        self._buffers = 0

    # --- tensors ----------------------------------------------------------------------------------

    def add_input(
        self,
        name: str,
        shape: Sequence[int],
        dtype: Any = np.float32,
        quantization: QuantizationLike = None,
        shape_signature: Sequence[int] | None = None,
    ) -> int:
        """A graph input; shape_signature may mark dynamic dimensions with -1."""
        index = self._add_tensor(name, tuple(shape), np.dtype(dtype), quantization, shape_signature=shape_signature)
        self.inputs.append(index)
        return index

    def add_constant(self, name: str, array: Any, quantization: QuantizationLike = None) -> int:
        """A constant tensor holding a copy of array (its dtype and shape as given)."""
        data = np.array(array, copy=True, order="C")
        data.flags.writeable = False
        return self._add_tensor(name, data.shape, data.dtype, quantization, data=data)

    def add_tensor(
        self,
        name: str,
        shape: Sequence[int],
        dtype: Any = np.float32,
        quantization: QuantizationLike = None,
        is_variable: bool = False,
    ) -> int:
        """A plain tensor with no producer yet (for ops added with explicit `outputs=`)."""
        return self._add_tensor(name, tuple(shape), np.dtype(dtype), quantization, is_variable=is_variable)

    def shape(self, tensor: int) -> tuple[int, ...]:
        return self.tensors[tensor].shape

    def dtype(self, tensor: int) -> np.dtype:
        return self.tensors[tensor].dtype

    # --- ops --------------------------------------------------------------------------------------

    def add_op(
        self,
        kind: str,
        inputs: Sequence[int | None],
        options: Any = None,
        *,
        name: str | None = None,
        output_shape: Sequence[int] | None = None,
        output_dtype: Any = None,
        output_quantization: QuantizationLike = None,
        outputs: Sequence[int] | None = None,
        version: int = 1,
        custom_options: bytes = b"",
        **fields: Any,
    ) -> int:
        """Add an op and return its output tensor (the first one, for ops with several).

        inputs: tensor indices, None for an omitted optional input (written as -1).
        options: an npdeeplab.model.options dataclass, or give its fields as keyword arguments
        (`padding="VALID", stride_h=2`), which fill the kind's options class from its defaults.
        The output shape and dtype come from npdeeplab's preparer for the kind; give them for
        ops npdeeplab does not run (or to declare something else on purpose). outputs: existing
        tensors (from add_tensor) to write instead of new ones; nothing is inferred then.
        custom_options: a custom op's ("CUSTOM:<code>") options bytes.
        """
        options = self._options(kind, options, fields)
        indices = tuple(-1 if i is None else int(i) for i in inputs)
        for i in indices:
            if i != -1 and not 0 <= i < len(self.tensors):
                raise ModelError(f"{kind}: input tensor {i} does not exist (the graph has {len(self.tensors)})")
        if outputs is not None:
            op = OpNode(len(self.ops), kind, version, indices, tuple(outputs), options, custom_options)
            self.ops.append(op)
            return op.outputs[0]
        shapes, dtypes = self._infer_outputs(
            kind, version, indices, options, output_shape, output_dtype, output_quantization, custom_options
        )
        base = name or f"{kind.lower()}_{len(self.ops)}"
        created = tuple(
            self._add_tensor(base if len(shapes) == 1 else f"{base}:{k}", shape, dtype, output_quantization)
            for k, (shape, dtype) in enumerate(zip(shapes, dtypes, strict=True))
        )
        self.ops.append(OpNode(len(self.ops), kind, version, indices, created, options, custom_options))
        return created[0]

    def mark_outputs(self, *tensors: int) -> None:
        """Declare graph outputs, in order."""
        for tensor in tensors:
            if not 0 <= tensor < len(self.tensors):
                raise ModelError(f"output tensor {tensor} does not exist")
            self.outputs.append(int(tensor))

    def add_signature(self, key: str, inputs: Mapping[str, int], outputs: Mapping[str, int]) -> None:
        """A SignatureDef of subgraph 0: names -> tensor indices."""
        self.signatures.append(SignatureDef(key, 0, dict(inputs), dict(outputs)))

    # --- results ----------------------------------------------------------------------------------

    def build(self) -> Model:
        if not self.outputs:
            raise ModelError("the graph has no outputs: call mark_outputs() first")
        graph = Subgraph(0, self.name, tuple(self.tensors), tuple(self.ops), tuple(self.inputs), tuple(self.outputs))
        return Model(3, self.description, (graph,), dict(self.metadata), tuple(self.signatures))

    def to_bytes(self) -> bytes:
        return write_model(self.build())

    def save(self, path: str | os.PathLike) -> Path:
        return save_model(self.build(), path)

    # --- internals --------------------------------------------------------------------------------

    def _add_tensor(
        self,
        name: str,
        shape: tuple[int, ...],
        dtype: np.dtype,
        quantization: QuantizationLike,
        data: np.ndarray | None = None,
        shape_signature: Sequence[int] | None = None,
        is_variable: bool = False,
    ) -> int:
        buffer = 0
        if data is not None and data.size:
            self._buffers += 1
            buffer = self._buffers
        else:
            data = None  # an empty constant is written as an empty buffer, which reads back as "no data"
        tensor = TensorInfo(
            index=len(self.tensors),
            name=name,
            shape=tuple(int(d) for d in shape),
            shape_signature=tuple(int(d) for d in shape_signature) if shape_signature is not None else tuple(shape),
            dtype=np.dtype(dtype),
            quantization=as_quantization(quantization),
            data=data,
            buffer=buffer,
            is_variable=is_variable,
        )
        self.tensors.append(tensor)
        return tensor.index

    def _options(self, kind: str, options: Any, fields: dict[str, Any]) -> Any:
        cls = OPTIONS_FOR_KIND.get(kind)
        if options is not None:
            return dataclasses.replace(options, **fields) if fields else options
        if cls is None:
            if fields:
                raise ModelError(f"{kind} takes no options, got {', '.join(fields)}")
            return None
        known = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(fields) - known)
        if unknown:
            raise ModelError(f"{kind}: unknown option {', '.join(unknown)}; {cls.__name__} has {', '.join(known)}")
        return cls(**fields)

    def _infer_outputs(
        self,
        kind: str,
        version: int,
        inputs: tuple[int, ...],
        options: Any,
        shape: Sequence[int] | None,
        dtype: Any,
        quantization: QuantizationLike,
        custom_options: bytes = b"",
    ) -> tuple[list[tuple[int, ...]], list[np.dtype]]:
        if shape is not None and dtype is not None:
            return [tuple(shape)], [np.dtype(dtype)]
        # Prepare the op against the tensors so far plus a provisional output (preparers may read
        # its quantization, e.g. PAD's fill value); its shape and dtype are what we are after.
        first = self.tensors[inputs[0]] if inputs and inputs[0] != -1 else None
        provisional = TensorInfo(
            index=len(self.tensors),
            name="",
            shape=(),
            shape_signature=(),
            dtype=np.dtype(dtype) if dtype is not None else first.dtype if first is not None else np.dtype(np.float32),
            quantization=as_quantization(quantization),
        )
        op = OpNode(len(self.ops), kind, version, inputs, (provisional.index,), options, custom_options)
        tensors = [*self.tensors, provisional]
        preparer = preparer_for(op, tensors)
        if preparer is None:
            raise ModelError(f"npdeeplab cannot infer the output of {kind}: give output_shape and output_dtype")
        prepared = preparer(OpContext(op, tensors))
        shapes = [tuple(shape)] if shape is not None else list(prepared.output_shapes)
        dtypes = [np.dtype(dtype)] if dtype is not None else list(prepared.output_dtypes)
        return shapes, dtypes


def as_quantization(value: QuantizationLike) -> Quantization | None:
    """A Quantization from (scale, zero_point) or (scale, zero_point, quantized_dimension)."""
    if value is None or isinstance(value, Quantization):
        return value
    scale, zero_point, *rest = value
    scale = np.atleast_1d(np.asarray(scale, dtype=np.float32))
    zero_point = np.atleast_1d(np.asarray(zero_point, dtype=np.int64))
    if zero_point.size == 1 and scale.size > 1:
        zero_point = np.repeat(zero_point, scale.size)
    return Quantization(scale, zero_point, int(rest[0]) if rest else 0)
