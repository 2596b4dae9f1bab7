"""The flatbuffer's fields: the byte offsets of a .tflite file's scalars, offsets, vector lengths
and vtable entries, so that byte mutations can hit real fields."""

from __future__ import annotations

import struct
from dataclasses import dataclass

# Table -> vtable slot -> (field name, kind): a scalar type, "string", "[element]" for a vector, or a
# table name ("Table" for tables walked without a schema, such as builtin options).
SCHEMA: dict[str, dict[int, tuple[str, str]]] = {
    "Model": {4: ("version", "u32"), 6: ("operator_codes", "[OperatorCode]"), 8: ("subgraphs", "[SubGraph]"),
              10: ("description", "string"), 12: ("buffers", "[Buffer]"), 14: ("metadata_buffer", "[i32]"),
              16: ("metadata", "[Metadata]"), 18: ("signature_defs", "[SignatureDef]")},
    "OperatorCode": {4: ("deprecated_builtin_code", "i8"), 6: ("custom_code", "string"), 8: ("version", "i32"),
                     10: ("builtin_code", "i32")},
    "SubGraph": {4: ("tensors", "[Tensor]"), 6: ("inputs", "[i32]"), 8: ("outputs", "[i32]"),
                 10: ("operators", "[Operator]"), 12: ("name", "string"), 14: ("debug_metadata_index", "i32")},
    "Tensor": {4: ("shape", "[i32]"), 6: ("type", "i8"), 8: ("buffer", "u32"), 10: ("name", "string"),
               12: ("quantization", "QuantizationParameters"), 14: ("is_variable", "u8"), 16: ("sparsity", "Table"),
               18: ("shape_signature", "[i32]"), 20: ("has_rank", "u8")},
    "QuantizationParameters": {4: ("min", "[f32]"), 6: ("max", "[f32]"), 8: ("scale", "[f32]"),
                               10: ("zero_point", "[i64]"), 12: ("details_type", "u8"), 14: ("details", "Table"),
                               16: ("quantized_dimension", "i32")},
    "Operator": {4: ("opcode_index", "u32"), 6: ("inputs", "[i32]"), 8: ("outputs", "[i32]"),
                 10: ("builtin_options_type", "u8"), 12: ("builtin_options", "Table"), 14: ("custom_options", "[u8]"),
                 16: ("custom_options_format", "i8"), 18: ("mutating_variable_inputs", "[u8]"),
                 20: ("intermediates", "[i32]"), 22: ("large_custom_options_offset", "u64"),
                 24: ("large_custom_options_size", "u64"), 26: ("builtin_options_2_type", "u8"),
                 28: ("builtin_options_2", "Table"), 30: ("debug_metadata_index", "i32")},
    "Buffer": {4: ("data", "[u8]"), 6: ("offset", "u64"), 8: ("size", "u64")},
    "Metadata": {4: ("name", "string"), 6: ("buffer", "u32")},
    "SignatureDef": {4: ("inputs", "[TensorMap]"), 6: ("outputs", "[TensorMap]"), 8: ("signature_key", "string"),
                     12: ("subgraph_index", "u32")},
    "TensorMap": {4: ("name", "string"), 6: ("tensor_index", "u32")},
}
WIDTHS = {"i8": 1, "u8": 1, "i16": 2, "u16": 2, "i32": 4, "u32": 4, "f32": 4, "i64": 8, "u64": 8}
MAX_SCALAR_ELEMENTS = 16  # of a scalar vector (a buffer's data, a shape) listed as fields
MAX_TABLE_ELEMENTS = 4096


@dataclass(frozen=True)
class Field:
    offset: int
    width: int
    label: str


Fields = tuple[Field, ...]


class FieldWalker:
    """Lists the byte offsets of a valid .tflite file's fields: scalars, offsets, vector lengths,
    vtable entries. Reads nothing it has not bounds-checked; stops quietly at anything odd."""

    def __init__(self, data: bytes) -> None:
        self.data = data
        self.fields: list[Field] = []
        self.seen: set[int] = set()

    def u16(self, at: int) -> int:
        return struct.unpack_from("<H", self.data, at)[0]

    def u32(self, at: int) -> int:
        return struct.unpack_from("<I", self.data, at)[0]

    def add(self, offset: int, width: int, label: str) -> None:
        if 0 <= offset and offset + width <= len(self.data):
            self.fields.append(Field(offset, width, label))

    def walk(self) -> Fields:
        self.add(0, 4, "root offset")
        try:
            self.table(self.u32(0), "Model", "model")
        except (struct.error, IndexError, KeyError):
            pass
        return tuple(self.fields)

    def table(self, position: int, type_name: str, label: str) -> None:
        if position in self.seen or not 0 <= position < len(self.data):
            return
        self.seen.add(position)
        vtable = position - struct.unpack_from("<i", self.data, position)[0]
        self.add(position, 4, f"{label} (vtable offset)")
        size, object_size = self.u16(vtable), self.u16(vtable + 2)
        self.add(vtable, 2, f"{label} vtable size")
        slots = {slot: self.u16(vtable + slot) for slot in range(4, size, 2)}
        present = sorted(o for o in slots.values() if o)
        for slot, offset in slots.items():
            self.add(vtable + slot, 2, f"{label} vtable slot {slot}")
            if not offset:
                continue
            name, kind = SCHEMA.get(type_name, {}).get(slot, (f"field{slot}", ""))
            if not kind:  # a table without a schema: guess the width from the next field
                following = [o for o in present if o > offset] + [object_size]
                kind = {1: "u8", 2: "u16", 3: "u16"}.get(following[0] - offset, "u32")
            self.value(position + offset, kind, f"{label}.{name}")

    def value(self, at: int, kind: str, label: str) -> None:
        if kind in WIDTHS:
            self.add(at, WIDTHS[kind], label)
            return
        self.add(at, 4, f"{label} (offset)")
        target = at + self.u32(at)
        if kind == "string":
            self.add(target, 4, f"{label} length")
        elif kind.startswith("["):
            self.vector(target, kind[1:-1], label)
        else:
            self.table(target, kind, label)

    def vector(self, start: int, element: str, label: str) -> None:
        count = self.u32(start)
        self.add(start, 4, f"{label} length")
        if element in WIDTHS:
            width = WIDTHS[element]
            for i in range(min(count, MAX_SCALAR_ELEMENTS)):
                self.add(start + 4 + width * i, width, f"{label}[{i}]")
            return
        for i in range(min(count, MAX_TABLE_ELEMENTS)):
            slot = start + 4 + 4 * i
            self.add(slot, 4, f"{label}[{i}] (offset)")
            self.table(slot + self.u32(slot), element, f"{label}[{i}]")


_FIELD_MAPS: dict[int, tuple[bytes, Fields]] = {}


def field_map(data: bytes) -> Fields:
    """The fields of a seed file (memoised for the few large shared seeds)."""
    cached = _FIELD_MAPS.get(id(data))
    if cached is not None and cached[0] is data:
        return cached[1]
    fields = FieldWalker(data).walk()
    if len(data) > 100_000:
        _FIELD_MAPS[id(data)] = (data, fields)
    return fields
