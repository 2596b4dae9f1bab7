"""Fuzz npdeeplab's loader and runtime with malformed and unusual models.

The contract under test: a model given to ``npdeeplab.Interpreter(model_content=...)`` either ends
in one allowed error (ModelError, InputError or ImageError), or it loads, allocates, takes a
random input of its declared shape and dtype, runs on both backends ("numpy" and "numba") and
gives the same outputs on both. Anything else is a failure: another exception type ("exception"),
backends that disagree ("mismatch"), a child killed by a signal ("crash"), a child over its
timeout ("hang"), or a MemoryError / the memory limit ("memory").

Cases are deterministic functions of (seed, case number), mixed by STRATEGY_WEIGHTS from:
  - seeds: the shared models, and a fresh builder-made single-op model of a supported kind with
    random valid shapes and options (every kind in npdeeplab.ops.SUPPORTED_OPS), also run as is;
  - byte-level mutations of a seed's bytes: bit flips, byte sets, interesting integers at random
    offsets and at the offsets of real flatbuffer fields (field_map walks the file with the
    schema), truncations, splices of two files, inserted and deleted runs;
  - structure-aware mutations: the seed is loaded into the IR, one to three things are changed
    with dataclasses.replace (STRUCTURE_MUTATORS), and it is written back with write_model. When
    the writer refuses a mutated IR, the case falls back to a byte mutation of the unmutated seed
    and its description says so ("writer refused ...").

Isolation: each case runs in a child forked from this process, under RLIMIT_AS and a wall-clock
timeout, with faulthandler on so that a crash or a hang leaves the Python stack it happened in.
This process never runs a kernel. By default it loads the compiled Numba kernels from Numba's
on-disk cache with Numba's fork-safe threading layer ("workqueue", which restarts its threads in a
child), so a child starts with every kernel ready (~20 ms) instead of loading them itself
(~200 ms). ``--threading-layer default`` keeps Numba's default layer (OpenMP here; it cannot be
used across a fork) and lets every child load the kernels itself.

Float outputs are compared as the project's differential tests do: NaN, +Inf and -Inf at the
same positions, and everywhere else |numba - numpy| <= 1e-4 x max(1, max |finite numpy output|).
The tolerance is absolute and scaled to the output's magnitude because the backends sum in
different orders (BLAS against loops): rounding error follows the size of the partial sums, not
that of each element, so a per-element relative tolerance would flag cancellations. Integer and
bool outputs must be identical; dtypes and shapes must be equal.

Usage:
    python tests/fuzzing.py --cases 2000 --seed 0 --out /tmp/fuzz [--workers 2]
    NPDEEPLAB_FUZZ_CASES=50000 python tests/fuzzing.py --out /tmp/fuzz
    python tests/fuzzing.py --replay /tmp/fuzz/crash-0-000123.tflite --input-seed 42
    python tests/fuzzing.py --self-test     # the harness detects a crash, a hang, a MemoryError...
"""

from __future__ import annotations

import argparse
import ctypes
import dataclasses
import faulthandler
import json
import os
import re
import resource
import select
import signal
import struct
import subprocess
import sys
import time
import traceback
from collections import Counter
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

import npdeeplab
import npdeeplab.kernels
from npdeeplab.errors import ImageError, InputError, ModelError
from npdeeplab.model import options as model_options
from npdeeplab.model.builder import GraphBuilder
from npdeeplab.model.ir import Model, OpNode, Quantization, SignatureDef, TensorInfo
from npdeeplab.model.loader import TENSOR_DTYPES, load_model
from npdeeplab.model.writer import write_model
from npdeeplab.ops import SUPPORTED_OPS

DEFAULT_CASES = 300
DEFAULT_TIMEOUT = 30.0
DEFAULT_MEMORY_LIMIT = 4 * 2**30  # RLIMIT_AS; a child starts at ~0.4 GiB of address space
ENGINE_MAX_MEMORY = "268435456"  # NPDEEPLAB_MAX_MEMORY in every child: planned activations
FLOAT_TOLERANCE = 1e-4
ALLOWED_ERRORS = (ModelError, InputError, ImageError)
BACKENDS = ("numpy", "numba")
FAILURES = ("exception", "mismatch", "crash", "hang", "memory")

REPO = Path(npdeeplab.__file__).resolve().parent.parent
PROJECT_DIRS = (Path(npdeeplab.__file__).resolve().parent, Path(npdeeplab.kernels.__file__).resolve().parent)
SHARED_MODELS = REPO.parent / "shared" / "models"
FLOAT_SEED = "deeplabv3_257_mv_gpu.tflite"
OTHER_SEEDS = (
    "deeplabv3_mnv2_dm05_pascal_quant.tflite",
    "selfiesegmentation_mlkit-256x256-2021_01_19-v1215.f16.tflite",
)

STRATEGY_WEIGHTS = {
    "builder": 10,  # a builder-made single-op model, unmutated: a differential test of the op
    "builder+structure": 40,
    "builder+bytes": 25,
    "seed+structure": 7,  # the float DeepLab model: 0.1-1 s a case when it runs, so a minority
    "seed+bytes": 6,
    "shared+structure": 3,  # the quantized and the selfie model: refused at load, but loader inputs
    "shared+bytes": 4,
    "splice": 5,
}


# --- small helpers --------------------------------------------------------------------------------


def pick(rng: np.random.Generator, choices: Any) -> Any:
    choices = list(choices)
    return choices[int(rng.integers(len(choices)))]


def chance(rng: np.random.Generator, probability: float) -> bool:
    return bool(rng.random() < probability)


def weighted(rng: np.random.Generator, weights: dict[Any, float]) -> Any:
    keys = list(weights)
    p = np.array([weights[k] for k in keys], dtype=np.float64)
    return keys[int(rng.choice(len(keys), p=p / p.sum()))]


def random_shape(rng: np.random.Generator, rank: int, low: int = 1, high: int = 4) -> tuple[int, ...]:
    return tuple(int(v) for v in rng.integers(low, high + 1, rank))


def random_array(rng: np.random.Generator, shape: tuple[int, ...], dtype: Any) -> np.ndarray:
    """Floats in [-1, 1], integers over their type's range, bools 0/1 (as npdeeplab's own inputs)."""
    dtype = np.dtype(dtype)
    if dtype.kind == "f":
        return rng.uniform(-1, 1, shape).astype(dtype)
    if dtype.kind == "c":
        return (rng.uniform(-1, 1, shape) + 1j * rng.uniform(-1, 1, shape)).astype(dtype)
    if dtype.kind in "iu":
        info = np.iinfo(dtype)
        return rng.integers(info.min, info.max, shape, dtype=dtype, endpoint=True)
    return rng.integers(0, 2, shape).astype(dtype)


def normalise_message(message: str, limit: int = 110) -> str:
    """A message's shape: numbers, quoted names and lists replaced, so that similar errors group."""
    text = message.split("\n", 1)[0]
    text = re.sub(r"'[^']*'|\"[^\"]*\"", "'…'", text)
    text = re.sub(r"\[[^\[\]]*\]", "[…]", text)
    text = re.sub(r"(?<!\w)-?\d+(\.\d+)?(e[-+]?\d+)?(?!\w)", "N", text)
    return text[:limit]


# --- seeds: the shared models and builder-made single-op models -------------------------------------

ACTIVATIONS = ("NONE", "NONE", "RELU", "RELU6", "RELU_N1_TO_1")
F32, I32, I64 = np.dtype(np.float32), np.dtype(np.int32), np.dtype(np.int64)


def build_binary(rng: np.random.Generator, kind: str, g: GraphBuilder) -> None:
    dtype = pick(rng, [F32, F32, F32, I32, I64])
    a_shape = random_shape(rng, int(rng.integers(0, 5)))
    b_shape = [1 if chance(rng, 0.3) else d for d in a_shape][int(rng.integers(0, 2)) :]
    if chance(rng, 0.2):
        a_shape, b_shape = tuple(b_shape), a_shape
    a = g.add_input("a", a_shape, dtype)
    b = g.add_constant("b", random_array(rng, tuple(b_shape), dtype)) if chance(rng, 0.5) else g.add_input(
        "b", tuple(b_shape), dtype
    )
    activation = pick(rng, ACTIVATIONS) if dtype == F32 else "NONE"
    g.mark_outputs(g.add_op(kind, [a, b], fused_activation_function=activation))


def window_options(rng: np.random.Generator) -> dict[str, Any]:
    return {
        "padding": pick(rng, ["SAME", "VALID"]),
        "stride_h": int(rng.integers(1, 4)),
        "stride_w": int(rng.integers(1, 4)),
        "fused_activation_function": pick(rng, ACTIVATIONS),
    }


