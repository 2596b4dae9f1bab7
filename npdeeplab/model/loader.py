"""Read a .tflite flatbuffer into the IR (npdeeplab.model.ir), checking it as it goes.

Files are memory-mapped and constant tensors are read-only views into the map, so loading a
model costs no copies. Everything that can be checked without knowing op semantics is checked
here (identifier, index ranges, buffer sizes); op-level checks happen in npdeeplab.prepare.
"""

from __future__ import annotations

import math
import mmap
import os
import re
from pathlib import Path
from typing import Any, BinaryIO

import numpy as np
import tflite

from npdeeplab.errors import ModelError, ModelNotFoundError
from npdeeplab.model.ir import Model, OpNode, Quantization, SignatureDef, Subgraph, TensorInfo
from npdeeplab.model.options import decode_options

FILE_IDENTIFIER = b"TFL3"
OPERATOR_NAMES = {v: k for k, v in vars(tflite.BuiltinOperator).items() if not k.startswith("_")}
TENSOR_DTYPES: dict[int, np.dtype] = {
    0: np.dtype(np.float32), 1: np.dtype(np.float16), 2: np.dtype(np.int32), 3: np.dtype(np.uint8),
    4: np.dtype(np.int64), 6: np.dtype(np.bool_), 7: np.dtype(np.int16), 8: np.dtype(np.complex64),
    9: np.dtype(np.int8), 10: np.dtype(np.float64), 11: np.dtype(np.complex128),
    12: np.dtype(np.uint64), 15: np.dtype(np.uint32), 16: np.dtype(np.uint16),
}
ModelSource = str | os.PathLike | bytes | bytearray | memoryview | BinaryIO


def load_model(source: ModelSource) -> Model:
    """Load a .tflite model from a path, bytes, or a binary file object."""
    data, name = _read_source(source)
    if len(data) < 8:
        raise ModelError(f"{name} is not a .tflite model: {len(data)} bytes is too short for a flatbuffer")
    if bytes(data[4:8]) != FILE_IDENTIFIER:
        raise ModelError(
            f"{name} is not a .tflite model: file identifier is {bytes(data[4:8])!r}, expected b'TFL3'"
        )
    root = int(data[:4].view("<u4")[0])
    if root >= len(data):
        raise ModelError(
            f"{name} is a malformed .tflite file: its root table is at byte {root}, past the end of the "
            f"{len(data)}-byte file (truncated?)"
        )
    place = Place("the model table")
    try:
        return _decode_model(data, name, place)
    except ModelError:
        raise
    except Exception as error:  # flatbuffers raises whatever a bad offset happens to cause
        raise ModelError(
            f"{name} is a malformed .tflite file: reading {place.what}, {in_user_terms(error, len(data))}"
        ) from None


class Place:
    """What the decoder is reading, for the message when a bad offset makes it fail."""

    def __init__(self, what: str) -> None:
        self.what = what


def in_user_terms(error: Exception, size: int) -> str:
    """What a flatbuffers failure means for the file, instead of the struct module's words."""
    text = str(error)
    past_end = re.search(r"unpacking (\d+) bytes at offset (\d+)", text)
    if past_end:
        count, offset = (int(v) for v in past_end.groups())
        return (
            f"{count} bytes at byte {offset} lie past the end of the {size}-byte file (truncated, or a corrupt "
            "offset)"
        )
    negative = re.search(r"offset (-\d+) out of range", text)
    if negative or "negative" in text or re.search(r"bad number -?\d+ for type uint", text):
        return "an offset points outside the file (corrupt)"
    if "buffer is smaller than requested size" in text:
        return f"a vector runs past the end of the {size}-byte file (truncated, or a corrupt length)"
    return f"{type(error).__name__}: {text}"


def _read_source(source: ModelSource) -> tuple[Any, str]:
    if isinstance(source, (bytes, bytearray, memoryview)):
        return np.frombuffer(source, dtype=np.uint8), "<model bytes>"
    if hasattr(source, "read"):
        return np.frombuffer(source.read(), dtype=np.uint8), getattr(source, "name", "<model file object>")
    path = Path(source)
    if not path.is_file():
        raise ModelNotFoundError(f"model file {str(path)!r} does not exist")
    with open(path, "rb") as f:
        if os.fstat(f.fileno()).st_size == 0:
            raise ModelError(f"{path} is not a .tflite model: the file is empty")
        mapped = mmap.mmap(f.fileno(), 0, access=mmap.ACCESS_READ)
    return np.frombuffer(mapped, dtype=np.uint8), str(path)


