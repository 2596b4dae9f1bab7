"""Every supported op against LiteRT, across its parameter space.

Hypothesis draws an op's parameters and shapes; the case is built into a one-op model with
npdeeplab.model.builder, written with npdeeplab.model.writer, and run by LiteRT's reference kernels
(OpResolverType.BUILTIN_REF), by LiteRT's default resolver (XNNPACK where it applies) and by
npdeeplab on each backend. Integer outputs must be identical; float outputs within
1e-5 x max(1, max|ref|) of REF and 1e-4 x max(1, max|ref|) of the default resolver. When LiteRT
rejects a model, npdeeplab must reject it too (ModelError).

A case is a plain dict of parameters (it is what Hypothesis prints when a case fails); input
data come from its "seed". Every failure found is kept below as an explicit regression case.

Budget: NPDEEPLAB_HYPOTHESIS_EXAMPLES examples per op (default 100, under a minute for the file on
2 cores); set it to 200 or more for a long run. The seed is fixed (derandomize=True).
"""

from __future__ import annotations

import os
import warnings
from collections.abc import Callable
from typing import Any

import numpy as np
import pytest
from conftest import BACKENDS
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from npdeeplab import Interpreter
from npdeeplab.errors import ModelError
from npdeeplab.model.builder import GraphBuilder
from npdeeplab.model.writer import write_model
from npdeeplab.ops import SUPPORTED_OPS
from npdeeplab.ops.conv import output_size_and_padding

try:
    from ai_edge_litert.interpreter import Interpreter as LiteRTInterpreter
    from ai_edge_litert.interpreter import OpResolverType
except ImportError:  # pragma: no cover - depends on the environment
    if os.environ.get("CI") == "true":
        pytest.fail("ai-edge-litert does not import in CI; the differential tests must run", pytrace=False)
    pytest.skip("ai-edge-litert is not installed", allow_module_level=True)

EXAMPLES = int(os.environ.get("NPDEEPLAB_HYPOTHESIS_EXAMPLES", "100"))
SETTINGS = settings(
    derandomize=True,
    max_examples=EXAMPLES,
    deadline=None,
    database=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much],
)
REF_TOLERANCE = 1e-5
DEFAULT_TOLERANCE = 1e-4
ACTIVATIONS = ("NONE", "RELU", "RELU_N1_TO_1", "RELU6", "TANH", "SIGN_BIT")
Case = dict[str, Any]


# --- the harness ---------------------------------------------------------------------------------


def run_litert(data: bytes, inputs: list[np.ndarray], resolver: Any) -> list[np.ndarray]:
    interpreter = LiteRTInterpreter(model_content=data, experimental_op_resolver_type=resolver)
    interpreter.allocate_tensors()
    for detail, value in zip(interpreter.get_input_details(), inputs, strict=True):
        interpreter.set_tensor(detail["index"], value)
    interpreter.invoke()
    return [interpreter.get_tensor(d["index"]) for d in interpreter.get_output_details()]


def run_npdeeplab(model: Any, inputs: list[np.ndarray], backend: str) -> list[np.ndarray]:
    interpreter = Interpreter(model=model, backend=backend)
    interpreter.allocate_tensors()
    for detail, value in zip(interpreter.get_input_details(), inputs, strict=True):
        interpreter.set_tensor(detail["index"], value)
    interpreter.invoke()
    return [interpreter.get_tensor(d["index"]) for d in interpreter.get_output_details()]


def assert_matches(got: list[np.ndarray], expected: list[np.ndarray], tolerance: float, what: str) -> None:
    assert len(got) == len(expected), what
    for k, (g, e) in enumerate(zip(got, expected, strict=True)):
        where = f"{what}, output {k}"
        assert g.dtype == e.dtype, f"{where}: dtype {g.dtype} != {e.dtype}"
        assert g.shape == e.shape, f"{where}: shape {g.shape} != {e.shape}"
        if e.dtype.kind != "f":
            mismatches = int(np.count_nonzero(g != e))
            assert mismatches == 0, f"{where}: {mismatches} of {e.size} integer elements differ"
            continue
        assert np.array_equal(np.isnan(g), np.isnan(e)), f"{where}: NaNs differ"
        scale = max(1.0, float(np.nanmax(np.abs(e)))) if e.size else 1.0
        error = float(np.nanmax(np.abs(g.astype(np.float64) - e))) if e.size else 0.0
        assert error <= tolerance * scale, f"{where}: max abs error {error:.3g} > {tolerance:g} x {scale:.3g}"


def check(builder: GraphBuilder, inputs: list[np.ndarray], *, default_resolver: bool = True) -> None:
    """Run the one-op model everywhere; LiteRT REF is the reference."""
    model = builder.build()
    data = write_model(model)
    try:
        expected = run_litert(data, inputs, OpResolverType.BUILTIN_REF)
    except (RuntimeError, ValueError) as litert_error:
        for backend in BACKENDS:
            try:
                run_npdeeplab(model, inputs, backend)
            except ModelError:
                continue
            pytest.fail(f"LiteRT rejects the model ({litert_error}) but npdeeplab ({backend}) runs it")
        return
    for backend in BACKENDS:
        got = run_npdeeplab(model, inputs, backend)
        assert_matches(got, expected, REF_TOLERANCE, f"npdeeplab {backend} vs LiteRT BUILTIN_REF")
    # XNNPACK turns some empty slices into whole axes (see test_strided_slice_empty_xnnpack); REF is
    # the reference for empty outputs.
    if default_resolver and all(e.size for e in expected):
        default = run_litert(data, inputs, OpResolverType.AUTO)
        assert_matches(got, default, DEFAULT_TOLERANCE, f"npdeeplab {backend} vs LiteRT default resolver")


