"""Golden vectors for implementers: one op (or a range) of a model with its real inputs and outputs.

`npdeeplab extract MODEL --ops N[..M] --golden DIR IMAGE` (or --random in IMAGE's place; IMAGE may
also follow MODEL, as `trace` takes it) runs the whole model on the input (npdeeplab's NumPy
backend, the specification, unless --backend says otherwise; bit for bit LiteRT's reference
kernels on quantized models), keeps every array the ops read and write, and writes into DIR:

    manifest.json   what everything is (schema below)
    model.tflite    the ops cut out as a standalone model (npdeeplab.tools.extract)
    <key>.npy       one array per tensor the ops touch: inputs, weights, outputs (exact dtype)
    golden.h        the same arrays and every op's parameters as C99 (npdeeplab.tools.golden_c)

so that a hardware or microcontroller implementation of the op can be checked bit for bit
against TFLite's reference semantics. DIR appears complete or not at all: it is written beside
its final place and renamed. An existing DIR is replaced only if it is empty or a golden directory.

Manifest, format "npdeeplab-golden/1" (a JSON object; floats that are not finite are written as
the strings "inf", "-inf" and "nan"):

    format       "npdeeplab-golden/1"; a reader must refuse other values
    schema       this description, in one line, and where to read more
    source       {"model": file name, "sha256": of the model file, "ops": [first, last] (inclusive,
                 indices of the source model), "input": the full run's input ("image PATH" or
                 "random, seed S"), "engine": npdeeplab version and backend}
    model        "model.tflite";  header: "golden.h"
    arrays       {key: {"file": "<key>.npy", "tensor": the tensor's name, "role": "input" (the small
                 model's inputs) | "constant" (weights, biases) | "intermediate" (computed inside a
                 range) | "output", "dtype": NumPy name, "shape": [...], "quantization": null or
                 {"scale": [...], "zero_point": [...], "quantized_dimension": axis}}}
    ops          [{"index": source op index, "kind": builtin name, "version", "kernel": npdeeplab's
                 kernel, "inputs": [key or null for an omitted optional input], "outputs": [key],
                 "options": the op's options as stored in the file, "params": what prepare worked
                 out (LiteRT's OpData): for quantized ops multipliers, shifts, offsets, activation
                 bounds, window geometry; for float ops the activation range and geometry,
                 "omitted": npdeeplab-only fields left out (precomputed layouts, fast-path flags)}]
    conventions  how to read the parameters: text, one entry per topic (CONVENTIONS below)

Keys read op<N>_input<j> / op<N>_output<j>: input j / output j of source op N; a tensor keeps the
first key it gets (an op's output that a later op of the range reads keeps the output's key).
`load_golden(DIR)` reads it all back and checks every array against the manifest.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import math
import os
import shutil
import tempfile
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from npdeeplab import __version__
from npdeeplab.errors import InputError
from npdeeplab.model.ir import Model, TensorInfo
from npdeeplab.model.writer import write_model
from npdeeplab.runtime.interpreter import Interpreter
from npdeeplab.tools.extract import Extraction, capture

FORMAT = "npdeeplab-golden/1"
SCHEMA = ("npdeeplab golden vectors: arrays (.npy, golden.h) and prepared parameters of ops cut out of a model; "
          "the fields are described in the docstring of npdeeplab/tools/golden.py")
MANIFEST = "manifest.json"
MODEL = "model.tflite"
HEADER = "golden.h"
LARGEST_PARAM_ARRAY = 1 << 16  # params arrays above this many values are left out (there are none in TFLite's OpData)
# npdeeplab's own precomputations and fast-path flags, not part of what LiteRT's Prepare computes
INTERNAL_FIELDS = frozenset({"filter", "rescaling", "wraps", "float64_exact", "finite_filter", "blend_bits"})
CONVENTIONS = {
    "layout": "NHWC activations; CONV_2D filters [Cout, KH, KW, Cin], DEPTHWISE_CONV_2D filters [1, KH, KW, Cout]",
    "multiplier": "real multiplier = multiplier * 2**(shift - 31) (TFLite QuantizeMultiplier: multiplier in "
                  "[2**30, 2**31) or 0; shift > 0 shifts left, < 0 right), applied by MultiplyByQuantizedMultiplier "
                  "(SaturatingRoundingDoublingHighMul, then RoundingDivideByPOT: TFLite's default double rounding)",
    "offsets": "input_offset and filter_offset are minus the zero points, added to the raw values; output_offset "
               "is the output's zero point, added after rescaling, before the clamp to [act_min, act_max]",
    "window": "output (oy, ox) reads input row oy*stride_h - pad_top + ky*dilation_h and column "
              "ox*stride_w - pad_left + kx*dilation_w; taps outside the input are skipped",
    "add_sub": "ADD/SUB: each input (x + input_offset) << left_shift is rescaled by its multiplier and shift, "
               "the sum by output_multiplier and output_shift; input1 and input2 (TFLite's OpData names) are the "
               "op's inputs 0 and 1",
    "floats": "float parameters are float32 values; non-finite ones are the strings inf, -inf, nan",
}


@dataclass(frozen=True)
class GoldenSet:
    """Golden vectors in memory: the manifest, the arrays by key, the small model's bytes."""

    manifest: dict[str, Any]
    arrays: dict[str, np.ndarray]
    model_bytes: bytes


