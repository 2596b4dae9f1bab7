"""golden.h: a golden directory's arrays and op parameters as one C99 header (npdeeplab.tools.golden).

For every array `key` of the manifest (op51_input0, op51_output0, ...):

    #define OP51_INPUT0_RANK 4
    #define OP51_INPUT0_SHAPE {1, 65, 65, 160}         an initializer: int shape[] = OP51_INPUT0_SHAPE;
    #define OP51_INPUT0_DIM0 1 ... OP51_INPUT0_DIM3 160
    #define OP51_INPUT0_SIZE 676000
    #define OP51_INPUT0_SCALE 0.0235294122f              per-tensor quantization; per channel, the arrays
    #define OP51_INPUT0_ZERO_POINT 0                     op51_input0_scale[] and op51_input0_zero_point[]
    static const uint8_t op51_input0[OP51_INPUT0_SIZE] = { ... };   row-major (C order), as the .npy

and for every op N, its options as OP51_OPT_<NAME> and its prepared parameters as OP51_<NAME>
(nested ones joined by _, e.g. OP51_WINDOW_STRIDE_H): integers and floats as macros (strings as
string literals, booleans 0/1, INFINITY/NAN from math.h), lists as static const arrays with an
_SIZE macro (op51_multiplier[OP51_MULTIPLIER_SIZE]). float32 values are written with 9
significant digits, which a C compiler reads back as the same float; float16 arrays are their
IEEE bit patterns (uint16_t).
"""

from __future__ import annotations

import re
from collections.abc import Iterator, Mapping
from typing import Any

import numpy as np

C_TYPES = {
    "uint8": "uint8_t", "int8": "int8_t", "uint16": "uint16_t", "int16": "int16_t", "uint32": "uint32_t",
    "int32": "int32_t", "int64": "int64_t", "bool": "uint8_t", "float16": "uint16_t", "float32": "float",
    "float64": "double",
}
NON_FINITE = {"inf": "INFINITY", "-inf": "(-INFINITY)", "nan": "NAN"}
PER_LINE = 16
DEFINED = re.compile(r"(?:#define|static const \w+) (\w+)")


def c_header(manifest: Mapping[str, Any], arrays: Mapping[str, np.ndarray]) -> str:
    """The header's text (ASCII)."""
    source = manifest["source"]
    first, last = source["ops"]
    span = f"op {first}" if first == last else f"ops {first}..{last}"
    lines = [
        f"/* golden.h: golden vectors of {span} of {_comment(source['model'])} (sha256 {source['sha256']}),",
        f" * from a full run on {_comment(source['input'])}, computed by {_comment(source['engine'])}.",
        f" * Written by `npdeeplab extract --golden`; manifest.json (format {manifest['format']}) describes",
        " * every array and parameter. Conventions:",
        *(f" *   {name}: {_comment(text)}" for name, text in manifest["conventions"].items()),
        " */",
        "#ifndef NPDEEPLAB_GOLDEN_H",
        "#define NPDEEPLAB_GOLDEN_H",
        "",
        "#include <math.h>   /* INFINITY, NAN */",
        "#include <stdint.h>",
        "",
    ]
    for key, entry in manifest["arrays"].items():
        lines += _array_block(key, entry, arrays[key])
    for op in manifest["ops"]:
        lines += _op_block(op)
    lines += ["#endif /* NPDEEPLAB_GOLDEN_H */", ""]
    names = [m.group(1) for m in map(DEFINED.match, lines) if m]
    twice = sorted({n for n in names if names.count(n) > 1})
    if twice:  # an array's macros and a parameter's of the same name: a bug here, not in the model
        raise AssertionError(f"golden.h would define {', '.join(twice)} twice")
    return "\n".join(lines)


def _array_block(key: str, entry: Mapping[str, Any], array: np.ndarray) -> list[str]:
    name, macro = _identifier(key), _identifier(key).upper()
    shape = list(array.shape)
    lines = [f"/* {key}: {entry['role']}, tensor '{_comment(entry['tensor'])}', {entry['dtype']} {shape} */"]
    lines.append(f"#define {macro}_RANK {len(shape)}")
    lines.append(f"#define {macro}_SHAPE {{{', '.join(map(str, shape)) or '1'}}}")  # a scalar: {1}
    lines += [f"#define {macro}_DIM{d} {n}" for d, n in enumerate(shape)]
    lines.append(f"#define {macro}_SIZE {array.size}")
    q = entry["quantization"]
    if q is not None and len(q["scale"]) == 1:
        lines.append(f"#define {macro}_SCALE {_float_literal(q['scale'][0])}")
        lines.append(f"#define {macro}_ZERO_POINT {_int_literal(q['zero_point'][0])}")
    elif q is not None:
        lines.append(f"#define {macro}_QUANTIZED_DIMENSION {q['quantized_dimension']}")
        lines += _list_array(f"{name}_scale", f"{macro}_CHANNELS", "float", q["scale"])
        lines += [f"static const int32_t {name}_zero_point[{macro}_CHANNELS] = {{",
                  *_rows([_int_literal(v) for v in q["zero_point"]]), "};"]
    lines += _data_array(name, f"{macro}_SIZE", array)
    return [*lines, ""]