def _decode_model(data: np.ndarray, name: str, place: Place) -> Model:
    root = tflite.Model.GetRootAsModel(data, 0)
    buffers = []
    for i in range(root.BuffersLength()):
        place.what = f"buffer {i}"
        buffers.append(_buffer_bytes(root, i, data, name))
    kinds, versions = [], []
    for i in range(root.OperatorCodesLength()):
        place.what = f"operator code {i}"
        kinds.append(_operator_kind(root.OperatorCodes(i)))
        versions.append(root.OperatorCodes(i).Version())
    subgraphs = tuple(
        _decode_subgraph(root.Subgraphs(i), i, buffers, kinds, versions, name, place)
        for i in range(root.SubgraphsLength())
    )
    if not subgraphs:
        raise ModelError(f"{name} has no subgraphs")
    metadata = {}
    for i in range(root.MetadataLength()):
        place.what = f"metadata entry {i}"
        entry = root.Metadata(i)
        index = _check_index(entry.Buffer(), len(buffers), f"metadata entry {i}", "buffer", name)
        metadata[_text(entry.Name())] = bytes(buffers[index])
    signatures = []
    for i in range(root.SignatureDefsLength()):
        place.what = f"signature {i}"
        signatures.append(_decode_signature(root.SignatureDefs(i), subgraphs, name))
    return Model(
        version=root.Version(),
        description=_text(root.Description()),
        subgraphs=subgraphs,
        metadata=metadata,
        signatures=tuple(signatures),
        source=name,
    )


def _buffer_bytes(root: Any, index: int, data: np.ndarray, name: str) -> np.ndarray:
    """Buffer contents: inline in the flatbuffer, or (models over 2 GB) at offset/size after it."""
    buffer = root.Buffers(index)
    offset, size = buffer.Offset(), buffer.Size()
    if offset > 1:
        if offset + size > len(data):
            raise ModelError(
                f"{name}: buffer {index} lies at bytes {offset}..{offset + size}, past the end of the "
                f"{len(data)}-byte file (truncated?)"
            )
        return data[offset : offset + size]
    if buffer.DataLength() == 0:
        return data[:0]
    return buffer.DataAsNumpy()


def _operator_kind(code: Any) -> str:
    # Since schema v3a the real code is the larger of builtin_code and deprecated_builtin_code.
    builtin = max(code.BuiltinCode(), code.DeprecatedBuiltinCode())
    kind = OPERATOR_NAMES.get(builtin, f"UNKNOWN_BUILTIN_{builtin}")
    if kind == "CUSTOM":
        kind = f"CUSTOM:{_text(code.CustomCode())}"
    return kind


def _decode_subgraph(
    graph: Any, index: int, buffers: list[np.ndarray], kinds: list[str], versions: list[int], name: str, place: Place
) -> Subgraph:
    tensors = []
    for i in range(graph.TensorsLength()):
        place.what = f"tensor {i} of subgraph {index}"
        tensors.append(_decode_tensor(graph.Tensors(i), i, buffers, name))
    where = f"{name}: subgraph {index}"
    ops = []
    for i in range(graph.OperatorsLength()):
        place.what = f"op {i} of subgraph {index}"
        operator = graph.Operators(i)
        opcode = _check_index(operator.OpcodeIndex(), len(kinds), f"{where} op {i}", "opcode", "")
        kind = kinds[opcode]
        inputs = _indices(operator.InputsAsNumpy())
        outputs = _indices(operator.OutputsAsNumpy())
        for position, t in enumerate(inputs):
            if t != -1:
                _check_index(t, len(tensors), f"{where} op {i} ({kind}) input {position}", "tensor", "")
        for position, t in enumerate(outputs):
            _check_index(t, len(tensors), f"{where} op {i} ({kind}) output {position}", "tensor", "")
        options = decode_options(operator.BuiltinOptionsType(), operator.BuiltinOptions())
        custom = operator.CustomOptionsAsNumpy().tobytes() if operator.CustomOptionsLength() else b""
        ops.append(OpNode(i, kind, versions[opcode], inputs, outputs, options, custom))
    place.what = f"the inputs and outputs of subgraph {index}"
    io = {"input": _indices(graph.InputsAsNumpy()), "output": _indices(graph.OutputsAsNumpy())}
    for role, indices in io.items():
        for position, t in enumerate(indices):
            _check_index(t, len(tensors), f"{where} graph {role} {position}", "tensor", "")
    for position, t in enumerate(io["input"]):
        if tensors[t].is_constant:
            raise ModelError(
                f"{where} graph input {position} is tensor {t} {tensors[t].name!r}, a constant (its data is in "
                f"buffer {tensors[t].buffer}); a graph input is set by the caller"
            )
    return Subgraph(index, _text(graph.Name()), tuple(tensors), tuple(ops), io["input"], io["output"])