@dataclass(frozen=True)
class Golden:
    """A golden directory read back by load_golden."""

    directory: Path
    manifest: dict[str, Any]
    arrays: dict[str, np.ndarray]

    @property
    def model_path(self) -> Path:
        return self.directory / self.manifest["model"]

    def by_role(self, role: str) -> dict[str, np.ndarray]:
        """The arrays with this role ("input", "constant", "intermediate", "output"), by tensor name."""
        entries = self.manifest["arrays"]
        return {entries[k]["tensor"]: a for k, a in self.arrays.items() if entries[k]["role"] == role}

    def op(self, index: int) -> dict[str, Any]:
        """The manifest entry of source op `index`."""
        for entry in self.manifest["ops"]:
            if entry["index"] == index:
                return entry
        raise InputError(f"op {index} is not among the golden ops {[e['index'] for e in self.manifest['ops']]}")


def golden_vectors(
    model: Model, part: Extraction, feeds: Sequence[np.ndarray], backend: str = "numpy", input_note: str = "",
    numerics: str | None = None,
) -> GoldenSet:
    """Run the whole model on feeds and collect the golden vectors of the extracted ops
    (numerics: whose rounding, npdeeplab.runtime.numerics; default "reference")."""
    small = part.model.main
    source_of = dict(enumerate(part.source_tensors))  # small tensor index -> source tensor index
    op_indices = [*part.widening, *range(part.first, part.last + 1)]
    keys = _array_keys(small, op_indices)
    widened = {op.outputs[0]: op.inputs[0] for op in small.ops[: len(part.widening)]}
    wanted = [source_of[t] for t in keys if not small.tensors[t].is_constant and t not in widened]
    interpreter = Interpreter(model=model, backend=backend, numerics=numerics)
    captured = capture(model, feeds, wanted, backend=backend, numerics=numerics)
    arrays: dict[str, np.ndarray] = {}
    entries: dict[str, Any] = {}
    for t, key in keys.items():
        tensor = small.tensors[t]
        if tensor.is_constant:
            value = np.array(tensor.data, copy=True)
        elif t in widened:  # a float16 weight as the op reads it: widened by the DEQUANTIZE that came along
            value = small.tensors[widened[t]].data.astype(np.float32)
        else:
            value = captured[source_of[t]]
        arrays[key] = np.ascontiguousarray(value)
        entries[key] = _array_entry(key, tensor, value, _role(small, t))
    prepared = {p.op.index: p for p in interpreter.ops}
    ops = [_op_entry(model.main.ops[n], prepared.get(n), small.ops[k], keys) for k, n in enumerate(op_indices)]
    manifest = {
        "format": FORMAT,
        "schema": SCHEMA,
        "source": {
            "model": Path(model.source).name,
            "sha256": _sha256(model.source),
            "ops": [part.first, part.last],
            "input": input_note,
            "engine": f"npdeeplab {__version__}, {interpreter.backend} backend"
                      + ("" if interpreter.numerics == "reference" else f", {interpreter.numerics} numerics"),
        },
        "model": MODEL,
        "header": HEADER,
        "arrays": entries,
        "ops": ops,
        "conventions": CONVENTIONS,
    }
    return GoldenSet(manifest, arrays, write_model(part.model))