def random_array(rng: np.random.Generator, shape: tuple[int, ...], dtype: Any, low: float = -1, high: float = 1) -> Any:
    dtype = np.dtype(dtype)
    if dtype.kind == "f":
        return rng.uniform(low, high, shape).astype(dtype)
    if dtype.kind == "b":
        return rng.integers(0, 2, shape).astype(dtype)
    info = np.iinfo(dtype)
    return rng.integers(max(int(low), info.min), min(int(high), info.max) + 1, shape).astype(dtype)


def ints(low: int, high: int) -> st.SearchStrategy[int]:
    return st.integers(low, high)


# --- convolutions -------------------------------------------------------------------------------


def window_fits(size: int, kernel: int, stride: int, dilation: int, padding: str) -> bool:
    return output_size_and_padding(size, kernel, stride, dilation, padding)[0] >= 1


@st.composite
def conv_cases(draw: Callable, depthwise: bool = False) -> Case:
    case: Case = {
        "batch": draw(ints(1, 2)),
        "kernel": (draw(ints(1, 7)), draw(ints(1, 7))),
        "stride": (draw(ints(1, 3)), draw(ints(1, 3))),
        "dilation": (draw(ints(1, 4)), draw(ints(1, 4))),
        "padding": draw(st.sampled_from(["SAME", "VALID"])),
        "activation": draw(st.sampled_from(ACTIVATIONS)),
        "bias": draw(st.booleans()) if depthwise else True,
        "seed": draw(ints(0, 2**16)),
    }
    effective = [(k - 1) * d + 1 for k, d in zip(case["kernel"], case["dilation"], strict=True)]
    low = [1 if case["padding"] == "SAME" else e for e in effective]
    case["size"] = (draw(ints(low[0], max(low[0], 19))), draw(ints(low[1], max(low[1], 19))))
    if depthwise:
        case["channels"] = draw(ints(1, 32))
        case["multiplier"] = draw(ints(1, 4))
    else:
        groups = draw(st.sampled_from([1, 1, 1, 1, 2, 3]))  # grouped: each filter sees channels / groups
        case["channels"] = groups * draw(ints(1, 64 // groups))
        case["filters"] = groups * draw(ints(1, 64 // groups))
        case["groups"] = groups
    return case


def build_conv(case: Case) -> tuple[GraphBuilder, list[np.ndarray]]:
    rng = np.random.default_rng(case["seed"])
    (kh, kw), cin = case["kernel"], case["channels"]
    depthwise = "multiplier" in case
    cout = cin * case["multiplier"] if depthwise else case["filters"]
    b = GraphBuilder()
    x = b.add_input("x", (case["batch"], *case["size"], cin))
    fan_in = kh * kw * (1 if depthwise else cin // case.get("groups", 1))
    shape = (1, kh, kw, cout) if depthwise else (cout, kh, kw, cin // case.get("groups", 1))
    w = b.add_constant("w", (rng.standard_normal(shape) / np.sqrt(fan_in)).astype(np.float32))
    bias = b.add_constant("bias", rng.uniform(-0.5, 0.5, cout).astype(np.float32)) if case["bias"] else None
    options = {
        "padding": case["padding"],
        "stride_h": case["stride"][0],
        "stride_w": case["stride"][1],
        "dilation_h_factor": case["dilation"][0],
        "dilation_w_factor": case["dilation"][1],
        "fused_activation_function": case["activation"],
    }
    if depthwise:
        options["depth_multiplier"] = case.get("option_multiplier", case["multiplier"])
    kind = "DEPTHWISE_CONV_2D" if depthwise else "CONV_2D"
    b.mark_outputs(b.add_op(kind, [x, w, bias] if bias is not None else [x, w], **options))
    return b, [random_array(rng, (case["batch"], *case["size"], cin), np.float32, -2, 2)]


def check_conv(case: Case) -> None:
    # LiteRT's optimized depthwise kernel (used by the default resolver when XNNPACK declines)
    # crashes the process on a depthwise conv without a bias input: only REF runs those.
    check(*build_conv(case), default_resolver=case["bias"])


@SETTINGS
@given(conv_cases())
def test_conv2d(case: Case) -> None:
    check_conv(case)


@SETTINGS
@given(conv_cases(depthwise=True))
def test_depthwise_conv2d(case: Case) -> None:
    check_conv(case)


@SETTINGS
@given(
    st.fixed_dictionaries(
        {
            "batch": st.just(1),
            "kernel": st.tuples(ints(2, 3), ints(2, 3)),
            "stride": st.just((1, 1)),
            "dilation": st.tuples(ints(3, 8), ints(3, 8)),
            "padding": st.just("SAME"),
            "activation": st.sampled_from(ACTIVATIONS),
            "bias": st.booleans(),
            "seed": ints(0, 2**16),
            "size": st.tuples(ints(1, 6), ints(1, 6)),
            "channels": ints(1, 8),
            "multiplier": ints(1, 4),
        }
    )
)
def test_depthwise_conv2d_dilated_kernel_larger_than_input(case: Case) -> None:
    """Atrous taps that fall outside the input (ASPP at small feature maps) are skipped."""
    check_conv(case)


# --- pools ------------------------------------------------------------------------------------------


@st.composite
def pool_cases(draw: Callable) -> Case:
    case: Case = {
        "kind": draw(st.sampled_from(["AVERAGE_POOL_2D", "MAX_POOL_2D"])),
        "batch": draw(ints(1, 2)),
        "size": (draw(ints(1, 13)), draw(ints(1, 13))),
        "channels": draw(ints(1, 16)),
        "global": draw(st.booleans()),
        "stride": (draw(ints(1, 3)), draw(ints(1, 3))),
        "padding": draw(st.sampled_from(["SAME", "VALID"])),
        "activation": draw(st.sampled_from(ACTIVATIONS)),
        "seed": draw(ints(0, 2**16)),
    }
    if case["global"]:
        case["filter"] = case["size"]
    else:
        case["filter"] = (draw(ints(1, 5)), draw(ints(1, 5)))
        if case["padding"] == "VALID":
            case["size"] = tuple(max(s, f) for s, f in zip(case["size"], case["filter"], strict=True))
    return case


def build_pool(case: Case) -> tuple[GraphBuilder, list[np.ndarray]]:
    rng = np.random.default_rng(case["seed"])
    shape = (case["batch"], *case["size"], case["channels"])
    b = GraphBuilder()
    x = b.add_input("x", shape)
    y = b.add_op(
        case["kind"],
        [x],
        padding=case["padding"],
        stride_h=case["stride"][0],
        stride_w=case["stride"][1],
        filter_height=case["filter"][0],
        filter_width=case["filter"][1],
        fused_activation_function=case["activation"],
    )
    b.mark_outputs(y)
    return b, [random_array(rng, shape, np.float32, -3, 3)]


@SETTINGS
@given(pool_cases())
def test_pool2d(case: Case) -> None:
    check(*build_pool(case))


# --- resizes ----------------------------------------------------------------------------------------


@st.composite
def resize_cases(draw: Callable) -> Case:
    kind = draw(st.sampled_from(["RESIZE_BILINEAR", "RESIZE_NEAREST_NEIGHBOR"]))
    modes = ["plain", "align_corners", "half_pixel_centers"] + (["both"] if kind == "RESIZE_NEAREST_NEIGHBOR" else [])
    mode = draw(st.sampled_from(modes))
    return {
        "kind": kind,
        "batch": draw(ints(1, 2)),
        "size": draw(st.tuples(ints(1, 12), ints(1, 12))),
        "out": draw(st.tuples(ints(1, 25), ints(1, 25))),
        "channels": draw(ints(1, 5)),
        "align_corners": mode in ("align_corners", "both"),  # both: LiteRT takes them on nearest neighbour
        "half_pixel_centers": mode in ("half_pixel_centers", "both"),
        "dtype": draw(st.sampled_from(["float32", "float32", "int32", "uint8", "int8"])),
        "seed": draw(ints(0, 2**16)),
    }


def build_resize(case: Case) -> tuple[GraphBuilder, list[np.ndarray]]:
    rng = np.random.default_rng(case["seed"])
    dtype = case["dtype"] if case["kind"] == "RESIZE_NEAREST_NEIGHBOR" else "float32"
    shape = (case["batch"], *case["size"], case["channels"])
    b = GraphBuilder()
    x = b.add_input("x", shape, dtype)
    size = b.add_constant("size", np.array(case["out"], np.int32))
    y = b.add_op(
        case["kind"], [x, size], align_corners=case["align_corners"], half_pixel_centers=case["half_pixel_centers"]
    )
    b.mark_outputs(y)
    return b, [random_array(rng, shape, dtype, -100, 100)]


@SETTINGS
@given(resize_cases())
def test_resize(case: Case) -> None:
    check(*build_resize(case))


@SETTINGS
@given(
    st.fixed_dictionaries(
        {
            "kind": st.sampled_from(["RESIZE_BILINEAR", "RESIZE_NEAREST_NEIGHBOR"]),
            "batch": st.just(1),
            "size": st.just((1, 1)),
            "out": st.tuples(ints(1, 33), ints(1, 33)),
            "channels": ints(1, 8),
            "align_corners": st.booleans(),
            "half_pixel_centers": st.just(False),
            "dtype": st.just("float32"),
            "seed": ints(0, 2**16),
        }
    )
)
def test_resize_from_1x1(case: Case) -> None:
    """Image pooling's upsampling: a 1x1 input broadcast to every output pixel."""
    check(*build_resize(case))


# --- elementwise arithmetic ------------------------------------------------------------------------


@st.composite
def broadcast_shapes(draw: Callable, max_rank: int = 4) -> tuple[tuple[int, ...], tuple[int, ...]]:
    rank = draw(ints(1, max_rank))
    full = [draw(ints(1, 5)) for _ in range(rank)]
    shapes = []
    for _ in range(2):
        own_rank = draw(ints(1, rank))
        shape = [d if draw(st.booleans()) else 1 for d in full[rank - own_rank :]]
        shapes.append(tuple(shape))
    if draw(st.booleans()):
        shapes[draw(ints(0, 1))] = tuple(full)
    return shapes[0], shapes[1]


@st.composite
def binary_cases(draw: Callable) -> Case:
    a, b = draw(broadcast_shapes(max_rank=draw(st.sampled_from([4, 4, 4, 5, 6]))))
    return {
        "kind": draw(st.sampled_from(["ADD", "SUB", "MUL"])),
        "shapes": (a, b),
        "dtype": draw(st.sampled_from(["float32", "float32", "int32", "int64"])),
        "activation": draw(st.sampled_from(["NONE", "RELU", "RELU_N1_TO_1", "RELU6"])),
        "constant_b": draw(st.booleans()),
        "seed": draw(ints(0, 2**16)),
    }


def build_binary(case: Case) -> tuple[GraphBuilder, list[np.ndarray]]:
    rng = np.random.default_rng(case["seed"])
    dtype = case["dtype"]
    low, high = (-10, 10) if dtype != "float32" else (-8, 8)
    a_shape, b_shape = case["shapes"]
    a_value, b_value = random_array(rng, a_shape, dtype, low, high), random_array(rng, b_shape, dtype, low, high)
    b = GraphBuilder()
    a = b.add_input("a", a_shape, dtype)
    other = b.add_constant("b", b_value) if case["constant_b"] else b.add_input("b", b_shape, dtype)
    b.mark_outputs(b.add_op(case["kind"], [a, other], fused_activation_function=case["activation"]))
    return b, [a_value] if case["constant_b"] else [a_value, b_value]


@SETTINGS
@given(binary_cases())
def test_add_sub_mul(case: Case) -> None:
    check(*build_binary(case))


# --- data movement -------------------------------------------------------------------------------------


@st.composite
def shapes(draw: Callable, min_rank: int = 1, max_rank: int = 4, max_side: int = 5) -> tuple[int, ...]:
    return tuple(draw(ints(1, max_side)) for _ in range(draw(ints(min_rank, max_rank))))


@st.composite
def concatenation_cases(draw: Callable) -> Case:
    shape = draw(shapes())
    rank = len(shape)
    return {
        "shape": shape,
        "axis": draw(ints(-rank, rank - 1)),
        "sizes": draw(st.lists(ints(1, 4), min_size=1, max_size=4)),
        "dtype": draw(st.sampled_from(["float32", "int32", "int64"])),
        "activation": draw(st.sampled_from(["NONE", "NONE", "RELU"])),
        "seed": draw(ints(0, 2**16)),
    }


def build_concatenation(case: Case) -> tuple[GraphBuilder, list[np.ndarray]]:
    rng = np.random.default_rng(case["seed"])
    axis = case["axis"] % len(case["shape"])
    b = GraphBuilder()
    inputs, values = [], []
    for k, size in enumerate(case["sizes"]):
        shape = tuple(size if i == axis else d for i, d in enumerate(case["shape"]))
        inputs.append(b.add_input(f"x{k}", shape, case["dtype"]))
        values.append(random_array(rng, shape, case["dtype"], -50, 50))
    shape = tuple(sum(case["sizes"]) if i == axis else d for i, d in enumerate(case["shape"]))
    # The output is declared, not inferred: npdeeplab refuses a fused activation, as LiteRT does,
    # and check() then holds the two refusals against each other.
    y = b.add_op(
        "CONCATENATION",
        inputs,
        axis=case["axis"],
        fused_activation_function=case["activation"],
        output_shape=shape,
        output_dtype=case["dtype"],
    )
    b.mark_outputs(y)
    return b, values


@SETTINGS
@given(concatenation_cases())
def test_concatenation(case: Case) -> None:
    check(*build_concatenation(case))


@st.composite
def pad_cases(draw: Callable) -> Case:
    shape = draw(shapes())
    return {
        "shape": shape,
        "paddings": [(draw(ints(0, 3)), draw(ints(0, 3))) for _ in shape],
        "dtype": draw(st.sampled_from(["float32", "int32"])),
        "paddings_dtype": draw(st.sampled_from(["int32", "int64"])),
        "seed": draw(ints(0, 2**16)),
    }


def build_pad(case: Case) -> tuple[GraphBuilder, list[np.ndarray]]:
    rng = np.random.default_rng(case["seed"])
    b = GraphBuilder()
    x = b.add_input("x", case["shape"], case["dtype"])
    paddings = b.add_constant("paddings", np.array(case["paddings"], case["paddings_dtype"]).reshape(-1, 2))
    b.mark_outputs(b.add_op("PAD", [x, paddings]))
    return b, [random_array(rng, case["shape"], case["dtype"], -9, 9)]


@SETTINGS
@given(pad_cases())
def test_pad(case: Case) -> None:
    check(*build_pad(case))


@st.composite
def strided_slice_cases(draw: Callable) -> Case:
    shape = draw(shapes(max_side=6))
    rank = len(shape)
    length = draw(ints(1, rank))
    mask = ints(0, 2**length - 1)
    strides = [draw(st.sampled_from([1, 1, 2, 3, -1, -2])) for _ in range(length)]
    return {
        "shape": shape,
        "begin": [draw(ints(-8, 8)) for _ in range(length)],
        "end": [draw(ints(-8, 8)) for _ in range(length)],
        "strides": strides,
        "begin_mask": draw(mask),
        "end_mask": draw(mask),
        "ellipsis_mask": draw(st.sampled_from([0, 0, 0, 1 << draw(ints(0, length - 1))])),
        "new_axis_mask": draw(st.sampled_from([0, 0, draw(mask)])),
        "shrink_axis_mask": draw(st.sampled_from([0, 0, draw(mask)])),
        "offset": draw(st.sampled_from([False] * 7 + [True])),
        "seed": draw(ints(0, 2**16)),
    }


def build_strided_slice(case: Case) -> tuple[GraphBuilder, list[np.ndarray]]:
    rng = np.random.default_rng(case["seed"])
    b = GraphBuilder()
    x = b.add_input("x", case["shape"])
    arguments = [b.add_constant(k, np.array(case[k], np.int32)) for k in ("begin", "end", "strides")]
    masks = ("begin_mask", "end_mask", "ellipsis_mask", "new_axis_mask", "shrink_axis_mask", "offset")
    b.mark_outputs(b.add_op("STRIDED_SLICE", [x, *arguments], **{k: case[k] for k in masks}))
    return b, [random_array(rng, case["shape"], np.float32)]


@SETTINGS
@given(strided_slice_cases())
def test_strided_slice(case: Case) -> None:
    try:
        builder, inputs = build_strided_slice(case)
    except ModelError:
        return  # npdeeplab rejects the slice at build time; LiteRT's verdict is checked in regressions
    check(builder, inputs)


@st.composite
def slice_cases(draw: Callable) -> Case:
    shape = draw(shapes())
    begin = [draw(ints(0, d - 1)) for d in shape]
    size = [draw(st.sampled_from([-1, draw(ints(0, d - b))])) for d, b in zip(shape, begin, strict=True)]
    return {
        "shape": shape,
        "begin": begin,
        "size": size,
        "index_dtype": draw(st.sampled_from(["int32", "int64"])),
        "seed": draw(ints(0, 2**16)),
    }


def build_slice(case: Case) -> tuple[GraphBuilder, list[np.ndarray]]:
    rng = np.random.default_rng(case["seed"])
    b = GraphBuilder()
    x = b.add_input("x", case["shape"])
    begin = b.add_constant("begin", np.array(case["begin"], case["index_dtype"]))
    size = b.add_constant("size", np.array(case["size"], case["index_dtype"]))
    b.mark_outputs(b.add_op("SLICE", [x, begin, size]))
    return b, [random_array(rng, case["shape"], np.float32)]


@SETTINGS
@given(slice_cases())
def test_slice(case: Case) -> None:
    check(*build_slice(case))


@st.composite
def reshape_cases(draw: Callable) -> Case:
    shape = draw(shapes())
    size = int(np.prod(shape))
    factors = []
    rest = size
    while rest > 1 and len(factors) < 4:
        divisors = [d for d in range(1, rest + 1) if rest % d == 0]
        factors.append(draw(st.sampled_from(divisors)))
        rest //= factors[-1]
    factors.append(rest)
    new = draw(st.permutations(factors))
    if draw(st.booleans()):
        new[draw(ints(0, len(new) - 1))] = -1
    return {
        "shape": shape,
        "new_shape": list(new),
        "form": draw(st.sampled_from(["tensor", "options", "both"])),
        "seed": draw(ints(0, 2**16)),
    }


def build_reshape(case: Case) -> tuple[GraphBuilder, list[np.ndarray]]:
    rng = np.random.default_rng(case["seed"])
    b = GraphBuilder()
    x = b.add_input("x", case["shape"])
    inputs = [x]
    if case["form"] in ("tensor", "both"):
        inputs.append(b.add_constant("shape", np.array(case["new_shape"], np.int32)))
    options = {"new_shape": tuple(case["new_shape"])} if case["form"] in ("options", "both") else {}
    b.mark_outputs(b.add_op("RESHAPE", inputs, **options))
    return b, [random_array(rng, case["shape"], np.float32)]


@SETTINGS
@given(reshape_cases())
def test_reshape(case: Case) -> None:
    check(*build_reshape(case))


@st.composite
def squeeze_cases(draw: Callable) -> Case:
    shape = tuple(draw(st.sampled_from([1, 1, 2, 3])) for _ in range(draw(ints(1, 5))))
    ones = [i for i, d in enumerate(shape) if d == 1]
    dims = draw(st.lists(st.sampled_from(ones), unique=True)) if ones else []
    dims = [d - len(shape) if draw(st.booleans()) else d for d in dims]
    return {"shape": shape, "squeeze_dims": dims, "seed": draw(ints(0, 2**16))}


def build_squeeze(case: Case) -> tuple[GraphBuilder, list[np.ndarray]]:
    rng = np.random.default_rng(case["seed"])
    b = GraphBuilder()
    x = b.add_input("x", case["shape"])
    b.mark_outputs(b.add_op("SQUEEZE", [x], squeeze_dims=tuple(case["squeeze_dims"])))
    return b, [random_array(rng, case["shape"], np.float32)]


@SETTINGS
@given(squeeze_cases())
def test_squeeze(case: Case) -> None:
    check(*build_squeeze(case))


@st.composite
def expand_dims_cases(draw: Callable) -> Case:
    shape = draw(shapes())
    return {
        "shape": shape,
        "axis": draw(ints(-len(shape) - 1, len(shape))),
        "axis_dtype": draw(st.sampled_from(["int32", "int64"])),
        "seed": draw(ints(0, 2**16)),
    }


def build_expand_dims(case: Case) -> tuple[GraphBuilder, list[np.ndarray]]:
    rng = np.random.default_rng(case["seed"])
    b = GraphBuilder()
    x = b.add_input("x", case["shape"])
    axis = b.add_constant("axis", np.array([case["axis"]], case["axis_dtype"]))
    b.mark_outputs(b.add_op("EXPAND_DIMS", [x, axis]))
    return b, [random_array(rng, case["shape"], np.float32)]


@SETTINGS
@given(expand_dims_cases())
def test_expand_dims(case: Case) -> None:
    check(*build_expand_dims(case))


@st.composite
def transpose_cases(draw: Callable) -> Case:
    shape = draw(shapes(max_rank=5))
    return {
        "shape": shape,
        "perm": draw(st.permutations(list(range(len(shape))))),
        "dtype": draw(st.sampled_from(["float32", "int32"])),
        "seed": draw(ints(0, 2**16)),
    }


def build_transpose(case: Case) -> tuple[GraphBuilder, list[np.ndarray]]:
    rng = np.random.default_rng(case["seed"])
    b = GraphBuilder()
    x = b.add_input("x", case["shape"], case["dtype"])
    perm = b.add_constant("perm", np.array(case["perm"], np.int32))
    b.mark_outputs(b.add_op("TRANSPOSE", [x, perm]))
    return b, [random_array(rng, case["shape"], case["dtype"], -9, 9)]


@SETTINGS
@given(transpose_cases())
def test_transpose(case: Case) -> None:
    check(*build_transpose(case))


@st.composite
def tile_cases(draw: Callable) -> Case:
    shape = draw(shapes())
    return {
        "shape": shape,
        "multiples": [draw(ints(1, 3)) for _ in shape],
        "dtype": draw(st.sampled_from(["float32", "int32", "int64"])),
        "multiples_dtype": draw(st.sampled_from(["int32", "int64"])),
        "seed": draw(ints(0, 2**16)),
    }


def build_tile(case: Case) -> tuple[GraphBuilder, list[np.ndarray]]:
    rng = np.random.default_rng(case["seed"])
    b = GraphBuilder()
    x = b.add_input("x", case["shape"], case["dtype"])
    multiples = b.add_constant("multiples", np.array(case["multiples"], case["multiples_dtype"]))
    b.mark_outputs(b.add_op("TILE", [x, multiples]))
    return b, [random_array(rng, case["shape"], case["dtype"], -9, 9)]


@SETTINGS
@given(tile_cases())
def test_tile(case: Case) -> None:
    check(*build_tile(case))


# --- reductions --------------------------------------------------------------------------------------


@st.composite
def mean_cases(draw: Callable) -> Case:
    shape = draw(shapes(max_side=7))
    rank = len(shape)
    return {
        "shape": shape,
        "axes": draw(st.lists(ints(-rank, rank - 1), min_size=1, max_size=rank + 1)),
        "keep_dims": draw(st.booleans()),
        "seed": draw(ints(0, 2**16)),
    }


def build_mean(case: Case) -> tuple[GraphBuilder, list[np.ndarray]]:
    rng = np.random.default_rng(case["seed"])
    b = GraphBuilder()
    x = b.add_input("x", case["shape"])
    axes = b.add_constant("axes", np.array(case["axes"], np.int32))
    b.mark_outputs(b.add_op("MEAN", [x, axes], keep_dims=case["keep_dims"]))
    return b, [random_array(rng, case["shape"], np.float32, -4, 4)]


@SETTINGS
@given(mean_cases())
def test_mean(case: Case) -> None:
    check(*build_mean(case))


@st.composite
def arg_cases(draw: Callable) -> Case:
    shape = draw(shapes(max_side=6))
    rank = len(shape)
    return {
        "kind": draw(st.sampled_from(["ARG_MAX", "ARG_MIN"])),
        "shape": shape,
        "axis": draw(ints(-rank, rank - 1)),
        "axis_dtype": draw(st.sampled_from(["int32", "int64"])),
        "output_type": draw(st.sampled_from(["INT32", "INT64"])),
        "dtype": draw(st.sampled_from(["float32", "float32", "int32", "uint8", "int8"])),
        "ties": draw(st.booleans()),
        "seed": draw(ints(0, 2**16)),
    }


def build_arg(case: Case) -> tuple[GraphBuilder, list[np.ndarray]]:
    rng = np.random.default_rng(case["seed"])
    b = GraphBuilder()
    x = b.add_input("x", case["shape"], case["dtype"])
    axis = b.add_constant("axis", np.array([case["axis"]], case["axis_dtype"]))
    b.mark_outputs(b.add_op(case["kind"], [x, axis], output_type=case["output_type"]))
    low, high = (0, 2) if case["ties"] else (0, 100) if case["dtype"] == "uint8" else (-100, 100)
    value = random_array(rng, case["shape"], case["dtype"], low, high)
    if case["ties"] and case["dtype"] == "float32":
        value = np.round(value)
    return b, [value]


@SETTINGS
@given(arg_cases())
def test_arg_max_min(case: Case) -> None:
    check(*build_arg(case))


# --- activations ----------------------------------------------------------------------------------------


@st.composite
def unary_cases(draw: Callable) -> Case:
    return {
        "kind": draw(st.sampled_from(["RELU", "RELU6", "RELU_N1_TO_1", "TANH", "LOGISTIC"])),
        "shape": draw(shapes()),
        "range": draw(st.sampled_from([1.0, 8.0, 30.0])),
        "seed": draw(ints(0, 2**16)),
    }


def build_unary(case: Case) -> tuple[GraphBuilder, list[np.ndarray]]:
    rng = np.random.default_rng(case["seed"])
    b = GraphBuilder()
    x = b.add_input("x", case["shape"])
    b.mark_outputs(b.add_op(case["kind"], [x]))
    return b, [random_array(rng, case["shape"], np.float32, -case["range"], case["range"])]


@SETTINGS
@given(unary_cases())
def test_unary_activations(case: Case) -> None:
    check(*build_unary(case))


@st.composite
def softmax_cases(draw: Callable) -> Case:
    return {
        "shape": draw(shapes(max_side=9)),
        "beta": draw(st.sampled_from([1.0, 0.5, 2.0, 0.1, 3.7])),
        "range": draw(st.sampled_from([1.0, 10.0, 50.0])),
        "seed": draw(ints(0, 2**16)),
    }


def build_softmax(case: Case) -> tuple[GraphBuilder, list[np.ndarray]]:
    rng = np.random.default_rng(case["seed"])
    b = GraphBuilder()
    x = b.add_input("x", case["shape"])
    b.mark_outputs(b.add_op("SOFTMAX", [x], beta=case["beta"]))
    return b, [random_array(rng, case["shape"], np.float32, -case["range"], case["range"])]


@SETTINGS
@given(softmax_cases())
def test_softmax(case: Case) -> None:
    check(*build_softmax(case))


# --- regressions: every difference found, with its exact case ----------------------------------------
#
# STRIDED_SLICE is LiteRT's, not NumPy's (npdeeplab used NumPy indexing until these were found).


def slice_case(shape: tuple[int, ...], begin: list[int], end: list[int], strides: list[int], **masks: Any) -> Case:
    case = {"shape": shape, "begin": begin, "end": end, "strides": strides, "seed": 0}
    for name in ("begin_mask", "end_mask", "ellipsis_mask", "new_axis_mask", "shrink_axis_mask"):
        case[name] = masks.get(name, 0)
    case["offset"] = masks.get("offset", False)
    return case


def expect_slice(case: Case, expected_shape: tuple[int, ...], take: Callable[[np.ndarray], np.ndarray]) -> None:
    builder, inputs = build_strided_slice(case)
    for backend in BACKENDS:
        (got,) = run_npdeeplab(builder.build(), inputs, backend)
        assert got.shape == expected_shape
        np.testing.assert_array_equal(got, take(inputs[0]))
    check(builder, inputs)


@pytest.mark.parametrize(
    ("case", "expected_shape", "take"),
    [
        # A shrink axis clamps an out-of-range begin: -7 on a size-5 axis reads index 0 (NumPy: IndexError).
        (slice_case((5, 3), [-7], [0], [1], shrink_axis_mask=1), (3,), lambda x: x[0]),
        # begin_mask also applies to a shrink axis (TensorFlow ignores it there): reads index 0, not -1.
        (slice_case((5, 2, 5), [-1], [0], [1], begin_mask=1, shrink_axis_mask=1), (2, 5), lambda x: x[0]),
        # With offset, end counts from the resolved begin: begin -1 on size 5 is 4, so end 1 means [4, 5).
        (slice_case((5,), [-1], [1], [1], offset=True), (1,), lambda x: x[4:5]),
        (slice_case((5,), [-2], [2], [1], offset=True), (2,), lambda x: x[3:5]),
        # Shrinking every axis gives a 0-d tensor (the kernel returned shape (1,) for it).
        (slice_case((4, 3), [1, 2], [2, 3], [1, 1], shrink_axis_mask=3), (), lambda x: x[1, 2]),
        # Spec entries beyond the input's rank are ignored (NumPy: too many indices).
        (slice_case((5, 4), [1, 2, 7], [3, 4, 0], [1, 1, 1]), (2, 2), lambda x: x[1:3, 2:4]),
        # Ellipsis in the middle, a new axis after it, a negative stride.
        (
            slice_case((2, 3, 4), [1, 0, 0, 3], [2, 0, 0, 0], [1, 1, 1, -2], ellipsis_mask=2, new_axis_mask=4),
            (1, 3, 1, 2),
            lambda x: x[1:2, :, None, 3:0:-2],
        ),
    ],
)
def test_strided_slice_follows_litert(case: Case, expected_shape: tuple[int, ...], take: Callable) -> None:
    expect_slice(case, expected_shape, take)


@pytest.mark.parametrize(
    "case",
    [
        slice_case((5,), [2], [3], [-1], shrink_axis_mask=1),  # shrink with a negative stride: LiteRT writes nothing
        slice_case((5, 3), [7], [8], [1], shrink_axis_mask=1),  # shrink past the end: LiteRT writes nothing
        slice_case((4,), [0], [6], [1], offset=True, begin_mask=1, end_mask=1),  # LiteRT declares 6 of 4 elements
    ],
)
def test_strided_slice_litert_leaves_unwritten_is_rejected(case: Case) -> None:
    with pytest.raises(ModelError, match="STRIDED_SLICE"):
        build_strided_slice(case)


def test_strided_slice_empty_xnnpack() -> None:
    """An empty slice from index 0: REF gives shape (0,), XNNPACK (default resolver) the whole axis."""
    builder, inputs = build_strided_slice(slice_case((1,), [0], [0], [1]))
    (reference,) = run_litert(write_model(builder.build()), inputs, OpResolverType.BUILTIN_REF)
    assert reference.shape == (0,)
    check(builder, inputs)


def test_concatenation_rejects_fused_activation() -> None:
    """LiteRT refuses CONCATENATION with a fused activation; npdeeplab ignored it before."""
    case = {"shape": (2, 3), "axis": -1, "sizes": [1, 2], "dtype": "float32", "activation": "RELU6", "seed": 1}
    builder, inputs = build_concatenation(case)
    check(builder, inputs)
    with pytest.raises(ModelError, match="fused activation"):
        run_npdeeplab(builder.build(), inputs, "numpy")


def test_concatenation_of_differently_quantized_inputs_is_requantized() -> None:
    """LiteRT requantizes uint8 inputs to the output's scale; npdeeplab copied raw bytes, then
    refused, and now requantizes too (tests/test_quantized_shape.py covers it across scales)."""
    values = [np.arange(4, dtype=np.uint8).reshape(1, 2, 2, 1) * 50, np.full((1, 2, 2, 1), 7, np.uint8)]
    for second_scale in (0.25, 0.5):
        b = GraphBuilder()
        a = b.add_input("a", (1, 2, 2, 1), np.uint8, quantization=(0.5, 10))
        c = b.add_input("c", (1, 2, 2, 1), np.uint8, quantization=(second_scale, 10))
        y = b.add_op("CONCATENATION", [a, c], axis=3, output_quantization=(0.5, 10),
                     output_shape=(1, 2, 2, 2), output_dtype=np.uint8)
        b.mark_outputs(y)
        if second_scale == 0.5:
            check(b, values)  # equal quantization: a plain copy everywhere
            continue
        (litert,) = run_litert(b.to_bytes(), values, OpResolverType.BUILTIN_REF)
        assert litert[0, 0, 0, 1] == 8  # requantized: round_half_away((7 - 10) * 0.25 / 0.5) + 10
        for backend in BACKENDS:
            np.testing.assert_array_equal(run_npdeeplab(b.build(), values, backend)[0], litert)


def test_pad_fills_with_the_output_zero_point() -> None:
    """Quantized PAD fills with the output's zero point (npdeeplab used the input's)."""
    b = GraphBuilder()
    x = b.add_input("x", (1, 2, 2, 1), np.uint8, quantization=(0.5, 128))
    paddings = b.add_constant("paddings", np.array([[0, 0], [1, 1], [1, 1], [0, 0]], np.int32))
    b.mark_outputs(b.add_op("PAD", [x, paddings], output_quantization=(0.5, 7)))
    value = np.array([1, 2, 3, 4], np.uint8).reshape(1, 2, 2, 1)
    (got,) = run_npdeeplab(b.build(), [value], "numpy")
    assert got[0, 0, 0, 0] == 7
    check(b, [value], default_resolver=False)  # XNNPACK fails to delegate this PAD and the model fails to prepare


def test_depthwise_conv2d_without_bias() -> None:
    """REF runs a 2-input depthwise conv; LiteRT's optimized kernel (default resolver) segfaults on it."""
    check_conv(
        {"batch": 1, "kernel": (3, 3), "stride": (1, 1), "dilation": (2, 2), "padding": "SAME", "activation": "RELU6",
         "bias": False, "seed": 3, "size": (5, 6), "channels": 3, "multiplier": 2}
    )


def test_depthwise_conv2d_depth_multiplier_option_is_not_trusted() -> None:
    """The multiplier comes from the shapes; option 1 with a x3 filter runs in REF (XNNPACK fails to prepare)."""
    case = {"batch": 1, "kernel": (3, 3), "stride": (1, 1), "dilation": (1, 1), "padding": "SAME",
            "activation": "NONE", "bias": True, "seed": 4, "size": (5, 5), "channels": 2, "multiplier": 3,
            "option_multiplier": 1}
    check(*build_conv(case), default_resolver=False)


def test_conv2d_without_bias_litert_rejects_npdeeplab_runs() -> None:
    """A known difference, kept on purpose: LiteRT's CONV_2D requires a bias (conv.cc: has_bias), npdeeplab
    treats a missing one as zeros (as the TFLite schema and tflite-micro allow)."""
    rng = np.random.default_rng(5)
    x_value = rng.standard_normal((1, 6, 6, 2)).astype(np.float32)
    weights = rng.standard_normal((3, 3, 3, 2)).astype(np.float32)
    outputs = []
    for bias in (False, True):
        b = GraphBuilder()
        x = b.add_input("x", x_value.shape)
        w = b.add_constant("w", weights)
        extra = [b.add_constant("bias", np.zeros(3, np.float32))] if bias else []
        b.mark_outputs(b.add_op("CONV_2D", [x, w, *extra], padding="SAME"))
        if not bias:
            with pytest.raises(RuntimeError, match="bias"):
                run_litert(b.to_bytes(), [x_value], OpResolverType.BUILTIN_REF)
        outputs.append(run_npdeeplab(b.build(), [x_value], "numpy")[0])
    np.testing.assert_array_equal(outputs[0], outputs[1])


def test_resize_nearest_with_both_flags_rounds_from_the_exact_fraction() -> None:
    """2 -> 62 columns with align_corners and half_pixel_centers: s = 0.49999997 for the first
    column; trunc(s + 0.5) gave 1 (the sum rounds up in float32), LiteRT gives 0."""
    b = GraphBuilder()
    x = b.add_input("x", (1, 1, 2, 1))
    size = b.add_constant("size", np.array([1, 62], np.int32))
    b.mark_outputs(b.add_op("RESIZE_NEAREST_NEIGHBOR", [x, size], align_corners=True, half_pixel_centers=True))
    check(b, [np.array([[[[1.0], [2.0]]]], np.float32)])


def test_resize_bilinear_rejects_align_corners_with_half_pixel_centers() -> None:
    """REF refuses both flags together (XNNPACK accepts them); npdeeplab refuses, like REF."""
    b = GraphBuilder()
    x = b.add_input("x", (1, 3, 3, 1))
    size = b.add_constant("size", np.array([5, 5], np.int32))
    y = b.add_op("RESIZE_BILINEAR", [x, size], align_corners=True, half_pixel_centers=True,
                 output_shape=(1, 5, 5, 1), output_dtype=np.float32)
    b.mark_outputs(y)
    check(b, [np.ones((1, 3, 3, 1), np.float32)], default_resolver=False)


def test_logistic_saturates_without_overflow_warnings() -> None:
    values = np.array([16.619047, 16.619048, 100.0, -9.0, -9.000001, -100.0, 0.0, 3.5], np.float32)
    b = GraphBuilder()
    b.mark_outputs(b.add_op("LOGISTIC", [b.add_input("x", values.shape)]))
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        check(b, [values])


# --- coverage of the supported list ------------------------------------------------------------------

TESTED_HERE = {
    "CONV_2D", "DEPTHWISE_CONV_2D", "AVERAGE_POOL_2D", "MAX_POOL_2D", "RESIZE_BILINEAR", "RESIZE_NEAREST_NEIGHBOR",
    "ADD", "SUB", "MUL", "CONCATENATION", "PAD", "STRIDED_SLICE", "SLICE", "RESHAPE", "SQUEEZE", "EXPAND_DIMS",
    "TRANSPOSE", "TILE", "MEAN", "ARG_MAX", "ARG_MIN", "RELU", "RELU6", "RELU_N1_TO_1", "TANH", "LOGISTIC", "SOFTMAX",
    "FULLY_CONNECTED",  # in tests/test_fully_connected.py, float32 and quantized
    "TRANSPOSE_CONV",  # in tests/test_transpose_conv.py, float32 and quantized
    "HARD_SWISH", "LEAKY_RELU", "PRELU",  # in tests/test_activations_family.py, float32 and quantized
}


def test_every_supported_op_has_a_differential_test() -> None:
    assert set(SUPPORTED_OPS) <= TESTED_HERE, sorted(set(SUPPORTED_OPS) - TESTED_HERE)
