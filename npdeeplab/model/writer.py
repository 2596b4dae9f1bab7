"""Write the IR (npdeeplab.model.ir) back to .tflite bytes, through the `tflite` schema's builder functions.

The reverse of npdeeplab.model.loader: `load_model(write_model(load_model(f)))` equals `load_model(f)`.
What the IR does not hold is not written: min/max quantization ranges, sparsity,
operator intermediates and the options tables of ops npdeeplab.model.options does not model. LiteRT
reads none of them for the ops npdeeplab runs.

Buffers: buffer 0 is the empty sentinel. When the tensors' buffer indices are consistent (every
constant has its own non-zero buffer, or shares one with identical bytes) they are kept, so a
rewritten model has the same buffer table as the original; otherwise (for example a hand-made IR
whose tensors all say buffer 0) constants get fresh buffers 1, 2, ... and activations buffer 0.
Constant data is 16-byte aligned in the output, as the converter does.
"""

from __future__ import annotations

import dataclasses
import os
from pathlib import Path
from typing import Any

import flatbuffers
import numpy as np
import tflite

from npdeeplab.errors import ModelError
from npdeeplab.files import atomic_file
from npdeeplab.model.ir import Model, OpNode, Quantization, SignatureDef, Subgraph, TensorInfo
from npdeeplab.model.loader import FILE_IDENTIFIER, TENSOR_DTYPES
from npdeeplab.model.options import ENUM_FIELDS, camel

OPERATOR_CODES = {k: v for k, v in vars(tflite.BuiltinOperator).items() if not k.startswith("_")}
TYPE_CODES = {dtype: code for code, dtype in TENSOR_DTYPES.items()}
ENUM_CODES = {name: {text: code for code, text in names.items()} for name, names in ENUM_FIELDS.items()}
DEPRECATED_CODE_LIMIT = tflite.BuiltinOperator.PLACEHOLDER_FOR_GREATER_OP_CODES  # 127
DATA_ALIGNMENT = 16
MAX_FLATBUFFER_BYTES = 2**31 - 1


