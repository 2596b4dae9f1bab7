"""Seeds: the shared models, and builder-made single-op models.

A builder-made seed is a fresh one-op model of a supported kind with random valid shapes and
options: every kind in npdeeplab.ops.SUPPORTED_OPS has a float builder in SEED_BUILDERS, every
kind in QUANTIZED_PREPARERS a quantized one in quantized_seeds.QUANTIZED_SEED_BUILDERS (as
"q:<kind>"). It is loaded once here (which prepares and plans memory but runs no kernel) so that
what a case mutates is a model npdeeplab accepts.
"""

from __future__ import annotations

import os
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

import npdeeplab
from npdeeplab.errors import ModelError
from npdeeplab.model.builder import GraphBuilder
from npdeeplab.model.ir import Model
from npdeeplab.model.loader import load_model
from npdeeplab.ops import SUPPORTED_OPS, SUPPORTED_QUANTIZED_OPS

from .helpers import (
    ACTIVATIONS,
    broadcast_shapes,
    chance,
    conv_geometry,
    filter_axis,
    fully_connected_geometry,
    normalise_message,
    pick,
    random_array,
    random_shape,
    reduction_axes,
    transpose_conv_geometry,
    window_options,
)
from .quantized_seeds import QUANTIZED_PREFIX, QUANTIZED_SEED_BUILDERS

SHARED_MODELS = Path(npdeeplab.__file__).resolve().parents[2] / "shared" / "models"  # next to the repository
FLOAT_SEED = "deeplabv3_257_mv_gpu.tflite"
OTHER_SEEDS = (
    "deeplabv3_mnv2_dm05_pascal_quant.tflite",
    "selfiesegmentation_mlkit-256x256-2021_01_19-v1215.f16.tflite",
)


F32, I32, I64 = np.dtype(np.float32), np.dtype(np.int32), np.dtype(np.int64)


def build_binary(rng: np.random.Generator, kind: str, g: GraphBuilder) -> None:
    dtype = pick(rng, [F32, F32, F32, I32, I64])
    a_shape, b_shape = broadcast_shapes(rng)
    a = g.add_input("a", a_shape, dtype)
    b = g.add_constant("b", random_array(rng, b_shape, dtype)) if chance(rng, 0.5) else g.add_input(
        "b", b_shape, dtype
    )
    activation = pick(rng, ACTIVATIONS) if dtype == F32 else "NONE"
    g.mark_outputs(g.add_op(kind, [a, b], fused_activation_function=activation))


def build_conv(rng: np.random.Generator, kind: str, g: GraphBuilder) -> None:
    x_shape, weights, options = conv_geometry(rng, kind)
    x = g.add_input("x", x_shape)
    inputs = [x, g.add_constant("w", rng.standard_normal(weights).astype(np.float32))]
    if chance(rng, 0.8):
        cout = weights[filter_axis(kind)]
        inputs.append(g.add_constant("bias", rng.uniform(-1, 1, cout).astype(np.float32)))
    g.mark_outputs(g.add_op(kind, inputs, **options))


def build_pool(rng: np.random.Generator, kind: str, g: GraphBuilder) -> None:
    x = g.add_input("x", (int(rng.integers(1, 3)), int(rng.integers(1, 9)), int(rng.integers(1, 9)), 3))
    options = window_options(rng)
    options["filter_height"], options["filter_width"] = int(rng.integers(1, 4)), int(rng.integers(1, 4))
    g.mark_outputs(g.add_op(kind, [x], **options))


def build_mean(rng: np.random.Generator, kind: str, g: GraphBuilder) -> None:
    shape = random_shape(rng, int(rng.integers(1, 5)))
    axes = reduction_axes(rng, len(shape))
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


def build_leaky_relu(rng: np.random.Generator, kind: str, g: GraphBuilder) -> None:
    x = g.add_input("x", random_shape(rng, int(rng.integers(0, 5))))
    g.mark_outputs(g.add_op(kind, [x], alpha=float(pick(rng, [0.2, 0.0, -0.5, 2.5, rng.uniform(-3, 3)]))))


def build_prelu(rng: np.random.Generator, kind: str, g: GraphBuilder) -> None:
    """alpha broadcast to the input (some axes 1, leading ones dropped), mostly a constant."""
    shape = random_shape(rng, int(rng.integers(0, 5)))
    alpha_shape = tuple([1 if chance(rng, 0.5) else d for d in shape][int(rng.integers(0, len(shape) + 1)) :])
    x = g.add_input("x", shape)
    if chance(rng, 0.8):
        alpha = g.add_constant("alpha", random_array(rng, alpha_shape, F32))
    else:
        alpha = g.add_input("alpha", alpha_shape)
    g.mark_outputs(g.add_op(kind, [x, alpha]))


