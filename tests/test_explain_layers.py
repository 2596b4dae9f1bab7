"""`explain` on FULLY_CONNECTED, TRANSPOSE_CONV, the activations, DEQUANTIZE, RESIZE_NEAREST_NEIGHBOR and
SOFTMAX: on builder-made one-op models the recomputed element equals LiteRT BUILTIN_REF's, and (quantized)
the op's own output, at the first, last, middle and random elements, on both backends; the steps carry
the numbers the kernels use (FC's double rescale, the transpose's landing taps, the table index)."""

from __future__ import annotations

import json
from typing import Any

import numpy as np
import pytest
from conftest import BACKENDS
from quantized_harness import quantized_input, run_litert

from npdeeplab import Interpreter
from npdeeplab.model.builder import GraphBuilder
from npdeeplab.tools.explain import capture, explain_call


def elements(shape: tuple[int, ...], count: int = 10, seed: int = 0) -> list[tuple[int, ...]]:
    rng = np.random.default_rng(seed)
    picked = [(0,) * len(shape), tuple(n - 1 for n in shape), tuple(n // 2 for n in shape)]
    return picked + [tuple(int(rng.integers(n)) for n in shape) for _ in range(count)]


def one_op(kind: str, shape: tuple[int, ...], dtype: Any, q_in: Any, out_shape: tuple[int, ...], q_out: Any = None,
           constants: tuple[Any, ...] = (), first: tuple[int, ...] = (), seed: int = 3,
           **options: Any) -> tuple[GraphBuilder, list[np.ndarray]]:
    """A one-op model: input x (after the constants in `first`, positions in the op's inputs), constants."""
    rng = np.random.default_rng(seed)
    b = GraphBuilder()
    x = b.add_input("x", shape, dtype, quantization=q_in)
    extra = [None if c is None else b.add_constant(f"c{i}", c[0], quantization=c[1]) for i, c in enumerate(constants)]
    ins = [*extra[:len(first)], x, *extra[len(first):]] if first else [x, *extra]
    out_dtype = options.pop("output_dtype", dtype)
    b.mark_outputs(b.add_op(kind, ins, output_shape=out_shape, output_dtype=out_dtype,
                            output_quantization=q_out if q_out is not None else q_in, **options))
    value = (rng.uniform(-4, 4, shape).astype(np.float32) if np.dtype(dtype) == np.float32
             else quantized_input(rng, shape, dtype))
    return b, [value]


def fc_case(dtype: Any, per_channel: bool = False, activation: str = "NONE", keep: bool = False) -> tuple:
    rng = np.random.default_rng(7)
    units, depth = 5, 12
    if dtype == np.float32:
        w = rng.uniform(-1, 1, (units, depth)).astype(np.float32)
        bias = rng.uniform(-1, 1, units).astype(np.float32)
        return one_op("FULLY_CONNECTED", (2, 3, depth), np.float32, None, (2, 3, units) if keep else (6, units),
                      constants=((w, None), (bias, None)), fused_activation_function=activation, keep_num_dims=keep)
    s_in, s_out = 0.05, 0.11
    if per_channel:
        scales = (0.02 * rng.uniform(0.25, 4, units)).astype(np.float32)
        w_q, w_scales = (scales, np.zeros(units, np.int64), 0), scales
    else:
        w_q, w_scales = (0.02, 9 if dtype == np.uint8 else -3), np.full(units, 0.02, np.float32)
    w = quantized_input(rng, (units, depth), dtype)
    if per_channel:
        w[w == -128] = -127
    bias_scales = (np.float32(s_in) * w_scales).astype(np.float32)
    bias = rng.integers(-3000, 3000, units).astype(np.int32)
    b_q = (bias_scales, np.zeros(units, np.int64), 0) if per_channel else (float(bias_scales[0]), 0)
    z_in, z_out = (128, 120) if dtype == np.uint8 else (-5, 7)
    return one_op("FULLY_CONNECTED", (3, depth), dtype, (s_in, z_in), (3, units), (s_out, z_out),
                  constants=((w, w_q), (bias, b_q)), fused_activation_function=activation)


def transpose_case(dtype: Any, stride: int = 2, padding: str = "SAME") -> tuple:
    rng = np.random.default_rng(8)
    cout, cin, k = 3, 2, 3
    out_hw = ((3 - 1) * stride + k,) * 2 if padding == "VALID" else (3 * stride,) * 2
    shape = (np.array([1, *out_hw, cout], np.int32), None)
    if dtype == np.float32:
        w = rng.uniform(-1, 1, (cout, k, k, cin)).astype(np.float32)
        return one_op("TRANSPOSE_CONV", (1, 3, 3, cin), np.float32, None, (1, *out_hw, cout),
                      constants=(shape, (w, None), (rng.uniform(-1, 1, cout).astype(np.float32), None)),
                      first=(0, 1), padding=padding, stride_h=stride, stride_w=stride)
    if dtype == np.uint8:
        w_q, bias_q, q_in, q_out = (0.03, 130), (0.05 * 0.03, 0), (0.05, 128), (0.09, 110)
        w = quantized_input(rng, (cout, k, k, cin), np.uint8)
    else:
        scales = (0.03 * rng.uniform(0.5, 2, cout)).astype(np.float32)
        w_q, q_in, q_out = (scales, np.zeros(cout, np.int64), 0), (0.05, -4), (0.09, 6)
        bias_q = ((np.float32(0.05) * scales).astype(np.float32), np.zeros(cout, np.int64), 0)
        w = np.clip(quantized_input(rng, (cout, k, k, cin), np.int8), -127, 127).astype(np.int8)
    bias = rng.integers(-500, 500, cout).astype(np.int32)
    return one_op("TRANSPOSE_CONV", (1, 3, 3, cin), dtype, q_in, (1, *out_hw, cout), q_out,
                  constants=(shape, (w, w_q), (bias, bias_q)), first=(0, 1), padding=padding, stride_h=stride,
                  stride_w=stride)


def cases() -> dict[str, tuple[GraphBuilder, list]]:
    s = (1, 3, 4, 5)
    table = {
        "float_fc": fc_case(np.float32, activation="RELU6"),
        "float_fc_keep_num_dims": fc_case(np.float32, keep=True),
        "uint8_fc": fc_case(np.uint8, activation="RELU"),
        "int8_fc_per_tensor": fc_case(np.int8),
        "int8_fc_per_channel": fc_case(np.int8, per_channel=True, activation="RELU6"),
        "float_transpose_conv": transpose_case(np.float32),
        "float_transpose_conv_valid_stride_3": transpose_case(np.float32, stride=3, padding="VALID"),
        "uint8_transpose_conv": transpose_case(np.uint8),
        "int8_transpose_conv": transpose_case(np.int8, padding="VALID"),
        "float_leaky_relu": one_op("LEAKY_RELU", s, np.float32, None, s, alpha=0.2),
        "float_prelu": one_op("PRELU", s, np.float32, None, s,
                              constants=((np.linspace(-1, 1, 20, dtype=np.float32).reshape(1, 1, 4, 5), None),)),
        "float_softmax": one_op("SOFTMAX", (2, 3, 7), np.float32, None, (2, 3, 7), beta=0.7),
        "uint8_softmax": one_op("SOFTMAX", (2, 3, 7), np.uint8, (0.1, 128), (2, 3, 7), (1 / 256, 0), beta=1.0),
        "int8_softmax": one_op("SOFTMAX", (2, 9), np.int8, (0.05, -3), (2, 9), (1 / 256, -128), beta=1.5),
        "int8_dequantize": one_op("DEQUANTIZE", s, np.int8, (0.07, -9), s, output_dtype=np.float32),
        "uint8_dequantize_per_channel": one_op("DEQUANTIZE", s, np.uint8, (np.linspace(0.01, 0.05, 5), np.full(
            5, 100, np.int64), 3), s, output_dtype=np.float32),
    }
    for kind in ("RELU", "RELU6", "RELU_N1_TO_1", "LOGISTIC", "TANH", "HARD_SWISH"):
        table[f"float_{kind.lower()}"] = one_op(kind, s, np.float32, None, s)
    for kind, q_out in (("LOGISTIC", (1 / 256, 0)), ("TANH", (1 / 128, 128)), ("HARD_SWISH", (0.03, 20)),
                        ("RELU", (0.02, 3)), ("RELU6", (0.03, 10)), ("RELU_N1_TO_1", (0.01, 130))):
        table[f"uint8_{kind.lower()}"] = one_op(kind, s, np.uint8, (0.04, 120), s, q_out)
    for kind, q_out in (("LOGISTIC", (1 / 256, -128)), ("TANH", (1 / 128, 0)), ("HARD_SWISH", (0.05, -7)),
                        ("RELU6", (0.03, -128))):
        table[f"int8_{kind.lower()}"] = one_op(kind, s, np.int8, (0.06, 5), s, q_out)
    for dtype, q_in, q_out, z_alpha in ((np.uint8, (0.04, 120), (0.03, 100), 128),
                                        (np.int8, (0.06, 5), (0.05, -9), -3)):
        name = np.dtype(dtype).name
        for alpha in (0.2, -0.7, 1.5):
            table[f"{name}_leaky_relu_{alpha}"] = one_op("LEAKY_RELU", s, dtype, q_in, s, q_out, alpha=alpha)
        alphas = quantized_input(np.random.default_rng(9), (1, 1, 4, 5), dtype)
        table[f"{name}_prelu"] = one_op("PRELU", s, dtype, q_in, s, q_out, constants=((alphas, (0.01, z_alpha)),))
    for dtype, q in ((np.float32, None), (np.uint8, (0.1, 7)), (np.int8, (0.1, -7))):
        for align, half in ((False, False), (True, False), (False, True), (True, True)):
            table[f"{np.dtype(dtype).name}_nearest_{int(align)}{int(half)}"] = one_op(
                "RESIZE_NEAREST_NEIGHBOR", (1, 3, 5, 2), dtype, q, (1, 7, 9, 2),
                constants=((np.array([7, 9], np.int32), None),), align_corners=align, half_pixel_centers=half)
    return table


CASES = cases()


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("name", sorted(CASES))
def test_elements_equal_litert(name: str, backend: str) -> None:
    builder, inputs = CASES[name]
    data = builder.to_bytes()
    (expected,) = run_litert(data, inputs)
    interpreter = Interpreter(model_content=data, backend=backend)
    for number, index in enumerate(elements(expected.shape)):
        e = interpreter.explain(0, index, inputs=inputs if number == 0 else None)
        assert e.value == expected[index].item(), index
        if expected.dtype == np.float32:  # npdeeplab's float kernels may sum (or exp) in another order
            assert e.output == pytest.approx(e.value, rel=1e-5, abs=1e-6), index
        else:
            assert e.output == e.value, index
    text = e.to_text()
    assert text.startswith("op 0 ") and "value: " in text
    assert json.loads(json.dumps(e.to_dict()))["value"] == e.value


def test_quantized_fc_rescales_in_double() -> None:
    builder, inputs = CASES["int8_fc_per_channel"]
    interpreter = Interpreter(model_content=builder.to_bytes(), backend="numpy")
    e = interpreter.explain(0, (1, 3), inputs=inputs)
    titles = [s.title for s in e.steps]
    assert "double rescale, rounded" in titles and not any(t.startswith("RoundingDivideByPOT") for t in titles)
    acc = e.steps[titles.index("bias")].data["acc"]
    scale = e.steps[titles.index("real multiplier (double, no QuantizeMultiplier)")].data["scale"]
    y = float(acc) * scale
    assert e.steps[titles.index("double rescale, rounded")].data["scaled"] == int(np.sign(y) * np.floor(abs(y) + 0.5))
    terms = e.steps[titles.index("int32 accumulator, the kernel's order")].data["terms"]
    assert len(terms) == 12 and terms[-1]["acc"] + e.steps[titles.index("bias")].data["bias"] == acc
    others = {interpreter.explain(0, (1, u)).steps[4].data["scale"] for u in range(5)}
    assert len(others) == 5  # one scale per unit


def test_transpose_conv_lists_the_landing_taps() -> None:
    builder, inputs = CASES["float_transpose_conv"]
    interpreter = Interpreter(model_content=builder.to_bytes(), backend="numpy")
    e = interpreter.explain(0, (0, 2, 3, 1), inputs=inputs)
    sources = e.steps[0].data["sources"]
    window = e.steps[0].data["window"]
    for s in sources:  # each input pixel's tap lands on (2, 3)
        assert s["y"] * 2 - window["pad_top"] + s["ky"] == 2 and s["x"] * 2 - window["pad_left"] + s["kx"] == 3
    assert [(s["y"], s["x"]) for s in sources] == sorted((s["y"], s["x"]) for s in sources)
    assert len(e.steps[1].data["terms"]) == 2 * len(sources)


def test_lookup_shows_table_index_and_entry() -> None:
    builder, inputs = CASES["int8_logistic"]
    interpreter = Interpreter(model_content=builder.to_bytes(), backend="numpy")
    q = int(inputs[0][0, 0, 0, 0])  # -128: the table's byte 0x80
    e = interpreter.explain(0, (0, 0, 0, 0), inputs=inputs)
    assert q == -128 and e.steps[1].data["index"] == 128
    assert e.steps[3].data["entry"] == e.value == e.steps[2].data["made"]
    assert "recomputed" not in e.to_text()


@pytest.mark.parametrize("name", sorted(CASES))
def test_every_element_equals_litert(name: str) -> None:
    """All of each small output, from one captured run (rare paths: cut-offs, saturation, padding taps)."""
    builder, inputs = CASES[name]
    data = builder.to_bytes()
    (expected,) = run_litert(data, inputs)
    call = capture(Interpreter(model_content=data, backend="numpy"), 0, inputs)
    wrong = [index for index in np.ndindex(*expected.shape) if explain_call(call, index).value != expected[index]]
    assert not wrong, wrong[:5]