def _decode_tensor(tensor: Any, index: int, buffers: list[np.ndarray], name: str) -> TensorInfo:
    tensor_name = _text(tensor.Name())
    where = f"{name}: tensor {index} ({tensor_name!r})"
    type_code = tensor.Type()
    if type_code not in TENSOR_DTYPES:
        raise ModelError(f"{where} has tensor type {type_code}, which npdeeplab does not support")
    dtype = TENSOR_DTYPES[type_code]
    shape = _indices(tensor.ShapeAsNumpy())
    if any(d < 0 for d in shape):
        raise ModelError(f"{where} has a negative dimension in its shape {list(shape)}")
    signature = _indices(tensor.ShapeSignatureAsNumpy()) or shape
    buffer_index = _check_index(tensor.Buffer(), len(buffers), where, "buffer", "")
    raw = buffers[buffer_index] if buffer_index else buffers[0][:0]
    data = None
    if raw.size:
        expected = math.prod(shape) * dtype.itemsize
        if raw.size != expected:
            raise ModelError(
                f"{where}: constant buffer {buffer_index} holds {raw.size} bytes, expected {expected} "
                f"for shape {list(shape)} of {dtype.name}"
            )
        data = _typed_view(raw, dtype, shape)
    return TensorInfo(
        index=index,
        name=tensor_name,
        shape=shape,
        shape_signature=signature,
        dtype=dtype,
        quantization=_decode_quantization(tensor.Quantization(), dtype, shape, where),
        data=data,
        buffer=buffer_index,
        is_variable=bool(tensor.IsVariable()),
    )


def _typed_view(raw: np.ndarray, dtype: np.dtype, shape: tuple[int, ...]) -> np.ndarray:
    if raw.ctypes.data % dtype.alignment:
        raw = raw.copy()  # rare: an unaligned buffer; kernels want aligned data
    view = raw.view(dtype).reshape(shape)
    view.flags.writeable = False
    return view


def _decode_quantization(q: Any, dtype: np.dtype, shape: tuple[int, ...], where: str) -> Quantization | None:
    """Scales and zero points; for integer tensors, zero points must fit the type (a uint8 zero
    point of 300 is no quantization at all) and there must be one per scale."""
    if q is None or q.ScaleLength() == 0:
        return None
    scale = np.asarray(q.ScaleAsNumpy(), dtype=np.float32)
    zero_point = np.asarray(q.ZeroPointAsNumpy(), dtype=np.int64) if q.ZeroPointLength() else np.zeros(1, np.int64)
    if zero_point.size == 1 and scale.size > 1:
        zero_point = np.repeat(zero_point, scale.size)
    if dtype.kind in "iu":
        if zero_point.size != scale.size:
            raise ModelError(f"{where} has {scale.size} quantization scales but {zero_point.size} zero points")
        info = np.iinfo(dtype)
        outside = zero_point[(zero_point < info.min) | (zero_point > info.max)]
        if outside.size:
            raise ModelError(
                f"{where} is {dtype.name} with zero point {int(outside[0])}, outside the type's range "
                f"{info.min}..{info.max}"
            )
    return Quantization(scale, zero_point, int(q.QuantizedDimension()))


def _decode_signature(sig: Any, subgraphs: tuple[Subgraph, ...], name: str) -> SignatureDef:
    key = _text(sig.SignatureKey())
    index = sig.SubgraphIndex()
    if not 0 <= index < len(subgraphs):
        raise ModelError(f"{name}: signature {key!r} names subgraph {index}, but the model has {len(subgraphs)}")
    count = len(subgraphs[index].tensors)

    def tensor_map(role: str, length: int, get: Any) -> dict[str, int]:
        found = {}
        for i in range(length):
            entry = get(i)
            where = f"signature {key!r} {role} {_text(entry.Name())!r}"
            found[_text(entry.Name())] = _check_index(entry.TensorIndex(), count, where, "tensor", name)
        return found

    inputs = tensor_map("input", sig.InputsLength(), sig.Inputs)
    outputs = tensor_map("output", sig.OutputsLength(), sig.Outputs)
    return SignatureDef(key, index, inputs, outputs)


def _check_index(value: int, length: int, where: str, what: str, name: str) -> int:
    if not 0 <= value < length:
        prefix = f"{name}: " if name else ""
        raise ModelError(f"{prefix}{where} refers to {what} {value}, out of range 0..{length - 1}")
    return int(value)


def _indices(array: Any) -> tuple[int, ...]:
    return () if isinstance(array, int) else tuple(int(v) for v in array)


def _text(value: bytes | None) -> str:
    return value.decode("utf-8", "replace") if value else ""