def check_destination(directory: str | os.PathLike) -> Path:
    """The golden directory to write, refused (one line) unless it is new, empty or a golden directory."""
    directory = Path(directory)
    if not directory.parent.is_dir():
        raise InputError(f"cannot write {directory}: {directory.parent} is not a directory")
    if directory.exists() or directory.is_symlink():
        if not directory.is_dir() or directory.is_symlink():
            raise InputError(f"{directory} exists and is not a directory")
        if any(directory.iterdir()) and _format_of(directory / MANIFEST) != FORMAT:
            raise InputError(f"{directory} exists and is not a golden directory; remove it or choose another")
    return directory


def write_golden(directory: str | os.PathLike, golden: GoldenSet) -> Path:
    """Write the golden directory beside its place, then rename it there: complete or not at all."""
    from npdeeplab.tools.golden_c import c_header

    directory = check_destination(directory)
    staging = Path(tempfile.mkdtemp(prefix=f".{directory.name}.", suffix=".tmp", dir=directory.parent))
    try:
        for key, array in golden.arrays.items():
            np.save(staging / golden.manifest["arrays"][key]["file"], array, allow_pickle=False)
        (staging / MODEL).write_bytes(golden.model_bytes)
        (staging / HEADER).write_text(c_header(golden.manifest, golden.arrays), encoding="ascii")
        (staging / MANIFEST).write_text(manifest_text(golden.manifest), encoding="utf-8")
        os.chmod(staging, 0o777 & ~_umask())  # mkdtemp makes it private
        _replace_directory(staging, directory)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    return directory


def load_golden(directory: str | os.PathLike) -> Golden:
    """Read a golden directory back, checking the format and every array's dtype and shape."""
    directory = Path(directory)
    path = directory / MANIFEST
    try:
        manifest = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as error:
        raise InputError(f"cannot read {path}: {error}") from None
    found = manifest.get("format") if isinstance(manifest, dict) else None
    if found != FORMAT:
        raise InputError(f"{path} has format {found!r}; this npdeeplab reads {FORMAT!r}")
    arrays = {}
    for key, entry in manifest["arrays"].items():
        try:
            array = np.load(directory / entry["file"], allow_pickle=False)
        except (OSError, ValueError) as error:
            raise InputError(f"cannot read {directory / entry['file']}: {error}") from None
        if array.dtype != np.dtype(entry["dtype"]) or list(array.shape) != entry["shape"]:
            raise InputError(f"{entry['file']} holds {array.dtype} {list(array.shape)}; the manifest says "
                             f"{entry['dtype']} {entry['shape']}")
        arrays[key] = array
    return Golden(directory, manifest, arrays)


def summary(golden: GoldenSet, directory: Path) -> str:
    """What write_golden wrote, for the CLI."""
    manifest = golden.manifest
    first, last = manifest["source"]["ops"]
    span = f"op {first}" if first == last else f"ops {first}..{last}"
    kinds = ", ".join(dict.fromkeys(op["kind"] for op in manifest["ops"] if op["index"] >= first))
    lines = [f"wrote {directory}: golden vectors of {span} ({kinds}) from a full run on {manifest['source']['input']}"]
    for key, entry in manifest["arrays"].items():
        name = entry["tensor"] if len(entry["tensor"]) <= 60 else entry["tensor"][:57] + "..."
        lines.append(f"  {entry['role']:<12} {key:<16} {entry['dtype']:<8} {str(entry['shape']):<18} {name!r}")
    lines.append(f"  and {MANIFEST}, {MODEL}, {HEADER}")
    return "\n".join(lines)


def manifest_text(manifest: Mapping[str, Any]) -> str:
    """JSON, one field a line, lists of numbers or strings on one line (a shape, 480 multipliers)."""

    def dump(value: Any, indent: str) -> str:
        inner = indent + "  "
        if isinstance(value, Mapping) and value:
            fields = [f"{inner}{json.dumps(str(k))}: {dump(v, inner)}" for k, v in value.items()]
            return "{\n" + ",\n".join(fields) + f"\n{indent}}}"
        if isinstance(value, list) and any(isinstance(v, (Mapping, list)) for v in value):
            return "[\n" + ",\n".join(inner + dump(v, inner) for v in value) + f"\n{indent}]"
        return json.dumps(value, allow_nan=False)

    return dump(manifest, "") + "\n"