def build_conv(rng: np.random.Generator, kind: str, g: GraphBuilder) -> None:
    n, h, w = int(rng.integers(1, 3)), int(rng.integers(1, 9)), int(rng.integers(1, 9))
    kh, kw = int(rng.integers(1, 4)), int(rng.integers(1, 4))
    options = window_options(rng)
    options["dilation_h_factor"], options["dilation_w_factor"] = int(rng.integers(1, 3)), int(rng.integers(1, 3))
    if kind == "CONV_2D":
        groups = pick(rng, [1, 1, 1, 2])
        cin, cout = groups * int(rng.integers(1, 4)), groups * int(rng.integers(1, 4))
        weights = (cout, kh, kw, cin // groups)
    else:
        cin, multiplier = int(rng.integers(1, 5)), int(rng.integers(1, 4))
        cout = cin * multiplier
        weights = (1, kh, kw, cout)
        options["depth_multiplier"] = multiplier
    x = g.add_input("x", (n, h, w, cin))
    inputs = [x, g.add_constant("w", rng.standard_normal(weights).astype(np.float32))]
    if chance(rng, 0.8):
        inputs.append(g.add_constant("bias", rng.uniform(-1, 1, cout).astype(np.float32)))
    g.mark_outputs(g.add_op(kind, inputs, **options))


def build_pool(rng: np.random.Generator, kind: str, g: GraphBuilder) -> None:
    x = g.add_input("x", (int(rng.integers(1, 3)), int(rng.integers(1, 9)), int(rng.integers(1, 9)), 3))
    options = window_options(rng)
    options["filter_height"], options["filter_width"] = int(rng.integers(1, 4)), int(rng.integers(1, 4))
    g.mark_outputs(g.add_op(kind, [x], **options))


def build_mean(rng: np.random.Generator, kind: str, g: GraphBuilder) -> None:
    shape = random_shape(rng, int(rng.integers(1, 5)))
    rank = len(shape)
    axes = [int(a) - (rank if chance(rng, 0.3) else 0) for a in rng.permutation(rank)[: int(rng.integers(1, rank + 1))]]
    x = g.add_input("x", shape)
    axis = g.add_constant("axes", np.array(axes, pick(rng, [I32, I64])))
    g.mark_outputs(g.add_op(kind, [x, axis], keep_dims=chance(rng, 0.5)))


def build_arg(rng: np.random.Generator, kind: str, g: GraphBuilder) -> None:
    shape = random_shape(rng, int(rng.integers(1, 5)))
    dtype = pick(rng, [F32, F32, I32, np.dtype(np.uint8), np.dtype(np.int8)])
    x = g.add_input("x", shape, dtype)
    axis = g.add_constant("axis", np.array([int(rng.integers(-len(shape), len(shape)))], np.int32))
    g.mark_outputs(g.add_op(kind, [x, axis], output_type=pick(rng, ["INT32", "INT64"])))


def build_resize(rng: np.random.Generator, kind: str, g: GraphBuilder) -> None:
    dtype = F32 if kind == "RESIZE_BILINEAR" or chance(rng, 0.7) else I32
    x = g.add_input("x", (int(rng.integers(1, 3)), *random_shape(rng, 2, 1, 6), int(rng.integers(1, 4))), dtype)
    size = g.add_constant("size", np.array(random_shape(rng, 2, 1, 9), np.int32))
    align, half = pick(rng, [(False, False), (True, False), (False, True)])
    g.mark_outputs(g.add_op(kind, [x, size], align_corners=align, half_pixel_centers=half))


def build_concatenation(rng: np.random.Generator, kind: str, g: GraphBuilder) -> None:
    rank = int(rng.integers(1, 5))
    shape = random_shape(rng, rank)
    axis = int(rng.integers(-rank, rank))
    dtype = pick(rng, [F32, F32, I32])
    inputs = []
    for k in range(int(rng.integers(1, 4))):
        this = list(shape)
        this[axis] = int(rng.integers(1, 4))
        if k and chance(rng, 0.3):
            inputs.append(g.add_constant(f"c{k}", random_array(rng, tuple(this), dtype)))
        else:
            inputs.append(g.add_input(f"x{k}", tuple(this), dtype))
    g.mark_outputs(g.add_op(kind, inputs, axis=axis))


def build_reshape(rng: np.random.Generator, kind: str, g: GraphBuilder) -> None:
    shape = random_shape(rng, int(rng.integers(1, 5)))
    dims = [int(d) for d in rng.permutation(shape)]
    while len(dims) > 1 and chance(rng, 0.4):
        k = int(rng.integers(len(dims) - 1))
        dims[k : k + 2] = [dims[k] * dims[k + 1]]
    if chance(rng, 0.2):
        dims.insert(int(rng.integers(len(dims) + 1)), 1)
    if chance(rng, 0.3):
        dims[int(rng.integers(len(dims)))] = -1
    x = g.add_input("x", shape, pick(rng, [F32, F32, I32]))
    if chance(rng, 0.5):
        g.mark_outputs(g.add_op(kind, [x, g.add_constant("shape", np.array(dims, np.int32))]))
    else:
        g.mark_outputs(g.add_op(kind, [x], new_shape=tuple(dims)))


def build_squeeze(rng: np.random.Generator, kind: str, g: GraphBuilder) -> None:
    shape = tuple(1 if chance(rng, 0.5) else d for d in random_shape(rng, int(rng.integers(1, 6))))
    ones = [i for i, d in enumerate(shape) if d == 1]
    dims = tuple(i - (len(shape) if chance(rng, 0.3) else 0) for i in ones if chance(rng, 0.6))
    g.mark_outputs(g.add_op(kind, [g.add_input("x", shape)], squeeze_dims=dims))


def build_expand_dims(rng: np.random.Generator, kind: str, g: GraphBuilder) -> None:
    shape = random_shape(rng, int(rng.integers(1, 5)))
    axis = g.add_constant("axis", np.array([int(rng.integers(-len(shape) - 1, len(shape) + 1))], np.int32))
    g.mark_outputs(g.add_op(kind, [g.add_input("x", shape), axis]))


def build_pad(rng: np.random.Generator, kind: str, g: GraphBuilder) -> None:
    shape = random_shape(rng, int(rng.integers(1, 5)))
    x = g.add_input("x", shape, pick(rng, [F32, F32, I32]))
    paddings = g.add_constant("paddings", rng.integers(0, 3, (len(shape), 2)).astype(pick(rng, [I32, I64])))
    g.mark_outputs(g.add_op(kind, [x, paddings]))


def build_strided_slice(rng: np.random.Generator, kind: str, g: GraphBuilder) -> None:
    shape = random_shape(rng, int(rng.integers(0, 5)), 1, 5)
    count = max(1, len(shape) + pick(rng, [0, 0, 0, 0, -1, 1, 2, 3]))  # spec entries past the rank are ignored
    dims = [shape[i] if i < len(shape) else 3 for i in range(count)]
    begin = [int(rng.integers(-d - 1, d + 2)) for d in dims]
    end = [int(rng.integers(-d - 1, d + 2)) for d in dims]
    strides = [pick(rng, [1, 1, 1, 2, -1, -2]) for _ in dims]

    def mask(probability: float) -> int:
        return sum(1 << i for i in range(count) if chance(rng, probability))

    masks = {"begin_mask": mask(0.3), "end_mask": mask(0.3), "shrink_axis_mask": mask(0.15), "new_axis_mask": mask(0.1)}
    masks["ellipsis_mask"] = 1 << int(rng.integers(count)) if chance(rng, 0.15) else 0
    x = g.add_input("x", shape)
    values = {"begin": begin, "end": end, "strides": strides}
    spec = [g.add_constant(name, np.array(v, np.int32)) for name, v in values.items()]
    g.mark_outputs(g.add_op(kind, [x, *spec], offset=chance(rng, 0.1), **masks))


def build_slice(rng: np.random.Generator, kind: str, g: GraphBuilder) -> None:
    shape = random_shape(rng, int(rng.integers(1, 5)), 1, 5)
    begin = [int(rng.integers(0, d + 1)) for d in shape]
    size = [-1 if chance(rng, 0.2) else int(rng.integers(0, d - b + 1)) for d, b in zip(shape, begin, strict=True)]
    dtype = pick(rng, [I32, I64])
    x = g.add_input("x", shape)
    spec = [g.add_constant("begin", np.array(begin, dtype)), g.add_constant("size", np.array(size, dtype))]
    g.mark_outputs(g.add_op(kind, [x, *spec]))


def build_tile(rng: np.random.Generator, kind: str, g: GraphBuilder) -> None:
    shape = random_shape(rng, int(rng.integers(1, 5)), 1, 3)
    multiples = np.array([0 if chance(rng, 0.05) else int(rng.integers(1, 4)) for _ in shape], np.int32)
    x = g.add_input("x", shape, pick(rng, [F32, F32, I32]))
    g.mark_outputs(g.add_op(kind, [x, g.add_constant("multiples", multiples)]))


def build_transpose(rng: np.random.Generator, kind: str, g: GraphBuilder) -> None:
    shape = random_shape(rng, int(rng.integers(1, 6)))
    perm = [int(p) - (len(shape) if chance(rng, 0.2) else 0) for p in rng.permutation(len(shape))]
    x = g.add_input("x", shape, pick(rng, [F32, F32, I32]))
    g.mark_outputs(g.add_op(kind, [x, g.add_constant("perm", np.array(perm, np.int32))]))


def build_softmax(rng: np.random.Generator, kind: str, g: GraphBuilder) -> None:
    x = g.add_input("x", random_shape(rng, int(rng.integers(1, 5))))
    g.mark_outputs(g.add_op(kind, [x], beta=float(pick(rng, [1.0, 1.0, 0.5, 2.0, rng.uniform(0.01, 10)]))))


def build_unary(rng: np.random.Generator, kind: str, g: GraphBuilder) -> None:
    g.mark_outputs(g.add_op(kind, [g.add_input("x", random_shape(rng, int(rng.integers(0, 5))))]))


SEED_BUILDERS: dict[str, Callable[[np.random.Generator, str, GraphBuilder], None]] = {
    **dict.fromkeys(("ADD", "SUB", "MUL"), build_binary),
    **dict.fromkeys(("CONV_2D", "DEPTHWISE_CONV_2D"), build_conv),
    **dict.fromkeys(("AVERAGE_POOL_2D", "MAX_POOL_2D"), build_pool),
    "MEAN": build_mean,
    **dict.fromkeys(("ARG_MAX", "ARG_MIN"), build_arg),
    **dict.fromkeys(("RESIZE_BILINEAR", "RESIZE_NEAREST_NEIGHBOR"), build_resize),
    "CONCATENATION": build_concatenation,
    "RESHAPE": build_reshape,
    "SQUEEZE": build_squeeze,
    "EXPAND_DIMS": build_expand_dims,
    "PAD": build_pad,
    "STRIDED_SLICE": build_strided_slice,
    "SLICE": build_slice,
    "TILE": build_tile,
    "TRANSPOSE": build_transpose,
    "SOFTMAX": build_softmax,
    **dict.fromkeys(("LOGISTIC", "RELU", "RELU6", "RELU_N1_TO_1", "TANH"), build_unary),
}
BUILDER_ATTEMPTS = 30


def builder_kinds() -> list[str]:
    """Every supported kind we can build; a kind the engine gains without a builder is an error."""
    missing = sorted(set(SUPPORTED_OPS) - set(SEED_BUILDERS))
    if missing:
        raise RuntimeError(f"no fuzz seed builder for {', '.join(missing)}: add one to SEED_BUILDERS")
    return sorted(SEED_BUILDERS)


class FuzzBuilder(GraphBuilder):
    """A GraphBuilder that survives the engine's bugs: when a preparer raises anything but
    ModelError while inferring an op's output, the output is declared with the first input's
    shape and dtype instead and the error counted in `notes`, so the model is still written and
    a child meets the same error in a case, with a reproducer."""

    def __init__(self, notes: Counter) -> None:
        super().__init__()
        self.notes = notes
        self.engine_failed = False

    def add_op(self, kind: str, inputs: Any, options: Any = None, **fields: Any) -> int:
        try:
            return super().add_op(kind, inputs, options, **fields)
        except ModelError:
            raise
        except Exception as error:  # noqa: BLE001 - a preparer bug, handed on to the fuzz case
            self.notes[f"builder {kind}: {type(error).__name__}: {normalise_message(str(error))}"] += 1
            self.engine_failed = True
            first = self.tensors[inputs[0]]
            return super().add_op(kind, inputs, options, output_shape=first.shape, output_dtype=first.dtype, **fields)


def build_single_op_model(rng: np.random.Generator, kind: str, notes: Counter) -> Model:
    """A one-op model of this kind that npdeeplab loads; random parameters it refuses (in the
    builder's preparer, or in the graph-level checks of loading) are drawn again."""
    for _ in range(BUILDER_ATTEMPTS):
        g = FuzzBuilder(notes)
        try:
            SEED_BUILDERS[kind](rng, kind, g)
            model = g.build()
            if not g.engine_failed:  # loading prepares and plans memory, runs no kernel: safe before forking
                npdeeplab.Interpreter(model=model, backend="numpy")
        except ModelError:
            continue
        return model
    raise RuntimeError(f"could not build a valid {kind} model in {BUILDER_ATTEMPTS} attempts")


def describe_model(model: Model) -> str:
    graph = model.main
    kinds = Counter(op.kind for op in graph.ops)
    ops = ", ".join(kinds) if len(kinds) <= 3 else f"{len(graph.ops)} ops"
    inputs = ", ".join(f"{list(graph.tensors[i].shape)} {graph.tensors[i].dtype.name}" for i in graph.inputs[:3])
    return f"{ops}; inputs {inputs or 'none'}"


@dataclass
class SeedFile:
    name: str
    data: bytes
    model: Model


def shared_models_folder() -> Path:
    for candidate in os.environ.get("NPDEEPLAB_MODELS", "").split(os.pathsep):
        if candidate and (Path(candidate) / FLOAT_SEED).is_file():
            return Path(candidate)
    return SHARED_MODELS


def load_seed_files(folder: Path) -> dict[str, SeedFile]:
    seeds = {}
    for name in (FLOAT_SEED, *OTHER_SEEDS):
        path = folder / name
        if path.is_file():
            data = path.read_bytes()
            seeds[name] = SeedFile(name, data, load_model(data))
    if FLOAT_SEED not in seeds:
        raise FileNotFoundError(f"{folder / FLOAT_SEED} not found (give --models)")
    return seeds


# --- the flatbuffer's fields, for byte mutations at real offsets -------------------------------------

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


# --- byte-level mutations ------------------------------------------------------------------------------

INTERESTING = {
    1: (0, 1, 2, 0x7F, 0x80, 0xFE, 0xFF),
    2: (0, 1, 2, 4, 0x7FFF, 0x8000, 0xFFFF),
    4: (0, 1, 2, 3, 0xFFFFFFFF, 0x7FFFFFFF, 0x80000000, 0x7FFFFFFE, 255, 256, 60000, 65536, 1 << 24),
    8: (0, 1, 0xFFFFFFFFFFFFFFFF, 0x7FFFFFFFFFFFFFFF, 1 << 32, 1 << 40),
}
PACK = {1: "<B", 2: "<H", 4: "<I", 8: "<Q"}


def pick_offset(rng: np.random.Generator, data: bytearray, fields: Fields, width: int) -> tuple[int, int, str]:
    """(offset, width, label): a real field 80% of the time, else a random (aligned) offset."""
    if fields and chance(rng, 0.8):
        f = pick(rng, fields)
        if f.offset + f.width <= len(data):
            return f.offset, f.width, f.label
    if len(data) < width:
        width = 1
    offset = int(rng.integers(0, max(1, len(data) - width + 1))) // width * width
    return offset, width, "random offset"


def interesting_value(rng: np.random.Generator, data: bytearray, offset: int, width: int) -> int:
    current = struct.unpack_from(PACK[width], data, offset)[0]
    mask = (1 << (8 * width)) - 1
    related = [current + 1, current - 1, current + 4, current * 2, len(data), len(data) - offset]
    related.append(int(rng.integers(0, 1024)))
    return pick(rng, list(INTERESTING[width]) * 2 + related) & mask


def flip_bit(rng: np.random.Generator, data: bytearray, fields: Fields) -> str:
    offset, width, label = pick_offset(rng, data, fields, 1)
    bit = int(rng.integers(8 * width))
    data[offset + bit // 8] ^= 1 << (bit % 8)
    return f"flip bit {bit} at {offset} ({label})"


def set_integer(rng: np.random.Generator, data: bytearray, fields: Fields) -> str:
    offset, width, label = pick_offset(rng, data, fields, pick(rng, [1, 4, 4]))
    value = interesting_value(rng, data, offset, width)
    old = struct.unpack_from(PACK[width], data, offset)[0]
    struct.pack_into(PACK[width], data, offset, value)
    return f"set {width}-byte {old:#x} -> {value:#x} at {offset} ({label})"


def set_random_bytes(rng: np.random.Generator, data: bytearray, fields: Fields) -> str:
    offset, _, label = pick_offset(rng, data, fields, 1)
    count = min(int(rng.integers(1, 9)), len(data) - offset)
    data[offset : offset + count] = rng.integers(0, 256, count, dtype=np.uint8).tobytes()
    return f"set {count} random bytes at {offset} ({label})"


def truncate(rng: np.random.Generator, data: bytearray, fields: Fields) -> str:
    if fields and chance(rng, 0.5):
        length = pick(rng, fields).offset + int(rng.integers(0, 4))
    else:
        length = int(rng.integers(0, len(data) + 1)) if chance(rng, 0.5) else len(data) - int(rng.integers(1, 33))
    length = max(0, min(length, len(data)))
    del data[length:]
    return f"truncate to {length} bytes"


def insert_or_delete(rng: np.random.Generator, data: bytearray, fields: Fields) -> str:
    offset, _, label = pick_offset(rng, data, fields, 1)
    count = pick(rng, [1, 2, 4, 8, int(rng.integers(1, 256))])
    if chance(rng, 0.5):
        inserted = rng.integers(0, 256, count, dtype=np.uint8).tobytes() if chance(rng, 0.5) else bytes(count)
        data[offset:offset] = inserted
        return f"insert {count} bytes at {offset} ({label})"
    del data[offset : offset + count]
    return f"delete {count} bytes at {offset} ({label})"


def copy_block(rng: np.random.Generator, data: bytearray, fields: Fields) -> str:
    source, _, _ = pick_offset(rng, data, fields, 4)
    target, _, label = pick_offset(rng, data, fields, 4)
    count = min(pick(rng, [4, 8, 16, 64]), len(data) - source, len(data) - target)
    data[target : target + count] = data[source : source + count]
    return f"copy {count} bytes from {source} to {target} ({label})"


BYTE_MUTATORS = {flip_bit: 3, set_integer: 6, set_random_bytes: 2, truncate: 1, insert_or_delete: 1, copy_block: 1}


def mutate_bytes(rng: np.random.Generator, data: bytes) -> tuple[bytes, list[str]]:
    """One to four byte mutations; offsets are picked among the unmutated file's fields."""
    fields = field_map(data)
    mutated = bytearray(data)
    steps = []
    for _ in range(int(min(4, rng.geometric(0.55)))):
        if not mutated:
            break
        mutator = weighted(rng, BYTE_MUTATORS)
        steps.append(f"bytes: {mutator(rng, mutated, fields)}")
    return bytes(mutated), steps


def splice(rng: np.random.Generator, first: bytes, second: bytes) -> tuple[bytes, str]:
    """A head of one file and a tail of the other, or a block of the second pasted into the first."""
    i, j = int(rng.integers(0, len(first) + 1)), int(rng.integers(0, len(second) + 1))
    if chance(rng, 0.5):
        return first[:i] + second[j:], f"splice: first[:{i}] + second[{j}:]"
    count = int(rng.integers(1, 257))
    block = second[j : j + count]
    return first[:i] + block + first[i + len(block) :], f"splice: {len(block)} bytes of second at {j} over first at {i}"


# --- structure-aware mutations of the IR ----------------------------------------------------------

DIM_VALUES = (0, 0, 0, 1, 1, 2, 3, 5, 16, 255, 257, 4097, 60000, 65536, 2**31 - 1)
INT_VALUES = (0, 0, 1, -1, 2, -2, 3, 7, 60000, 2**31 - 1, -(2**31), 2**16)
OPTION_INTS = (0, 0, -1, -2, 1, 2, 3, 4, 7, 32767, 32768, 60000, 2**31 - 1, -(2**31))
FLOAT_SPECIALS = (np.nan, np.inf, -np.inf, 3.4e38, -3.4e38, 1e-45, 0.0, -0.0)
FLOAT_OPTIONS = (0.0, -1.0, np.nan, np.inf, -np.inf, 1e30, 1e-30)
OTHER_KINDS = ("QUANTIZE", "DEQUANTIZE", "HARD_SWISH", "GATHER", "CUSTOM:FuzzOp", "UNKNOWN_BUILTIN_250",
               "UNKNOWN_BUILTIN_9999")
DTYPES = tuple(TENSOR_DTYPES.values())
FOREIGN_OPTIONS = (None, model_options.AddOptions(), model_options.Conv2DOptions(), model_options.Pool2DOptions())
Mutation = tuple[Model, str] | None


def replace_graph(model: Model, **changes: Any) -> Model:
    return dataclasses.replace(model, subgraphs=(dataclasses.replace(model.main, **changes), *model.subgraphs[1:]))


def replace_tensor(model: Model, index: int, **changes: Any) -> Model:
    tensors = list(model.main.tensors)
    tensors[index] = dataclasses.replace(tensors[index], **changes)
    return replace_graph(model, tensors=tuple(tensors))


def replace_op(model: Model, position: int, **changes: Any) -> Model:
    ops = list(model.main.ops)
    ops[position] = dataclasses.replace(ops[position], **changes)
    return replace_graph(model, ops=tuple(ops))


def tensor_label(tensor: TensorInfo) -> str:
    return f"tensor {tensor.index} {tensor.name[:40]!r} {list(tensor.shape)} {tensor.dtype.name}"


def pick_tensor(rng: np.random.Generator, model: Model, constant: bool | None = None) -> TensorInfo | None:
    tensors = [t for t in model.main.tensors if constant is None or t.is_constant == constant]
    return pick(rng, tensors) if tensors else None


def pick_op(rng: np.random.Generator, model: Model) -> tuple[int, OpNode] | None:
    if not model.main.ops:
        return None
    position = int(rng.integers(len(model.main.ops)))
    return position, model.main.ops[position]


def any_tensor_index(rng: np.random.Generator, model: Model) -> int:
    """A tensor index: usually a real one (a constant, a graph input, anything), sometimes out of range."""
    graph = model.main
    count = len(graph.tensors)
    constants = [t.index for t in graph.tensors if t.is_constant]
    choices = [int(rng.integers(count))] * 4 + list(graph.inputs[:1]) * 2 + constants[:1] * 2
    choices += [-1, count, count + 7, 2**31 - 1, -2]
    return pick(rng, choices)


def input_dims(model: Model) -> list[int]:
    """The first graph input's dimensions and their neighbours: values an index constant may meet."""
    inputs = graph_inputs(model)
    return [d + k for d in inputs[0].shape for k in (-1, 0, 1)] if inputs else []


def graph_inputs(model: Model) -> list[TensorInfo]:
    """The graph inputs that are real tensors (a mutation may have put an index out of range)."""
    tensors = model.main.tensors
    return [tensors[i] for i in model.main.inputs if 0 <= i < len(tensors)]


def mutate_input_shape(rng: np.random.Generator, model: Model) -> Mutation:
    """A graph input's dimension changed; every activation made dynamic so that the new shape flows."""
    inputs = graph_inputs(model)
    if not inputs:
        return None
    tensor = pick(rng, inputs)
    if not tensor.shape:
        return None
    shape = list(tensor.shape)
    for axis in rng.choice(len(shape), min(len(shape), pick(rng, [1, 1, 1, 2])), replace=False):
        shape[axis] = pick(rng, DIM_VALUES)
    mutated = replace_tensor(model, tensor.index, shape=tuple(shape), shape_signature=tuple(shape))
    return dynamic_signatures(mutated), f"{tensor_label(tensor)}: shape -> {shape}, activations dynamic"


def mutate_tensor_shape(rng: np.random.Generator, model: Model) -> Mutation:
    tensor = pick_tensor(rng, model, constant=False if chance(rng, 0.8) else None)
    if tensor is None:
        return None
    shape = list(tensor.shape)
    what = pick(rng, ["dim", "dim", "dim", "append", "drop", "scalar"])
    if what == "dim" and shape:
        axis = int(rng.integers(len(shape)))
        shape[axis] = pick(rng, DIM_VALUES)
    elif what == "append":
        shape.insert(int(rng.integers(len(shape) + 1)), pick(rng, [1, 1, 2, 0]))
    elif what == "drop" and shape:
        del shape[int(rng.integers(len(shape)))]
    else:
        shape = []
    signature = tuple(shape) if chance(rng, 0.7) else tensor.shape_signature
    mutated = replace_tensor(model, tensor.index, shape=tuple(shape), shape_signature=signature)
    return mutated, f"{tensor_label(tensor)}: shape -> {shape} (signature {list(signature)})"


def mutate_constant_shape(rng: np.random.Generator, model: Model) -> Mutation:
    """A constant given a new small shape and matching random data (weights with 1 channel, 3 taps...)."""
    tensor = pick_tensor(rng, model, constant=True)
    if tensor is None:
        return None
    shape = list(tensor.shape) or [1]
    shape[int(rng.integers(len(shape)))] = pick(rng, [1, 1, 2, 3, 5])
    if chance(rng, 0.2):
        shape.append(1)
    data = random_array(rng, tuple(shape), tensor.dtype)
    if tensor.dtype.kind in "iu":
        data = rng.integers(-3, 6, tuple(shape)).astype(tensor.dtype)
    data.flags.writeable = False
    mutated = replace_tensor(model, tensor.index, shape=tuple(shape), shape_signature=tuple(shape), data=data)
    return dynamic_signatures(mutated), f"{tensor_label(tensor)}: constant reshaped to {shape}, activations dynamic"


def mutate_dtype(rng: np.random.Generator, model: Model) -> Mutation:
    tensor = pick_tensor(rng, model)
    if tensor is None:
        return None
    dtype = pick(rng, DTYPES)
    data = tensor.data
    if data is not None and data.nbytes % dtype.itemsize == 0 and data.size:
        data = np.frombuffer(data.tobytes(), dtype)  # the same bytes, reinterpreted
    return replace_tensor(model, tensor.index, dtype=dtype, data=data), f"{tensor_label(tensor)}: dtype -> {dtype.name}"


def mutate_quantization(rng: np.random.Generator, model: Model) -> Mutation:
    tensor = pick_tensor(rng, model)
    if tensor is None:
        return None
    channels = tensor.shape[-1] if tensor.shape else 1
    length = pick(rng, [1, 1, channels, channels + 1, max(0, channels - 1), 2])
    scale = np.full(length, pick(rng, [0.0, np.nan, -1.0, np.inf, 1e-45, 0.5, 1e38]), np.float32)
    zero_point = np.full(length, pick(rng, [0, 0, 300, -129, 2**40, -(2**40), 127]), np.int64)
    if chance(rng, 0.3):
        zero_point = zero_point[: max(0, length - 1)]
    dimension = pick(rng, [0, 0, len(tensor.shape) - 1, len(tensor.shape), -1, 100, 2**31 - 1])
    if chance(rng, 0.1):
        return replace_tensor(model, tensor.index, quantization=None), f"{tensor_label(tensor)}: quantization removed"
    quantization = Quantization(scale, zero_point, dimension)
    description = f"{tensor_label(tensor)}: quantization scale {scale[:2]} x{length}, zero point {zero_point[:2]}"
    return replace_tensor(model, tensor.index, quantization=quantization), f"{description}, dimension {dimension}"


def mutate_constant_values(rng: np.random.Generator, model: Model) -> Mutation:
    """Non-finite weights, or interesting integers in an index constant (axes, sizes, paddings...)."""
    tensor = pick_tensor(rng, model, constant=True)
    if tensor is None or tensor.data is None or not tensor.data.size:
        return None
    data = np.array(tensor.data, copy=True).reshape(-1)
    count = data.size if chance(rng, 0.1) else int(rng.integers(1, min(4, data.size) + 1))
    where = rng.choice(data.size, count, replace=False)
    if data.dtype.kind == "f":
        value = pick(rng, FLOAT_SPECIALS)
    elif data.dtype.kind in "iu":
        info = np.iinfo(data.dtype)
        value = int(np.clip(pick(rng, list(INT_VALUES) + input_dims(model)), info.min, info.max))
    else:
        value = 1
    with np.errstate(over="ignore", invalid="ignore"):
        data[where] = value  # 3.4e38 in a float16 constant is inf
    data = data.reshape(tensor.data.shape)
    data.flags.writeable = False
    mutated = replace_tensor(model, tensor.index, data=data)
    if chance(rng, 0.6):
        mutated = dynamic_signatures(mutated)
    return mutated, f"{tensor_label(tensor)}: {count} values -> {value}"


def mutate_op_inputs(rng: np.random.Generator, model: Model) -> Mutation:
    found = pick_op(rng, model)
    if found is None:
        return None
    position, op = found
    inputs = list(op.inputs)
    what = pick(rng, ["swap", "set", "set", "set", "drop", "append", "all-first"])
    if what == "swap" and len(inputs) > 1:
        i, j = rng.choice(len(inputs), 2, replace=False)
        inputs[i], inputs[j] = inputs[j], inputs[i]
    elif what == "set" and inputs:
        inputs[int(rng.integers(len(inputs)))] = any_tensor_index(rng, model)
    elif what == "drop" and inputs:
        inputs.pop()
    elif what == "all-first" and inputs:
        inputs = [inputs[0]] * len(inputs)
    else:
        inputs.append(any_tensor_index(rng, model))
    return replace_op(model, position, inputs=tuple(inputs)), f"{op.describe()}: inputs {list(op.inputs)} -> {inputs}"


def mutate_op_outputs(rng: np.random.Generator, model: Model) -> Mutation:
    found = pick_op(rng, model)
    if found is None:
        return None
    position, op = found
    outputs = list(op.outputs)
    what = pick(rng, ["set", "set", "own-input", "append", "empty"])
    if what == "set" and outputs:
        outputs[int(rng.integers(len(outputs)))] = any_tensor_index(rng, model)
    elif what == "own-input" and outputs and [i for i in op.inputs if i != -1]:
        outputs[0] = pick(rng, [i for i in op.inputs if i != -1])
    elif what == "empty":
        outputs = []
    else:
        outputs.append(pick(rng, outputs) if outputs and chance(rng, 0.5) else any_tensor_index(rng, model))
    description = f"{op.describe()}: outputs {list(op.outputs)} -> {outputs}"
    return replace_op(model, position, outputs=tuple(outputs)), description


def mutated_option_value(rng: np.random.Generator, name: str, value: Any, kind: str) -> Any:
    if name in model_options.ENUM_FIELDS:
        names = list(model_options.ENUM_FIELDS[name].values())
        return pick(rng, names) if chance(rng, 0.5) else f"UNKNOWN({pick(rng, [6, 7, 17, 100, 127, -1, -128])})"
    if isinstance(value, bool):
        return not value
    if isinstance(value, float):
        return float(pick(rng, FLOAT_OPTIONS))
    if isinstance(value, tuple):
        values = list(value)
        if values and chance(rng, 0.6):
            values[int(rng.integers(len(values)))] = pick(rng, OPTION_INTS)
        elif chance(rng, 0.5):
            values.append(pick(rng, [1, -1, 0, 2]))
        else:
            values = []
        return tuple(values)
    if name.endswith("_mask"):
        return pick(rng, [int(rng.integers(0, 16)), int(rng.integers(0, 256)), -1, 2**31 - 1, 1 << 30])
    return pick(rng, OPTION_INTS)


def mutate_op_options(rng: np.random.Generator, model: Model) -> Mutation:
    ops = [(p, op) for p, op in enumerate(model.main.ops) if dataclasses.is_dataclass(op.options)]
    if not ops or chance(rng, 0.1):
        found = pick_op(rng, model)
        if found is None:
            return None
        position, op = found
        options = pick(rng, FOREIGN_OPTIONS)
        return replace_op(model, position, options=options), f"{op.describe()}: options -> {options}"
    position, op = pick(rng, ops)
    changes = {}
    for _ in range(int(rng.integers(1, 3))):
        f = pick(rng, dataclasses.fields(op.options))
        changes[f.name] = mutated_option_value(rng, f.name, getattr(op.options, f.name), op.kind)
    mutated = replace_op(model, position, options=dataclasses.replace(op.options, **changes))
    if chance(rng, 0.7):
        mutated = dynamic_signatures(mutated)
    return mutated, f"{op.describe()}: options {changes}"


def mutate_op_kind(rng: np.random.Generator, model: Model) -> Mutation:
    found = pick_op(rng, model)
    if found is None:
        return None
    position, op = found
    kind = pick(rng, SUPPORTED_OPS) if chance(rng, 0.8) else pick(rng, OTHER_KINDS)
    options = op.options
    if chance(rng, 0.5):
        cls = model_options.OPTIONS_FOR_KIND.get(kind)
        options = cls() if cls is not None else None
    mutated = dynamic_signatures(replace_op(model, position, kind=kind, options=options))
    return mutated, f"{op.describe()}: kind -> {kind}, options {type(options).__name__}"


def mutate_op_order(rng: np.random.Generator, model: Model) -> Mutation:
    ops = list(model.main.ops)
    if not ops:
        return None
    what = pick(rng, ["swap", "duplicate", "delete"])
    if what == "swap" and len(ops) > 1:
        i, j = (int(v) for v in rng.choice(len(ops), 2, replace=False))
        ops[i], ops[j] = ops[j], ops[i]
        description = f"ops {i} and {j} swapped"
    elif what == "duplicate":
        i = int(rng.integers(len(ops)))
        ops.insert(i + 1, ops[i])
        description = f"op {i} duplicated"
    else:
        i = int(rng.integers(len(ops)))
        del ops[i]
        description = f"op {i} deleted"
    ops = [dataclasses.replace(op, index=k) for k, op in enumerate(ops)]
    return replace_graph(model, ops=tuple(ops)), description


def mutate_graph_io(rng: np.random.Generator, model: Model) -> Mutation:
    graph = model.main
    role = pick(rng, ["inputs", "outputs"])
    indices = list(getattr(graph, role))
    what = pick(rng, ["add", "add", "set", "remove", "empty", "duplicate"])
    if what == "set" and indices:
        indices[int(rng.integers(len(indices)))] = any_tensor_index(rng, model)
    elif what == "remove" and indices:
        del indices[int(rng.integers(len(indices)))]
    elif what == "empty":
        indices = []
    elif what == "duplicate" and indices:
        indices.append(indices[0])
    else:
        indices.append(any_tensor_index(rng, model))
    return replace_graph(model, **{role: tuple(indices)}), f"graph {role} {list(getattr(graph, role))} -> {indices}"


def mutate_signatures(rng: np.random.Generator, model: Model) -> Mutation:
    graph = model.main

    def names(indices: tuple[int, ...], prefix: str) -> dict[str, int]:
        mapping = {f"{prefix}{k}": int(i) for k, i in enumerate(indices)}
        if mapping and chance(rng, 0.7):
            mapping[pick(rng, list(mapping))] = any_tensor_index(rng, model)
        if chance(rng, 0.2):
            mapping[f"{prefix}extra"] = any_tensor_index(rng, model)
        return mapping

    subgraph = pick(rng, [0, 0, 0, 1, -1, 2**31 - 1])
    signature = SignatureDef(pick(rng, ["serving_default", "", "run"]), subgraph, names(graph.inputs, "in"),
                             names(graph.outputs, "out"))
    signatures = model.signatures + (signature,) * pick(rng, [1, 1, 2])
    description = f"signature {signature.key!r} of subgraph {subgraph}: {signature.inputs} -> {signature.outputs}"
    return dataclasses.replace(model, signatures=signatures), description


def mutate_subgraphs(rng: np.random.Generator, model: Model) -> Mutation:
    what = pick(rng, ["none", "second", "no-ops"])
    if what == "none":
        return dataclasses.replace(model, subgraphs=()), "no subgraphs"
    if what == "second":
        second = dataclasses.replace(model.main, index=len(model.subgraphs), name="second")
        return dataclasses.replace(model, subgraphs=(*model.subgraphs, second)), "a second subgraph"
    return replace_graph(model, ops=()), "subgraph 0 has no ops"


def mutate_misc(rng: np.random.Generator, model: Model) -> Mutation:
    """An op version, a variable tensor, a shape signature that disagrees with the shape."""
    what = pick(rng, ["version", "variable", "signature"])
    if what == "version":
        found = pick_op(rng, model)
        if found is None:
            return None
        version = pick(rng, [0, -1, 2**31 - 1, 99])
        return replace_op(model, found[0], version=version), f"{found[1].describe()}: version -> {version}"
    tensor = pick_tensor(rng, model)
    if tensor is None:
        return None
    if what == "variable":
        return replace_tensor(model, tensor.index, is_variable=True), f"{tensor_label(tensor)}: is_variable"
    signature = tuple(pick(rng, [-1, -1, 0, d, d + 1]) for d in tensor.shape) + ((-1,) if chance(rng, 0.2) else ())
    description = f"{tensor_label(tensor)}: signature {list(signature)}"
    return replace_tensor(model, tensor.index, shape_signature=signature), description


def dynamic_signatures(model: Model) -> Model:
    """Every activation's dimensions marked dynamic (-1): prepare then keeps the shapes it infers."""
    keep = {t.index for t in model.main.tensors if t.is_constant} | set(model.main.inputs)
    tensors = tuple(
        t if t.index in keep else dataclasses.replace(t, shape_signature=(-1,) * len(t.shape))
        for t in model.main.tensors
    )
    return replace_graph(model, tensors=tensors)


STRUCTURE_MUTATORS: dict[Callable[[np.random.Generator, Model], Mutation], float] = {
    mutate_input_shape: 6,
    mutate_tensor_shape: 2,
    mutate_constant_shape: 3,
    mutate_dtype: 1.5,
    mutate_quantization: 1,
    mutate_constant_values: 4,
    mutate_op_inputs: 2,
    mutate_op_outputs: 1,
    mutate_op_options: 5,
    mutate_op_kind: 2,
    mutate_op_order: 1,
    mutate_graph_io: 1,
    mutate_signatures: 1.5,
    mutate_subgraphs: 0.3,
    mutate_misc: 1,
}


def mutate_structure(rng: np.random.Generator, model: Model) -> tuple[Model, list[str]]:
    steps = []
    for _ in range(int(min(3, rng.geometric(0.6)))):
        if not model.subgraphs:
            break
        for _attempt in range(10):
            mutator = weighted(rng, STRUCTURE_MUTATORS)
            result = mutator(rng, model)
            if result is not None:
                model, description = result
                steps.append(f"structure: {mutator.__name__[len('mutate_'):]}: {description}")
                break
    return model, steps


# --- cases ------------------------------------------------------------------------------------------


@dataclass
class Case:
    seed: int
    number: int
    strategy: str
    data: bytes
    input_seed: int
    description: list[str] = field(default_factory=list)
    skipped: str = ""  # why no model was made (a generator error)

    @property
    def source(self) -> str:
        """The seed it was made from: "builder CONV_2D", "shared model <file>"."""
        return self.description[0].split(": ")[1] if self.description else ""

    @property
    def name(self) -> str:
        return f"{self.seed}-{self.number:06d}"


class CaseGenerator:
    """Makes case `number` of a run with `seed`, the same every time."""

    def __init__(self, seeds: dict[str, SeedFile], seed: int) -> None:
        self.seeds = seeds
        self.seed = seed
        self.kinds = builder_kinds()
        self.builder_notes: Counter = Counter()  # engine errors met while building seeds
        self.writer_refusals: Counter = Counter()  # structure mutations the writer would not write

    def make(self, number: int) -> Case:
        rng = np.random.default_rng([self.seed, number])
        strategy = weighted(rng, STRATEGY_WEIGHTS)
        case = Case(self.seed, number, strategy, b"", int(rng.integers(2**31)))
        try:
            case.data = self.generate(rng, case)
        except Exception as error:  # noqa: BLE001 - reported as a skipped case, with the reason
            case.skipped = f"{type(error).__name__}: {error}\n{traceback.format_exc()}"
        return case

    def generate(self, rng: np.random.Generator, case: Case) -> bytes:
        family, _, mutation = case.strategy.partition("+")
        if family == "splice":
            first, first_label = self.source(rng, "builder")
            second, second_label = self.source(rng, pick(rng, ["builder", "builder", "seed", "shared"]))
            data, description = splice(rng, first[0], second[0])
            case.description += [f"seed: {first_label}", f"second: {second_label}", description]
            return data
        (data, model), label = self.source(rng, family)
        case.description.append(f"seed: {label}")
        if mutation == "structure":
            return self.structure_case(rng, model, data, case)
        if mutation == "bytes":
            data, steps = mutate_bytes(rng, data)
            case.description += steps
        return data

    def source(self, rng: np.random.Generator, family: str) -> tuple[tuple[bytes, Model], str]:
        """(bytes, IR) of a seed model of this family, and its description."""
        if family == "builder":
            kind = pick(rng, self.kinds)
            model = build_single_op_model(rng, kind, self.builder_notes)
            return (write_model(model), model), f"builder {kind}: {describe_model(model)}"
        others = [seed for name, seed in self.seeds.items() if name != FLOAT_SEED] or [self.seeds[FLOAT_SEED]]
        seed = self.seeds[FLOAT_SEED] if family == "seed" else pick(rng, others)
        return (seed.data, seed.model), f"shared model {seed.name}"

    def structure_case(self, rng: np.random.Generator, model: Model, data: bytes, case: Case) -> bytes:
        mutated, steps = mutate_structure(rng, model)
        case.description += steps
        try:
            return write_model(mutated)
        except Exception as error:  # noqa: BLE001 - the writer's refusals are counted, then bytes mutated
            refusal = f"{type(error).__name__}: {normalise_message(str(error))}"
            self.writer_refusals[refusal] += 1
            case.description.append(f"writer refused ({type(error).__name__}: {error}); byte mutation instead")
            data, steps = mutate_bytes(rng, data)
            case.description += steps
            return data


# --- the check a child runs ------------------------------------------------------------------------------


@dataclass
class BackendRun:
    outputs: list[np.ndarray] | None = None
    refused: tuple[str, str, str] | None = None  # (exception type, message, stage)


def model_inputs(details: list[dict[str, Any]], input_seed: int) -> list[np.ndarray]:
    rng = np.random.default_rng(input_seed)
    return [random_array(rng, tuple(int(d) for d in detail["shape"]), detail["dtype"]) for detail in details]


def read_details(interpreter: npdeeplab.Interpreter) -> None:
    """LiteRT's introspection API on a loaded model: tensor details and every signature's details."""
    interpreter.get_tensor_details()
    for key in interpreter.get_signature_list():
        runner = interpreter.get_signature_runner(key)
        runner.get_input_details()
        runner.get_output_details()


def run_backend(data: bytes, backend: str, input_seed: int, report: Callable[[dict], None]) -> BackendRun:
    """Load, read the details, allocate, set random inputs, invoke, read outputs; an allowed error
    is a refusal, anything else propagates."""
    stage = ""

    def enter(name: str) -> None:
        nonlocal stage
        stage = name
        report({"stage": f"{backend}: {name}"})

    try:
        enter("load")
        interpreter = npdeeplab.Interpreter(model_content=data, backend=backend)
        enter("details")
        read_details(interpreter)
        enter("allocate_tensors")
        interpreter.allocate_tensors()
        enter("set_tensor")
        details = interpreter.get_input_details()
        for detail, value in zip(details, model_inputs(details, input_seed), strict=True):
            interpreter.set_tensor(detail["index"], value)
        enter("invoke")
        interpreter.invoke()
        enter("get_tensor")
        outputs = [interpreter.get_tensor(d["index"]) for d in interpreter.get_output_details()]
    except ALLOWED_ERRORS as error:
        return BackendRun(refused=(type(error).__name__, str(error), stage))
    return BackendRun(outputs=outputs)


def compare_outputs(expected: list[np.ndarray], got: list[np.ndarray]) -> str | None:
    """None when the numba outputs match the numpy ones; else what differs, in one line."""
    if len(expected) != len(got):
        return f"numpy gives {len(expected)} outputs, numba {len(got)}"
    for k, (e, g) in enumerate(zip(expected, got, strict=True)):
        if e.dtype != g.dtype or e.shape != g.shape:
            return f"output {k}: numpy {e.dtype}{list(e.shape)}, numba {g.dtype}{list(g.shape)}"
        problem = compare_floats(e, g) if e.dtype.kind in "fc" else compare_exact(e, g)
        if problem:
            return f"output {k} ({e.dtype}{list(e.shape)}): {problem}"
    return None


def compare_exact(expected: np.ndarray, got: np.ndarray) -> str | None:
    differ = int(np.count_nonzero(expected != got))
    return f"{differ} of {expected.size} elements differ" if differ else None


def compare_floats(expected: np.ndarray, got: np.ndarray) -> str | None:
    for name, test in (("NaN", np.isnan), ("+Inf", np.isposinf), ("-Inf", np.isneginf)):
        e, g = test(expected.real), test(got.real)
        if not np.array_equal(e, g):
            return f"{name} positions differ ({int(e.sum())} in numpy, {int(g.sum())} in numba)"
    finite = np.isfinite(expected)
    if not finite.any():
        return None
    e, g = expected[finite].astype(np.complex128 if expected.dtype.kind == "c" else np.float64), got[finite]
    scale = max(1.0, float(np.max(np.abs(e))))
    error = float(np.max(np.abs(e - g)))
    if not error <= FLOAT_TOLERANCE * scale:
        return f"max |numba - numpy| = {error:.3g} > {FLOAT_TOLERANCE:g} x {scale:.3g}"
    return None


def judge(runs: dict[str, BackendRun]) -> dict[str, Any]:
    reference, fast = runs["numpy"], runs["numba"]
    if reference.refused and fast.refused:
        if reference.refused[0] != fast.refused[0] or reference.refused[2] != fast.refused[2]:
            return {"outcome": "mismatch", "message": f"numpy refuses ({reference.refused}), numba ({fast.refused})"}
        error, message, stage = reference.refused
        return {"outcome": "refused", "type": error, "message": message, "stage": stage}
    for backend, run in runs.items():
        if run.refused:
            error, message, stage = run.refused
            return {"outcome": "mismatch", "message": f"only {backend} refuses, at {stage}: {error}: {message}"}
    problem = compare_outputs(reference.outputs, fast.outputs)
    if problem:
        return {"outcome": "mismatch", "message": problem}
    shapes = [f"{o.dtype}{list(o.shape)}" for o in reference.outputs]
    return {"outcome": "ok", "message": f"outputs {', '.join(shapes)}"}


def op_outputs(data: bytes, backend: str, input_seed: int) -> list[tuple[int, str, list[np.ndarray], bool]]:
    """Every op's outputs (copied) in one run: (op index, kind, outputs, whether its inputs had NaN/Inf)."""
    interpreter = npdeeplab.Interpreter(model_content=data, backend=backend)
    interpreter.allocate_tensors()
    details = interpreter.get_input_details()
    for detail, value in zip(details, model_inputs(details, input_seed), strict=True):
        interpreter.set_tensor(detail["index"], value)
    calls = []

    def keep(call: npdeeplab.OpCall) -> None:
        odd = any(x is not None and x.dtype.kind in "fc" and not np.isfinite(x).all() for x in call.inputs)
        calls.append((call.index, call.kind, [np.array(o, copy=True) for o in call.outputs], odd))

    interpreter.add_hook(keep)
    interpreter.invoke()
    return calls


def first_divergence(data: bytes, input_seed: int) -> str:
    """The first op whose outputs differ between the backends, e.g. "op 3 (CONV_2D), inputs non-finite"."""
    try:
        reference, fast = (op_outputs(data, backend, input_seed) for backend in BACKENDS)
    except Exception as error:  # noqa: BLE001 - only a diagnosis; the mismatch stands without it
        return f"(rerun with hooks failed: {type(error).__name__})"
    for (index, kind, expected, odd), (_, _, got, _) in zip(reference, fast, strict=False):
        if compare_outputs(expected, got):
            return f"op {index} ({kind})" + (", inputs non-finite" if odd else "")
    return "(no single op differs)"


def check_model(data: bytes, input_seed: int, report: Callable[[dict], None]) -> dict[str, Any]:
    """The contract, run in a child: both backends, then their results judged together; for a
    mismatch of two runs, the first op that differs."""
    runs, errors = {}, []
    for backend in BACKENDS:  # both, even when the first raises: numba may crash where numpy raises
        try:
            runs[backend] = run_backend(data, backend, input_seed, report)
        except Exception as error:  # noqa: BLE001 - a failure; reported at once in case the next backend crashes
            errors.append(exception_result(error, backend))
            report({"failure": errors[-1]})
    if errors:
        return {**errors[0], "also": errors[1:]}
    verdict = judge(runs)
    if verdict["outcome"] == "mismatch" and all(run.outputs is not None for run in runs.values()):
        report({"stage": "finding the first op that differs"})
        verdict["where"] = first_divergence(data, input_seed)
    return verdict


# --- isolation: forked children with a memory limit and a timeout --------------------------------------------

WorkFunction = Callable[[Callable[[dict], None]], dict]
STDERR_TAIL = 20_000
MEMORY_SIGNS = ("MemoryError", "std::bad_alloc", "Cannot allocate memory", "out of memory")
FRAME = re.compile(r'File "([^"]+)", line (\d+) in (\S+)')


def project_frame(frames: Iterable[tuple[str, int, str]]) -> str:
    """The innermost npdeeplab (or kernels) frame of a stack given outermost first, as path:line (function)."""
    found = ""
    for filename, line, function in frames:
        path = Path(filename).resolve()
        if any(path.is_relative_to(d) for d in PROJECT_DIRS):
            found = f"{path.relative_to(REPO)}:{line} ({function})"
    return found


def exception_result(error: BaseException, backend: str = "") -> dict[str, Any]:
    frames = [(f.filename, f.lineno, f.name) for f in traceback.extract_tb(error.__traceback__)]
    return {
        "backend": backend,
        "outcome": "memory" if isinstance(error, MemoryError) else "exception",
        "type": type(error).__name__,
        "message": str(error)[:2000],
        "traceback": "".join(traceback.format_exception(type(error), error, error.__traceback__))[-STDERR_TAIL:],
        "where": project_frame(frames),
    }


def stack_in_dump(stderr: str) -> str:
    """The innermost project frame of the current thread in a faulthandler dump (innermost first)."""
    block = stderr.split("Current thread", 1)[1] if "Current thread" in stderr else stderr
    block = block.split("\n\n", 1)[0] if "Current thread" in stderr else block
    frames = [(m.group(1), int(m.group(2)), m.group(3)) for m in FRAME.finditer(block)]
    return project_frame(reversed(frames))


def write_all(fd: int, data: bytes) -> None:
    while data:
        data = data[os.write(fd, data) :]


def child_main(work: WorkFunction, result_fd: int, timeout: float, memory_limit: int | None) -> None:
    """Runs in the forked child; never returns."""
    try:
        os.dup2(sys.stderr.fileno(), sys.stdout.fileno())
        if memory_limit:
            resource.setrlimit(resource.RLIMIT_AS, (memory_limit, memory_limit))
        resource.setrlimit(resource.RLIMIT_CORE, (0, 0))
        os.environ["NPDEEPLAB_MAX_MEMORY"] = ENGINE_MAX_MEMORY
        faulthandler.enable(all_threads=True)
        faulthandler.dump_traceback_later(max(0.5, timeout - 1.5), exit=False)

        def report(message: dict) -> None:
            write_all(result_fd, (json.dumps(message, default=str) + "\n").encode())

        try:
            result = work(report)
        except BaseException as error:  # noqa: BLE001 - everything is an outcome here
            result = exception_result(error)
        report({"final": result})
    finally:
        os._exit(0)


@dataclass
class Child:
    pid: int
    key: Any
    started: float
    deadline: float
    fds: dict[int, list[bytes]]  # result pipe and stderr pipe -> chunks read so far
    open: set[int]
    result_fd: int
    timed_out: bool = False


def fork_child(key: Any, work: WorkFunction, timeout: float, memory_limit: int | None) -> Child:
    result_read, result_write = os.pipe()
    error_read, error_write = os.pipe()
    sys.stdout.flush()
    sys.stderr.flush()
    pid = os.fork()
    if pid == 0:
        os.close(result_read)
        os.close(error_read)
        os.dup2(error_write, 2)
        child_main(work, result_write, timeout, memory_limit)
    os.close(result_write)
    os.close(error_write)
    now = time.monotonic()
    fds = {result_read: [], error_read: []}
    return Child(pid, key, now, now + timeout, fds, set(fds), result_read)


def child_result(child: Child, status: int) -> dict[str, Any]:
    """What happened to a finished child: its final report, or the timeout or signal that ended it."""
    for fd in child.fds:
        os.close(fd)
    lines = b"".join(child.fds[child.result_fd]).decode("utf-8", "replace").splitlines()
    messages = [json.loads(line) for line in lines if line.startswith("{")]
    stderr = b"".join(b for fd, chunks in child.fds.items() if fd != child.result_fd for b in chunks)
    stderr_text = stderr.decode("utf-8", "replace")[-STDERR_TAIL:]
    stages = [m["stage"] for m in messages if "stage" in m]
    final = next((m["final"] for m in messages if "final" in m), None)
    result: dict[str, Any] = {
        "stage": stages[-1] if stages else "",
        "stderr": stderr_text,
        "also": [m["failure"] for m in messages if "failure" in m],  # a backend's failure before the end
        "seconds": round(time.monotonic() - child.started, 3),
    }
    if child.timed_out:
        result.update(outcome="hang", type="timeout", message=f"no result after {child.deadline - child.started:g} s")
    elif final is not None:
        result.update(final)
    elif os.WIFSIGNALED(status):
        name = signal.Signals(os.WTERMSIG(status)).name
        memory = any(sign in stderr_text for sign in MEMORY_SIGNS)
        result.update(outcome="memory" if memory else "crash", type=name, message=f"killed by {name}")
    else:
        code = os.WEXITSTATUS(status)
        result.update(outcome="crash", type=f"exit {code}", message=f"exited with code {code} and no result")
    if final is None:
        result["where"] = stack_in_dump(stderr_text)
    return result


def read_ready(children: list[Child], wait: float) -> None:
    """Read whatever the children have written, waiting at most `wait` seconds for anything."""
    by_fd = {fd: child for child in children for fd in child.open}
    if not by_fd:
        time.sleep(min(wait, 0.01))
        return
    ready, _, _ = select.select(list(by_fd), [], [], max(0.0, wait))
    for fd in ready:
        chunk = os.read(fd, 1 << 16)
        child = by_fd[fd]
        if chunk:
            child.fds[fd].append(chunk)
        else:
            child.open.discard(fd)


def reap(children: list[Child]) -> list[tuple[Child, dict[str, Any]]]:
    """Children that are done (both pipes closed, or past their deadline and killed)."""
    done = []
    now = time.monotonic()
    for child in children:
        if child.open and now > child.deadline:
            child.timed_out = True
            os.kill(child.pid, signal.SIGKILL)
        if child.open and not child.timed_out:
            continue
        _, status = os.waitpid(child.pid, 0)
        done.append((child, child_result(child, status)))
    return done


def run_pool(
    jobs: Iterable[tuple[Any, WorkFunction | None]],
    workers: int,
    timeout: float = DEFAULT_TIMEOUT,
    memory_limit: int | None = DEFAULT_MEMORY_LIMIT,
) -> Iterator[tuple[Any, dict[str, Any] | None]]:
    """Run each job's work in its own forked child, `workers` at a time; yield (key, result) as they
    finish (not in order). A job without work (a skipped case) is yielded at once with None."""
    pending = iter(jobs)
    running: list[Child] = []
    exhausted = False
    try:
        while running or not exhausted:
            while not exhausted and len(running) < workers:
                job = next(pending, None)
                if job is None:
                    exhausted = True
                elif job[1] is None:
                    yield job[0], None
                else:
                    running.append(fork_child(job[0], job[1], timeout, memory_limit))
            if running:
                read_ready(running, min(c.deadline for c in running) - time.monotonic())
                for child, result in reap(running):
                    running.remove(child)
                    yield child.key, result
    finally:  # interrupted, or the caller stopped early: leave no child behind
        for child in running:
            os.kill(child.pid, signal.SIGKILL)
            os.waitpid(child.pid, 0)
            for fd in child.fds:
                os.close(fd)


def run_isolated(
    work: WorkFunction, timeout: float = DEFAULT_TIMEOUT, memory_limit: int | None = DEFAULT_MEMORY_LIMIT
) -> dict[str, Any]:
    """One piece of work in a forked child; its result (outcome, type, message, where, stage, stderr...)."""
    for _, result in run_pool([(None, work)], 1, timeout, memory_limit):
        return result
    raise AssertionError("run_pool yielded nothing")


# --- preparing this process to fork ------------------------------------------------------------------


def warm_numba_cache() -> None:
    """Compile the Numba kernels into the on-disk cache, in a subprocess: this process must not run them."""
    from npdeeplab.kernels.fast import needs_compiling

    if needs_compiling():
        print("fuzz: compiling the Numba kernels once, in a subprocess...", file=sys.stderr)
        code = "from npdeeplab.runtime.backends import kernel_table; kernel_table('numba')"
        subprocess.run([sys.executable, "-c", code], check=True)


def preload_numba_kernels() -> int:
    """Load every cached signature of every kernel into this process, without running any, with the
    fork-safe threading layer; children then start with the kernels ready. Returns how many."""
    import numba

    from npdeeplab.kernels.fast import jitted_functions

    numba.config.THREADING_LAYER = "forksafe"
    loaded = 0
    for function in jitted_functions():
        try:
            index = function._cache._cache_file._load_index()  # Numba's cache index: signature -> file
        except Exception:  # noqa: BLE001 - private API; without it the children load kernels themselves
            continue
        for key in index:
            if key[0] not in function.overloads:
                function.compile(key[0])
                loaded += 1
    return loaded


# --- running a campaign and reporting it ------------------------------------------------------------------


# A refusal that quotes a Python exception, e.g. "(error: unpack_from ...)" or ", TypeError: bad number ...".
WRAPPED_ERROR = re.compile(r"(?<!\w)(error|[A-Z]\w*(Error|Exception)): ")


@dataclass
class Campaign:
    """The results of a run: counts, and one group per kind of failure with its saved examples."""

    out: Path
    outcomes: Counter = field(default_factory=Counter)
    strategies: Counter = field(default_factory=Counter)
    refused: Counter = field(default_factory=Counter)
    groups: dict[tuple[str, ...], dict[str, Any]] = field(default_factory=dict)
    skipped: list[str] = field(default_factory=list)
    child_seconds: Counter = field(default_factory=Counter)  # strategy -> seconds spent in children
    sources: Counter = field(default_factory=Counter)  # seed model -> cases made from it
    wrapped_refusals: int = 0  # refusals whose message quotes a Python exception (a loader catch-all)
    seconds: float = 0.0

    def record(self, case: Case, result: dict[str, Any] | None) -> None:
        if result is None:
            self.outcomes["skipped"] += 1
            self.skipped.append(f"case {case.name}: {case.skipped.splitlines()[0]}")
            return
        outcome = result["outcome"]
        self.outcomes[outcome] += 1
        self.sources[case.source] += 1
        self.child_seconds[case.strategy] += result["seconds"]
        self.strategies[(case.strategy, outcome if outcome in ("ok", "refused") else "failure")] += 1
        if outcome == "refused":
            self.refused[f"{result['type']}: {normalise_message(result['message'])}"] += 1
            self.wrapped_refusals += bool(WRAPPED_ERROR.search(result["message"]))
        elif outcome in FAILURES:
            path = save_failure(self.out, case, result)
            keys = {group_key(result): result}
            for other in result.get("also", []):  # the other backend failed differently on the same model
                keys.setdefault(group_key(other), other)
            for key, failure in keys.items():
                group = self.groups.setdefault(key, {"count": 0, "examples": [], "result": failure})
                group["count"] += 1
                group["examples"].append(str(path))

    def failures(self) -> list[dict[str, Any]]:
        rows = []
        for key, group in sorted(self.groups.items(), key=lambda item: -item[1]["count"]):
            result = group["result"]
            rows.append({
                "outcome": key[0], "type": result.get("type", ""), "where": result.get("where", ""),
                "stage": result.get("stage", ""), "message": result.get("message", "")[:300],
                "count": group["count"], "example": group["examples"][0], "files": group["examples"][:20],
            })
        return rows


def group_key(result: dict[str, Any]) -> tuple[str, ...]:
    """Failures group by outcome, exception type and innermost npdeeplab frame (or message shape)."""
    outcome, error, where = result["outcome"], result.get("type", ""), result.get("where", "")
    if outcome == "mismatch":  # by the kind of the first op that differs, and what differs
        return outcome, re.sub(r"op \d+ ", "", where), normalise_message(result.get("message", ""), 60)
    if where:
        return outcome, error, where
    if outcome in ("crash", "hang"):
        return outcome, error, result.get("stage", "")
    return outcome, error, normalise_message(result.get("message", ""), 80)


def save_failure(out: Path, case: Case, result: dict[str, Any]) -> Path:
    path = out / f"{result['outcome']}-{case.name}.tflite"
    path.write_bytes(case.data)
    lines = [
        f"outcome: {result['outcome']} ({result.get('type', '')})",
        f"message: {result.get('message', '')}",
        f"where: {result.get('where', '') or '(no npdeeplab frame)'}",
        f"last stage: {result.get('stage', '')}",
        f"case: seed {case.seed}, number {case.number}, strategy {case.strategy}, input seed {case.input_seed}",
        f"replay: python tests/fuzzing.py --replay {path} --input-seed {case.input_seed}",
        "mutations:",
        *(f"  - {step}" for step in case.description),
        "",
        "traceback:",
        result.get("traceback", "") or "(none)",
    ]
    for other in result.get("also", []):
        where = f"{other['outcome']} {other.get('type', '')} at {other.get('where')}"
        lines += [f"also, on {other.get('backend', '?')}: {where}", other.get("traceback", "")]
    lines += ["stderr:", result.get("stderr", "") or "(none)"]
    path.with_suffix(".txt").write_text("\n".join(lines))
    return path


REFRESH_EVERY = 500


def case_jobs(generator: CaseGenerator, numbers: Iterable[int], cases: dict[int, Case]) -> Iterator[tuple[int, Any]]:
    for number in numbers:
        case = generator.make(number)
        cases[number] = case
        if case.skipped:
            yield number, None
        else:
            yield number, (lambda report, c=case: check_model(c.data, c.input_seed, report))


def run_campaign(
    seeds: dict[str, SeedFile],
    seed: int,
    numbers: range,
    out: Path,
    workers: int,
    timeout: float = DEFAULT_TIMEOUT,
    memory_limit: int | None = DEFAULT_MEMORY_LIMIT,
    progress: int = 0,
    refresh: Callable[[], Any] | None = None,
) -> tuple[Campaign, CaseGenerator]:
    """Run cases `numbers`; `refresh` is called every REFRESH_EVERY cases (to load kernels that
    children compiled for new argument types since, so that later children need not)."""
    out.mkdir(parents=True, exist_ok=True)
    generator = CaseGenerator(seeds, seed)
    campaign = Campaign(out)
    cases: dict[int, Case] = {}
    started = time.monotonic()
    results = run_pool(case_jobs(generator, numbers, cases), workers, timeout, memory_limit)
    for done, (number, result) in enumerate(results, 1):
        campaign.record(cases.pop(number), result)
        if refresh is not None and done % REFRESH_EVERY == 0:
            refresh()
        if progress and done % progress == 0:
            rate = done / (time.monotonic() - started)
            counts = ", ".join(f"{k} {v}" for k, v in campaign.outcomes.most_common())
            print(f"fuzz: {done}/{len(numbers)} cases, {rate:.1f}/s: {counts}", file=sys.stderr, flush=True)
    campaign.seconds = time.monotonic() - started
    return campaign, generator




def strategy_table(campaign: Campaign) -> dict[str, dict[str, Any]]:
    table: dict[str, dict[str, Any]] = {}
    for (strategy, bucket), count in sorted(campaign.strategies.items()):
        row = table.setdefault(strategy, {"cases": 0, "ok": 0, "refused": 0, "failure": 0})
        row[bucket] += count
        row["cases"] += count
    for strategy, row in table.items():
        row["child_seconds_mean"] = round(campaign.child_seconds[strategy] / row["cases"], 3)
    return table


def summary(campaign: Campaign, generator: CaseGenerator, cases: int, seed: int, workers: int) -> dict[str, Any]:
    return {
        "cases": cases,
        "seed": seed,
        "workers": workers,
        "seconds": round(campaign.seconds, 1),
        "cases_per_second": round(cases / campaign.seconds, 2) if campaign.seconds else None,
        "outcomes": dict(campaign.outcomes.most_common()),
        "strategies": strategy_table(campaign),
        "sources": dict(campaign.sources.most_common()),
        "refused": dict(campaign.refused.most_common()),
        "refused_wrapping_an_internal_error": campaign.wrapped_refusals,
        "failures": campaign.failures(),
        "writer_refusals": dict(generator.writer_refusals.most_common()),
        "builder_notes": dict(generator.builder_notes.most_common()),
        "skipped": campaign.skipped[:50],
    }


def print_counts(title: str, counts: dict[str, int], top: int) -> None:
    if counts:
        print(f"{title} (top {min(top, len(counts))} of {len(counts)}):")
        for message, count in list(counts.items())[:top]:
            print(f"  {count:6d}  {message}")


def print_summary(report: dict[str, Any], top: int = 25) -> None:
    print(f"npdeeplab fuzz: {report['cases']} cases (seed {report['seed']}), {report['workers']} workers, "
          f"{report['seconds']} s, {report['cases_per_second']} cases/s")
    print("outcomes: " + ", ".join(f"{k} {v}" for k, v in report["outcomes"].items()))
    print("by strategy:       cases      ok  refused  failure  s/case (in the child)")
    for name, row in report["strategies"].items():
        print(f"  {name:17s} {row['cases']:6d}  {row['ok']:6d}  {row['refused']:7d}  {row['failure']:7d}  "
              f"{row['child_seconds_mean']:.3f}")
    sources = ", ".join(f"{name.split(' ')[-1]} {count}" for name, count in report["sources"].items())
    print(f"seeds ({len(report['sources'])}): {sources}")
    print_counts("refused, by message shape", report["refused"], top)
    wrapped = report["refused_wrapping_an_internal_error"]
    print(f"  ({wrapped} refusals quote a Python exception, e.g. 'TypeError: ...')")
    print_counts("writer refusals (became byte mutations)", report["writer_refusals"], top)
    print_counts("engine errors met while building seeds", report["builder_notes"], top)
    for line in report["skipped"][:top]:
        print(f"skipped: {line}")
    failures = report["failures"]
    print(f"failures: {sum(f['count'] for f in failures)} cases in {len(failures)} groups")
    for f in failures:
        print(f"  [{f['outcome']}] {f['count']}x {f['type']} at {f['where'] or f['stage'] or '?'}")
        print(f"        {f['message'][:200]}")
        print(f"        e.g. {f['example']}")


# --- the harness's own checks ----------------------------------------------------------------------------------


def probe_crash(report: Callable[[dict], None]) -> dict:
    ctypes.string_at(0)  # reads address 0: SIGSEGV
    return {"outcome": "ok"}


def probe_abort(report: Callable[[dict], None]) -> dict:
    os.abort()


def probe_hang(report: Callable[[dict], None]) -> dict:
    time.sleep(3600)
    return {"outcome": "ok"}


def probe_memory(report: Callable[[dict], None]) -> dict:
    return {"outcome": "ok", "size": len(bytearray(64 * 2**30))}


def probe_exception(report: Callable[[dict], None]) -> dict:
    return {"outcome": "ok", "value": {}["missing"]}


def probe_exit(report: Callable[[dict], None]) -> dict:
    os._exit(3)


def probe_ok(report: Callable[[dict], None]) -> dict:
    return {"outcome": "ok", "message": "fine"}


PROBES = {
    "crash": (probe_crash, "crash"),
    "abort": (probe_abort, "crash"),
    "hang": (probe_hang, "hang"),
    "memory": (probe_memory, "memory"),
    "exception": (probe_exception, "exception"),
    "exit": (probe_exit, "crash"),
    "ok": (probe_ok, "ok"),
}


def self_test(timeout: float = 3.0) -> dict[str, dict[str, Any]]:
    """Each probe through the same machinery as the cases: what the harness made of it."""
    jobs = [(name, function) for name, (function, _) in PROBES.items()]
    results = {}
    for name, result in run_pool(jobs, workers=len(jobs), timeout=timeout, memory_limit=DEFAULT_MEMORY_LIMIT):
        results[name] = {k: result.get(k, "") for k in ("outcome", "type", "message", "where")}
        results[name]["expected"] = PROBES[name][1]
        results[name]["stack_in_dump"] = "probe_" in result.get("stderr", "")
    return results


# --- command line --------------------------------------------------------------------------------------------


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description="Fuzz npdeeplab's loader and both backends.")
    parser.add_argument("--cases", type=int, default=int(os.environ.get("NPDEEPLAB_FUZZ_CASES", DEFAULT_CASES)),
                        help="number of cases (default: $NPDEEPLAB_FUZZ_CASES, else %(default)s)")
    parser.add_argument("--start", type=int, default=0, help="first case number (to continue or shard a run)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", type=Path, default=Path("/tmp/npdeeplab-fuzz"), help="where failures are saved")
    parser.add_argument("--workers", type=int, default=len(os.sched_getaffinity(0)))
    parser.add_argument("--timeout", type=float, default=DEFAULT_TIMEOUT, help="seconds per case")
    parser.add_argument("--memory-limit", type=float, default=DEFAULT_MEMORY_LIMIT / 2**30, help="GiB of address space")
    parser.add_argument("--models", type=Path, default=None,
                        help="folder of the shared models (default: $NPDEEPLAB_MODELS, else ../shared/models)")
    parser.add_argument("--threading-layer", choices=["forksafe", "default"], default="forksafe",
                        help="forksafe: kernels preloaded here (Numba's workqueue); default: each child loads them")
    parser.add_argument("--summary-json", type=Path, help="also write the summary here as JSON")
    parser.add_argument("--progress", type=int, default=0, help="print a progress line every N cases")
    parser.add_argument("--replay", type=Path, help="run one saved model (as a case would) and print the result")
    parser.add_argument("--input-seed", type=int, default=0, help="with --replay: the case's input seed")
    parser.add_argument("--self-test", action="store_true", help="check that the harness detects crashes, hangs...")
    return parser.parse_args(argv)


def prepare_to_fork(threading_layer: str) -> None:
    os.environ["NPDEEPLAB_MAX_MEMORY"] = ENGINE_MAX_MEMORY
    warm_numba_cache()
    if threading_layer == "forksafe":
        preload_numba_kernels()


def replay(path: Path, input_seed: int, timeout: float, memory_limit: int) -> int:
    data = path.read_bytes()
    result = run_isolated(lambda report: check_model(data, input_seed, report), timeout, memory_limit)
    for key in ("outcome", "type", "message", "where", "stage", "seconds", "traceback", "stderr"):
        if result.get(key):
            print(f"{key}: {result[key]}")
    return 1 if result["outcome"] in FAILURES else 0


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    memory_limit = int(args.memory_limit * 2**30)
    if args.self_test:
        results = self_test()
        print(json.dumps(results, indent=2))
        return 0 if all(r["outcome"] == r["expected"] for r in results.values()) else 1
    prepare_to_fork(args.threading_layer)
    if args.replay:
        return replay(args.replay, args.input_seed, args.timeout, memory_limit)
    seeds = load_seed_files(args.models or shared_models_folder())
    numbers = range(args.start, args.start + args.cases)
    refresh = preload_numba_kernels if args.threading_layer == "forksafe" else None
    campaign, generator = run_campaign(seeds, args.seed, numbers, args.out, args.workers, args.timeout,
                                       memory_limit, args.progress, refresh)
    report = summary(campaign, generator, len(numbers), args.seed, args.workers)
    print_summary(report)
    (args.out / "summary.json").write_text(json.dumps(report, indent=2))
    if args.summary_json:
        args.summary_json.write_text(json.dumps(report, indent=2))
    return 1 if report["failures"] else 0


if __name__ == "__main__":
    sys.exit(main())