def write_model(model: Model, external_buffers: bool = False) -> bytes:
    """Serialise a Model to .tflite bytes (schema v3, file identifier TFL3).

    With external_buffers, constant data goes after the flatbuffer and each buffer records its
    offset and size: the layout TFLite uses for models over 2 GB (the flatbuffer itself must stay
    under 2 GB, the data need not).
    """
    buffer_of, buffer_data = _plan_buffers(model)
    size = sum(d.nbytes for d in buffer_data) + sum(len(v) for v in model.metadata.values())
    if external_buffers:
        # Offsets are non-default scalars, so the flatbuffer has the same size whatever their
        # values: lay it out once with placeholders to learn where the data will start.
        placeholder = [(1 << 40, d.nbytes) if d.size else None for d in buffer_data]
        head = len(_flatbuffer(model, buffer_of, buffer_data, placeholder, 0))
        start = -(-head // DATA_ALIGNMENT) * DATA_ALIGNMENT
        places, tail = [], []
        position = start
        for data in buffer_data:
            places.append((position, data.nbytes) if data.size else None)
            tail.append(data.tobytes() + bytes(-data.nbytes % DATA_ALIGNMENT))
            position += len(tail[-1])
        flat = _flatbuffer(model, buffer_of, buffer_data, places, 0)
        if len(flat) != head:
            raise AssertionError("the flatbuffer changed size between layout passes")
        return flat + bytes(start - head) + b"".join(tail)
    if size > MAX_FLATBUFFER_BYTES:
        raise ModelError(
            f"cannot write a {size}-byte model inline: flatbuffers stop at 2 GB; use external_buffers=True"
        )
    return _flatbuffer(model, buffer_of, buffer_data, None, size)


def _flatbuffer(
    model: Model,
    buffer_of: list[dict[int, int]],
    buffer_data: list[np.ndarray],
    external: list[tuple[int, int] | None] | None,
    size: int,
) -> bytes:
    """The flatbuffer; with `external`, buffers record (offset, size) instead of holding data."""
    builder = flatbuffers.Builder(1024 + size + size // 8)
    opcodes: dict[tuple[str, int], int] = {}  # (kind, version) -> index in the operator code table
    subgraphs = [_subgraph(builder, graph, buffer_of[graph.index], opcodes) for graph in model.subgraphs]
    metadata_buffers = {name: len(buffer_data) + i for i, name in enumerate(model.metadata)}
    if external is None:
        buffers = [_buffer(builder, data) for data in buffer_data]
    else:
        buffers = [_external_buffer(builder, place) for place in external]
    buffers += [_buffer(builder, np.frombuffer(value, np.uint8)) for value in model.metadata.values()]
    metadata = [_metadata(builder, name, metadata_buffers[name]) for name in model.metadata]
    signatures = [_signature(builder, signature) for signature in model.signatures]
    codes = [_operator_code(builder, kind, version) for kind, version in opcodes]
    description = builder.CreateString(model.description)

    vectors = {
        "OperatorCodes": _offsets(builder, codes),
        "Subgraphs": _offsets(builder, subgraphs),
        "Buffers": _offsets(builder, buffers),
        "Metadata": _offsets(builder, metadata) if metadata else None,
        "SignatureDefs": _offsets(builder, signatures) if signatures else None,
    }
    tflite.ModelStart(builder)
    tflite.ModelAddVersion(builder, model.version)
    tflite.ModelAddDescription(builder, description)
    for field, vector in vectors.items():
        if vector is not None:
            getattr(tflite, f"ModelAdd{field}")(builder, vector)
    builder.Finish(tflite.ModelEnd(builder), file_identifier=FILE_IDENTIFIER)
    return bytes(builder.Output())


def save_model(model: Model, path: str | os.PathLike) -> Path:
    """Write a Model to a .tflite file atomically (a temporary file, then os.replace)."""
    return write_atomically(path, write_model(model))


def write_atomically(path: str | os.PathLike, data: bytes) -> Path:
    """Write bytes to path so that readers see either the old file or the complete new one."""
    with atomic_file(path) as f:
        f.write(data)
    return Path(path)


# --- buffers ------------------------------------------------------------------------------------


def _plan_buffers(model: Model) -> tuple[list[dict[int, int]], list[np.ndarray]]:
    """Per subgraph, tensor index -> buffer index; and the bytes of each buffer (0 is empty)."""
    kept = _kept_buffers(model)
    if kept is not None:
        return kept
    data: list[np.ndarray] = [np.zeros(0, np.uint8)]
    buffer_of: list[dict[int, int]] = []
    for graph in model.subgraphs:
        mapping = {}
        for tensor in graph.tensors:
            if tensor.is_constant:
                mapping[tensor.index] = len(data)
                data.append(_raw_bytes(tensor.data))
            else:
                mapping[tensor.index] = 0
        buffer_of.append(mapping)
    return buffer_of, data


def _kept_buffers(model: Model) -> tuple[list[dict[int, int]], list[np.ndarray]] | None:
    """The tensors' own buffer indices, if they describe a valid buffer table; else None."""
    contents: dict[int, np.ndarray] = {}
    empty: set[int] = set()
    for graph in model.subgraphs:
        for tensor in graph.tensors:
            if not tensor.is_constant:
                empty.add(tensor.buffer)
                continue
            raw = _raw_bytes(tensor.data)
            if tensor.buffer == 0 or raw.size == 0:
                return None
            previous = contents.setdefault(tensor.buffer, raw)
            if previous is not raw and not np.array_equal(previous, raw):
                return None
    if empty & set(contents):
        return None  # an activation would read a constant's data
    count = max([0, *contents, *empty]) + 1
    data = [contents.get(i, np.zeros(0, np.uint8)) for i in range(count)]
    return [{t.index: t.buffer for t in graph.tensors} for graph in model.subgraphs], data


def _raw_bytes(array: np.ndarray) -> np.ndarray:
    array = np.ascontiguousarray(array)
    if array.dtype.byteorder == ">":
        array = array.astype(array.dtype.newbyteorder("<"))
    return array.reshape(-1).view(np.uint8)


def _external_buffer(builder: flatbuffers.Builder, place: tuple[int, int] | None) -> int:
    tflite.BufferStart(builder)
    if place is not None:
        tflite.BufferAddOffset(builder, place[0])
        tflite.BufferAddSize(builder, place[1])
    return tflite.BufferEnd(builder)


def _buffer(builder: flatbuffers.Builder, data: np.ndarray) -> int:
    vector = None
    if data.size:
        builder.StartVector(1, data.size, DATA_ALIGNMENT)
        builder.head -= data.size
        builder.Bytes[builder.head : builder.head + data.size] = data.tobytes()
        vector = builder.EndVector()
    tflite.BufferStart(builder)
    if vector is not None:
        tflite.BufferAddData(builder, vector)
    return tflite.BufferEnd(builder)


# --- subgraphs, tensors, operators ---------------------------------------------------------------


def _subgraph(builder: flatbuffers.Builder, graph: Subgraph, buffer_of: dict[int, int], opcodes: dict) -> int:
    tensors = [_tensor(builder, tensor, buffer_of[tensor.index]) for tensor in graph.tensors]
    operators = [_operator(builder, op, opcodes) for op in graph.ops]
    vectors = {
        "Tensors": _offsets(builder, tensors),
        "Inputs": _int32s(builder, graph.inputs),
        "Outputs": _int32s(builder, graph.outputs),
        "Operators": _offsets(builder, operators),
    }
    name = builder.CreateString(graph.name) if graph.name else None
    tflite.SubGraphStart(builder)
    for field, vector in vectors.items():
        getattr(tflite, f"SubGraphAdd{field}")(builder, vector)
    if name is not None:
        tflite.SubGraphAddName(builder, name)
    return tflite.SubGraphEnd(builder)


def _tensor(builder: flatbuffers.Builder, tensor: TensorInfo, buffer: int) -> int:
    if tensor.dtype not in TYPE_CODES:
        raise ModelError(f"tensor {tensor.index} {tensor.name!r}: cannot write dtype {tensor.dtype.name}")
    shape = _int32s(builder, tensor.shape)
    signature = _int32s(builder, tensor.shape_signature) if tensor.shape_signature != tensor.shape else None
    name = builder.CreateString(tensor.name)
    quantization = _quantization(builder, tensor.quantization) if tensor.quantization is not None else None
    tflite.TensorStart(builder)
    tflite.TensorAddShape(builder, shape)
    tflite.TensorAddType(builder, TYPE_CODES[tensor.dtype])
    tflite.TensorAddBuffer(builder, buffer)
    tflite.TensorAddName(builder, name)
    if quantization is not None:
        tflite.TensorAddQuantization(builder, quantization)
    if tensor.is_variable:
        tflite.TensorAddIsVariable(builder, True)
    if signature is not None:
        tflite.TensorAddShapeSignature(builder, signature)
    return tflite.TensorEnd(builder)


def _quantization(builder: flatbuffers.Builder, q: Quantization) -> int:
    scale = builder.CreateNumpyVector(np.asarray(q.scale, dtype="<f4").reshape(-1))
    zero_point = builder.CreateNumpyVector(np.asarray(q.zero_point, dtype="<i8").reshape(-1))
    tflite.QuantizationParametersStart(builder)
    tflite.QuantizationParametersAddScale(builder, scale)
    tflite.QuantizationParametersAddZeroPoint(builder, zero_point)
    tflite.QuantizationParametersAddQuantizedDimension(builder, q.quantized_dimension)
    return tflite.QuantizationParametersEnd(builder)


def _operator(builder: flatbuffers.Builder, op: OpNode, opcodes: dict) -> int:
    opcode = opcodes.setdefault((op.kind, op.version), len(opcodes))
    inputs = _int32s(builder, op.inputs)
    outputs = _int32s(builder, op.outputs)
    options = encode_options(builder, op.options) if op.options is not None else None
    custom = builder.CreateByteVector(op.custom_options) if op.custom_options else None
    tflite.OperatorStart(builder)
    tflite.OperatorAddOpcodeIndex(builder, opcode)
    tflite.OperatorAddInputs(builder, inputs)
    tflite.OperatorAddOutputs(builder, outputs)
    if options is not None:
        union_type, table = options
        tflite.OperatorAddBuiltinOptionsType(builder, union_type)
        tflite.OperatorAddBuiltinOptions(builder, table)
    if custom is not None:
        tflite.OperatorAddCustomOptions(builder, custom)  # format FLEXBUFFERS (0), the schema's only one
    return tflite.OperatorEnd(builder)


def _operator_code(builder: flatbuffers.Builder, kind: str, version: int) -> int:
    custom = None
    if kind.startswith("CUSTOM:"):
        code, custom = OPERATOR_CODES["CUSTOM"], builder.CreateString(kind.split(":", 1)[1])
    elif kind.startswith("UNKNOWN_BUILTIN_"):
        code = int(kind.rsplit("_", 1)[1])
    elif kind in OPERATOR_CODES:
        code = OPERATOR_CODES[kind]
    else:
        raise ModelError(f"cannot write op kind {kind!r}: not a BuiltinOperator name")
    tflite.OperatorCodeStart(builder)
    # Schema rule since v3a: builtin_code holds the code, deprecated_builtin_code min(code, 127).
    tflite.OperatorCodeAddDeprecatedBuiltinCode(builder, min(code, DEPRECATED_CODE_LIMIT))
    tflite.OperatorCodeAddBuiltinCode(builder, code)
    tflite.OperatorCodeAddVersion(builder, version)
    if custom is not None:
        tflite.OperatorCodeAddCustomCode(builder, custom)
    return tflite.OperatorCodeEnd(builder)


def encode_options(builder: flatbuffers.Builder, options: Any) -> tuple[int, int]:
    """(union type, table offset) for a typed options dataclass: the reverse of decode_options.

    The dataclass's name is the schema's union member name, and each field is written with
    tflite.<Union>Add<CamelField>: enum names back to their codes, tuples as int32 vectors.
    """
    union_name = type(options).__name__
    union_type = getattr(tflite.BuiltinOptions, union_name, None)
    if union_type is None or not dataclasses.is_dataclass(options):
        raise ModelError(f"cannot write options {options!r}: not a builtin options dataclass")
    values = {}
    for field in dataclasses.fields(options):
        value = getattr(options, field.name)
        if isinstance(value, tuple):
            value = _int32s(builder, value)  # vectors must be built before the table starts
        elif field.name in ENUM_CODES:
            value = _enum_code(field.name, value)
        values[field.name] = value
    getattr(tflite, f"{union_name}Start")(builder)
    for name, value in values.items():
        getattr(tflite, f"{union_name}Add{camel(name)}")(builder, value)
    return union_type, getattr(tflite, f"{union_name}End")(builder)


def _enum_code(field: str, value: str | int) -> int:
    if isinstance(value, int):
        return value
    if value.startswith("UNKNOWN(") and value.endswith(")"):
        return int(value[len("UNKNOWN(") : -1])
    if value not in ENUM_CODES[field]:
        raise ModelError(f"cannot write {field}={value!r}: expected one of {', '.join(ENUM_CODES[field])}")
    return ENUM_CODES[field][value]


# --- model-level tables ---------------------------------------------------------------------------


def _metadata(builder: flatbuffers.Builder, name: str, buffer: int) -> int:
    text = builder.CreateString(name)
    tflite.MetadataStart(builder)
    tflite.MetadataAddName(builder, text)
    tflite.MetadataAddBuffer(builder, buffer)
    return tflite.MetadataEnd(builder)


def _signature(builder: flatbuffers.Builder, signature: SignatureDef) -> int:
    inputs = _offsets(builder, [_tensor_map(builder, n, i) for n, i in signature.inputs.items()])
    outputs = _offsets(builder, [_tensor_map(builder, n, i) for n, i in signature.outputs.items()])
    key = builder.CreateString(signature.key)
    tflite.SignatureDefStart(builder)
    tflite.SignatureDefAddInputs(builder, inputs)
    tflite.SignatureDefAddOutputs(builder, outputs)
    tflite.SignatureDefAddSignatureKey(builder, key)
    tflite.SignatureDefAddSubgraphIndex(builder, signature.subgraph_index)
    return tflite.SignatureDefEnd(builder)


def _tensor_map(builder: flatbuffers.Builder, name: str, index: int) -> int:
    text = builder.CreateString(name)
    tflite.TensorMapStart(builder)
    tflite.TensorMapAddName(builder, text)
    tflite.TensorMapAddTensorIndex(builder, index)
    return tflite.TensorMapEnd(builder)


def _offsets(builder: flatbuffers.Builder, offsets: list[int]) -> int:
    builder.StartVector(4, len(offsets), 4)
    for offset in reversed(offsets):
        builder.PrependUOffsetTRelative(offset)
    return builder.EndVector()


def _int32s(builder: flatbuffers.Builder, values: tuple[int, ...] | list[int]) -> int:
    return builder.CreateNumpyVector(np.asarray(values, dtype="<i4").reshape(-1))