def _data_array(name: str, size: str, array: np.ndarray) -> list[str]:
    dtype = array.dtype.name
    if dtype not in C_TYPES:
        return [f"/* {name}: no C type for {dtype}; read {name}.npy */"]
    if array.size == 0:
        return [f"/* {name} is empty */"]
    flat = array.ravel()
    if dtype == "float16":
        items = [str(v) for v in flat.view(np.uint16).tolist()]
    elif array.dtype.kind == "f":
        items = [_float_literal(v) for v in flat.tolist()]
        if dtype == "float64":
            items = [v[:-1] if v.endswith("f") else v for v in items]
    elif dtype == "bool":
        items = [str(int(v)) for v in flat.tolist()]
    else:
        items = [_int_literal(v) for v in flat.tolist()]
    note = "  /* IEEE float16 bit patterns */" if dtype == "float16" else ""
    return [f"static const {C_TYPES[dtype]} {name}[{size}] = {{{note}", *_rows(items), "};"]


def _op_block(op: Mapping[str, Any]) -> list[str]:
    prefix = f"OP{op['index']}"
    inputs = ", ".join("(none)" if k is None else k for k in op["inputs"])
    lines = [f"/* op {op['index']}: {op['kind']} v{op['version']}, npdeeplab kernel {op['kernel']}; "
             f"inputs {inputs}; outputs {', '.join(op['outputs'])} */"]
    for name, value in _flatten(op["options"] or {}):
        lines += _value(f"{prefix}_OPT_{name}", value)
    for name, value in _flatten(op["params"] or {}):
        lines += _value(f"{prefix}_{name}", value)
    if op["omitted"]:
        lines.append(f"/* left out (npdeeplab-only): {', '.join(op['omitted'])} */")
    return [*lines, ""]


def _flatten(value: Mapping[str, Any], prefix: str = "") -> Iterator[tuple[str, Any]]:
    for key, item in value.items():
        name = f"{prefix}{_identifier(str(key)).upper()}"
        if isinstance(item, Mapping):
            yield from _flatten(item, f"{name}_")
        else:
            yield name, item


def _value(macro: str, value: Any) -> list[str]:
    if value is None:
        return [f"/* {macro}: none */"]
    if isinstance(value, bool):
        return [f"#define {macro} {int(value)}"]
    if isinstance(value, int):
        return [f"#define {macro} {_int_literal(value, parenthesize=True)}"]
    if isinstance(value, float) or (isinstance(value, str) and value in NON_FINITE):
        return [f"#define {macro} {_float_literal(value, parenthesize=True)}"]
    if isinstance(value, str):
        return [f"#define {macro} \"{_string(value)}\""]
    if isinstance(value, list):
        if value and all(isinstance(v, int) and not isinstance(v, bool) for v in value):
            fits = all(-(2**31) <= v < 2**31 for v in value)
            return _list_array(macro.lower(), f"{macro}_SIZE", "int32_t" if fits else "int64_t", value)
        if value and all(isinstance(v, (int, float)) or v in NON_FINITE for v in value):
            return _list_array(macro.lower(), f"{macro}_SIZE", "float", value)
        return [f"#define {macro}_SIZE {len(value)}"] + ([] if not value else [f"/* {macro}: see manifest.json */"])
    return [f"/* {macro}: see manifest.json */"]


def _list_array(name: str, size: str, c_type: str, values: list[Any]) -> list[str]:
    literal = _float_literal if c_type == "float" else _int_literal
    return [f"#define {size} {len(values)}", f"static const {c_type} {name}[{size}] = {{",
            *_rows([literal(v) for v in values]), "};"]


def _rows(items: list[str]) -> list[str]:
    return ["  " + ", ".join(items[i : i + PER_LINE]) + "," for i in range(0, len(items), PER_LINE)]


def _int_literal(value: Any, parenthesize: bool = False) -> str:
    value = int(value)
    if value == -(2**63):
        return "(-9223372036854775807LL - 1)"
    if value == -(2**31):
        return "(-2147483647 - 1)"
    text = f"{value}LL" if not -(2**31) <= value < 2**31 else str(value)
    return f"({text})" if parenthesize and value < 0 else text


def _float_literal(value: Any, parenthesize: bool = False) -> str:
    if isinstance(value, str):
        return NON_FINITE[value]
    number = float(value)
    if number != number:
        return "NAN"
    if number in (float("inf"), float("-inf")):
        return "INFINITY" if number > 0 else "(-INFINITY)"
    text = f"{number:.9g}"
    if "e" not in text and "." not in text:
        text += ".0"
    text += "f"
    return f"({text})" if parenthesize and text.startswith("-") else text


def _identifier(text: str) -> str:
    name = re.sub(r"[^0-9A-Za-z_]", "_", text)
    return f"_{name}" if name[:1].isdigit() else name


def _comment(text: Any) -> str:
    """Text safe inside a C comment: ASCII, no comment terminator."""
    return str(text).encode("ascii", "replace").decode("ascii").replace("*/", "* /")


def _string(text: str) -> str:
    return _comment(text).replace("\\", "\\\\").replace('"', '\\"')