def build_fully_connected(rng: np.random.Generator, kind: str, g: GraphBuilder) -> None:
    """Weights constant (mostly) or a graph input; bias [units], absent, or omitted (index -1)."""
    shape, depth, units, options = fully_connected_geometry(rng)
    x = g.add_input("x", shape)
    weights = rng.standard_normal((units, depth)).astype(np.float32)
    inputs = [x, g.add_constant("w", weights) if chance(rng, 0.8) else g.add_input("w", weights.shape)]
    bias = pick(rng, ["constant", "constant", "input", "none", "omitted"])
    if bias in ("constant", "input"):
        values = rng.uniform(-1, 1, units).astype(np.float32)
        inputs.append(g.add_constant("bias", values) if bias == "constant" else g.add_input("bias", (units,)))
    elif bias == "omitted":
        inputs.append(None)
    g.mark_outputs(g.add_op(kind, inputs, **options))


def build_transpose_conv(rng: np.random.Generator, kind: str, g: GraphBuilder) -> None:
    """output_shape constant; weights constant (mostly) or a graph input; bias [Cout], absent or
    omitted (index -1)."""
    x_shape, w_shape, out_shape, options = transpose_conv_geometry(rng)
    weights = rng.standard_normal(w_shape).astype(np.float32)
    w = g.add_constant("w", weights) if chance(rng, 0.8) else g.add_input("w", w_shape)
    inputs = [g.add_constant("output_shape", np.array(out_shape, np.int32)), w, g.add_input("x", x_shape)]
    bias = pick(rng, ["constant", "constant", "none", "omitted"])
    if bias == "constant":
        inputs.append(g.add_constant("bias", rng.uniform(-1, 1, w_shape[0]).astype(np.float32)))
    elif bias == "omitted":
        inputs.append(None)
    g.mark_outputs(g.add_op(kind, inputs, **options))


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
    "FULLY_CONNECTED": build_fully_connected,
    "TRANSPOSE_CONV": build_transpose_conv,
    **dict.fromkeys(("LOGISTIC", "RELU", "RELU6", "RELU_N1_TO_1", "TANH"), build_unary),
    "HARD_SWISH": build_unary,
    "LEAKY_RELU": build_leaky_relu,
    "PRELU": build_prelu,
}
BUILDER_ATTEMPTS = 30


def builder_kinds() -> list[str]:
    """Every kind we can build, float ("CONV_2D") then quantized ("q:CONV_2D"); a kind the engine
    gains (a float preparer, or a quantized one) without a builder is an error."""
    missing = sorted(set(SUPPORTED_OPS) - set(SEED_BUILDERS))
    missing += sorted(QUANTIZED_PREFIX + k for k in set(SUPPORTED_QUANTIZED_OPS) - set(quantized_kinds()))
    if missing:
        raise RuntimeError(
            f"no fuzz seed builder for {', '.join(missing)}: add one to SEED_BUILDERS (seeds.py) or, for "
            f"{QUANTIZED_PREFIX}<kind>, to QUANTIZED_SEED_BUILDERS (quantized_seeds.py)"
        )
    return sorted(SEED_BUILDERS) + sorted(QUANTIZED_SEED_BUILDERS)


def quantized_kinds() -> list[str]:
    """The op kinds of QUANTIZED_SEED_BUILDERS, without their prefix."""
    return [key.removeprefix(QUANTIZED_PREFIX) for key in QUANTIZED_SEED_BUILDERS]


def seed_builder(kind: str) -> tuple[Callable[[np.random.Generator, str, GraphBuilder], None], str]:
    """The builder of a builder kind ("CONV_2D" or "q:CONV_2D") and the op kind it adds."""
    if kind.startswith(QUANTIZED_PREFIX):
        return QUANTIZED_SEED_BUILDERS[kind], kind.removeprefix(QUANTIZED_PREFIX)
    return SEED_BUILDERS[kind], kind


class FuzzBuilder(GraphBuilder):
    """A GraphBuilder that survives the engine's bugs: when a preparer raises anything but
    ModelError while inferring an op's output, the output is declared with the first input's
    shape and dtype instead and the error counted in `notes`, so the model is still written and
    a child meets the same error in a case, with a reproducer."""

    def __init__(self, notes: Counter, label: str = "") -> None:
        super().__init__()
        self.notes = notes
        self.label = label  # the builder kind ("q:CONV_2D") the notes name; else the op kind
        self.engine_failed = False

    def add_op(self, kind: str, inputs: Any, options: Any = None, **fields: Any) -> int:
        try:
            return super().add_op(kind, inputs, options, **fields)
        except ModelError:
            raise
        except Exception as error:  # noqa: BLE001 - a preparer bug, handed on to the fuzz case
            self.notes[f"builder {self.label or kind}: {type(error).__name__}: {normalise_message(str(error))}"] += 1
            self.engine_failed = True
            first = self.tensors[inputs[0]]
            declared = {"output_shape": first.shape, "output_dtype": first.dtype, **fields}  # QUANTIZE gives a dtype
            return super().add_op(kind, inputs, options, **declared)


def build_single_op_model(rng: np.random.Generator, kind: str, notes: Counter) -> Model:
    """A one-op model of this builder kind ("CONV_2D", or "q:CONV_2D" for its quantized form) that
    npdeeplab loads; random parameters it refuses (in the builder's preparer, or in the graph-level
    checks of loading) are drawn again."""
    builder, op_kind = seed_builder(kind)
    for _ in range(BUILDER_ATTEMPTS):
        g = FuzzBuilder(notes, kind)
        try:
            builder(rng, op_kind, g)
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