def jsonable(value: Any, omitted: list[str] | None = None, where: str = "") -> Any:
    """value as JSON: dataclasses as objects, arrays as lists, non-finite floats as strings.
    Fields of INTERNAL_FIELDS, and values with no JSON form, are named in omitted instead."""
    if value is None or isinstance(value, (bool, str)):
        return value
    if isinstance(value, (int, np.integer)):
        return int(value)
    if isinstance(value, (float, np.floating)):
        number = float(value)
        return number if math.isfinite(number) else ("nan" if math.isnan(number) else "inf" if number > 0 else "-inf")
    if isinstance(value, np.bool_):
        return bool(value)
    if isinstance(value, (np.dtype, type)):
        return np.dtype(value).name
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        out = {}
        for f in dataclasses.fields(value):
            name = f"{where}.{f.name}" if where else f.name
            if f.name in INTERNAL_FIELDS:
                if omitted is not None:
                    omitted.append(name)
                continue
            out[f.name] = jsonable(getattr(value, f.name), omitted, name)
        return out
    if isinstance(value, np.ndarray) and value.size <= LARGEST_PARAM_ARRAY:
        return [jsonable(v, omitted, where) for v in value.ravel().tolist()]
    if isinstance(value, (list, tuple)):
        return [jsonable(v, omitted, where) for v in value]
    if isinstance(value, Mapping):
        return {str(k): jsonable(v, omitted, f"{where}.{k}") for k, v in value.items()}
    if omitted is not None:
        omitted.append(where)
    return None


def _array_keys(small: Any, op_indices: Sequence[int]) -> dict[int, str]:
    """Small-model tensor index -> key, in op order, each op's inputs then its outputs."""
    keys: dict[int, str] = {}
    for op, n in zip(small.ops, op_indices, strict=True):
        for role, tensors in (("input", op.inputs), ("output", op.outputs)):
            for j, t in enumerate(tensors):
                if t != -1 and t not in keys:
                    keys[t] = f"op{n}_{role}{j}"
    return keys


def _role(small: Any, t: int) -> str:
    if small.tensors[t].is_constant:
        return "constant"
    if t in small.inputs:
        return "input"
    return "output" if t in small.outputs else "intermediate"


def _array_entry(key: str, tensor: TensorInfo, value: np.ndarray, role: str) -> dict[str, Any]:
    q = tensor.quantization
    quantization = None if q is None else {
        "scale": jsonable(np.asarray(q.scale, np.float32)),
        "zero_point": jsonable(np.asarray(q.zero_point)),
        "quantized_dimension": int(q.quantized_dimension),
    }
    return {"file": f"{key}.npy", "tensor": tensor.name, "role": role, "dtype": value.dtype.name,
            "shape": list(value.shape), "quantization": quantization}


def _op_entry(op: Any, prepared: Any, small_op: Any, keys: Mapping[int, str]) -> dict[str, Any]:
    omitted: list[str] = []
    params = None if prepared is None else jsonable(prepared.params, omitted)
    return {
        "index": op.index,
        "kind": op.kind,
        "version": op.version,
        "kernel": None if prepared is None else prepared.kernel,  # None: done once at load (float16 weights)
        "inputs": [None if t == -1 else keys[t] for t in small_op.inputs],
        "outputs": [keys[t] for t in small_op.outputs],
        "options": jsonable(op.options),
        "params": params,
        "omitted": omitted,
    }


def _replace_directory(staging: Path, directory: Path) -> None:
    """Rename staging onto directory; an old one (checked: empty or golden) is moved aside first."""
    if not directory.exists():
        os.replace(staging, directory)
        return
    check_destination(directory)
    aside = Path(tempfile.mkdtemp(prefix=f".{directory.name}.", suffix=".old", dir=directory.parent))
    os.replace(directory, aside / "old")
    try:
        os.replace(staging, directory)
    except BaseException:
        os.replace(aside / "old", directory)
        raise
    finally:
        shutil.rmtree(aside, ignore_errors=True)


def _format_of(path: Path) -> Any:
    try:
        manifest = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    return manifest.get("format") if isinstance(manifest, dict) else None


def _sha256(path: str) -> str | None:
    try:
        return hashlib.sha256(Path(path).read_bytes()).hexdigest()
    except OSError:
        return None


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask
