"""`explain` and Interpreter.explain: the recomputed element equals LiteRT's reference kernels (BUILTIN_REF,
intermediates preserved) and the op's own output, for every covered op kind, float and quantized, at
padding corners, dilated taps and per-channel int8, on both backends; the CLI's text, JSON and errors.

Float elements are bit-exact against LiteRT when the op is fed LiteRT's own inputs (explain_call);
in a full run they carry the upstream ops' rounding differences, so there they are held to the
seed model's tolerance against LiteRT and to the run's own output within a few float32 steps.
"""

from __future__ import annotations

import json
from typing import Any

import numpy as np
import pytest
from conftest import BACKENDS, litert_module, shared_file
from quantized_harness import quantized_input, run_litert
from test_quantized_conv import build, case_of

from npdeeplab import Interpreter
from npdeeplab.cli import main
from npdeeplab.errors import InputError
from npdeeplab.model.builder import GraphBuilder
from npdeeplab.tools.explain import Call, capture, explain_call

DM05 = "deeplabv3_mnv2_dm05_pascal_quant.tflite"
FLOAT = "deeplabv3_257_mv_gpu.tflite"
DM05_OPS = (0, 1, 51, 9, 61, 64, 65, 66)  # conv, depthwise, atrous depthwise, add, pool, resize, quantize, concat
FLOAT_OPS = (0, 1, 25, 9, 61, 63, 65)


def reference_run(path: Any, x: np.ndarray) -> Any:
    """LiteRT BUILTIN_REF with every intermediate tensor kept, run on x."""
    lite = litert_module()
    ref = lite.Interpreter(model_path=str(path), experimental_op_resolver_type=lite.OpResolverType.BUILTIN_REF,
                           experimental_preserve_all_tensors=True)
    ref.allocate_tensors()
    ref.set_tensor(ref.get_input_details()[0]["index"], x)
    ref.invoke()
    return ref


def elements(shape: tuple[int, ...], count: int = 6, seed: int = 0) -> list[tuple[int, ...]]:
    """The first and last element (padding corners), the middle, and a few random ones."""
    rng = np.random.default_rng(seed)
    picked = [(0,) * len(shape), tuple(n - 1 for n in shape), tuple(n // 2 for n in shape)]
    picked += [tuple(int(rng.integers(n)) for n in shape) for _ in range(count)]
    return picked


@pytest.fixture(scope="module")
def dm05() -> tuple[Any, np.ndarray, Any]:
    path = shared_file("models", DM05)
    x = np.random.default_rng(0).integers(0, 256, (1, 513, 513, 3)).astype(np.uint8)
    return path, x, reference_run(path, x)


@pytest.fixture(scope="module")
def float_model() -> tuple[Any, np.ndarray, Any]:
    path = shared_file("models", FLOAT)
    x = np.random.default_rng(0).uniform(-1, 1, (1, 257, 257, 3)).astype(np.float32)
    return path, x, reference_run(path, x)


@pytest.mark.parametrize("backend", BACKENDS)
def test_dm05_elements_equal_litert(dm05: Any, backend: str) -> None:
    path, x, ref = dm05
    interpreter = Interpreter(model_path=path, backend=backend)
    interpreter.allocate_tensors()
    interpreter.set_tensor(interpreter.get_input_details()[0]["index"], x)
    steps = {s.op.index: s for s in interpreter.ops}
    for op in DM05_OPS:
        expected = ref.get_tensor(steps[op].op.outputs[0])
        call = capture(interpreter, op, None)  # one run per op; Interpreter.explain runs once per element
        for index in elements(expected.shape, count=4, seed=op):
            e = explain_call(call, index)
            assert (e.value, e.output) == (expected[index].item(),) * 2, (op, index)
    e = interpreter.explain(51, (0, 32, 32, 7))
    assert (e.value, e.output) == (ref.get_tensor(steps[51].op.outputs[0])[0, 32, 32, 7],) * 2


def test_dm05_atrous_depthwise_shows_padding_and_dilation(dm05: Any) -> None:
    path, x, ref = dm05
    interpreter = Interpreter(model_path=path, backend="numpy")
    e = interpreter.explain(51, (0, 0, 0, 5), inputs=x)
    window = e.steps[0].data
    assert window["window"]["dilation"] == [2, 2]
    taps = [(t["y"], t["x"], t["padding"]) for t in window["taps"]]
    assert taps[4] == (0, 0, False) and taps[5] == (0, 2, False) and taps[0] == (-2, -2, True)
    titles = [s.title for s in e.steps]
    for title in ("zero points subtracted", "int32 accumulator", "bias", "real multiplier", "left shift",
                  "SaturatingRoundingDoublingHighMul", "RoundingDivideByPOT", "output zero point",
                  "activation clamp (quantized)"):
        assert any(t.startswith(title) for t in titles), title
    shift = e.steps[titles.index("real multiplier")].data
    rounding = e.steps[titles.index("RoundingDivideByPOT")].data
    assert rounding["right_shift"] == -shift["shift"] > 0
    text = e.to_text()
    assert "pad" in text and "(0,2)" in text and text.rstrip().endswith("= the op's output in the run")
    expected = ref.get_tensor(interpreter.ops[51].op.outputs[0])[0, 0, 0, 5]
    assert e.value == expected


@pytest.mark.parametrize("backend", BACKENDS)
def test_float_elements_in_a_full_run(float_model: Any, backend: str) -> None:
    path, x, ref = float_model
    interpreter = Interpreter(model_path=path, backend=backend)
    steps = {s.op.index: s for s in interpreter.ops}
    for number, op in enumerate(FLOAT_OPS):
        expected = ref.get_tensor(steps[op].op.outputs[0])
        call = capture(interpreter, op, x if number == 0 else None)
        for index in elements(expected.shape, count=4, seed=op):
            e = explain_call(call, index)
            assert e.value == pytest.approx(expected[index], rel=1e-4, abs=1e-4), (op, index)
            assert e.value == pytest.approx(e.output, rel=1e-5, abs=1e-5), (op, index)


def test_float_elements_bit_exact_on_litert_inputs(float_model: Any) -> None:
    """Fed LiteRT's own inputs to the op, the kernel-order float32 arithmetic is LiteRT REF's, bit for bit."""
    path, x, ref = float_model
    interpreter = Interpreter(model_path=path, backend="numpy")
    interpreter.allocate_tensors()
    for op in FLOAT_OPS:
        step = next(s for s in interpreter.ops if s.op.index == op)
        inputs = tuple(None if i == -1 else interpreter.get_tensor(i) if interpreter.tensors[i].is_constant
                       else ref.get_tensor(i) for i in step.inputs)
        expected = ref.get_tensor(step.op.outputs[0])
        for index in elements(expected.shape, count=10, seed=op):
            e = explain_call(Call(step, inputs, expected, interpreter.tensors), index)
            assert e.value == expected[index].item(), (op, index)


# --- one-op models from the builder: per-channel int8, and the kinds the DeepLabs lack ----------------


def single_op(kind: str, shape: tuple[int, ...], dtype: Any, q_in: Any, out_shape: tuple[int, ...],
              q_out: Any = None, constants: tuple[Any, ...] = (), **options: Any) -> tuple[GraphBuilder, list]:
    rng = np.random.default_rng(3)
    b = GraphBuilder()
    x = b.add_input("x", shape, dtype, quantization=q_in)
    extra = [b.add_constant(f"c{i}", c[0], quantization=c[1]) if isinstance(c, tuple) else c
             for i, c in enumerate(constants)]
    out_dtype = options.pop("output_dtype", dtype)
    b.mark_outputs(b.add_op(kind, [x, *extra], output_shape=out_shape, output_dtype=out_dtype,
                            output_quantization=q_out if q_out is not None else q_in, **options))
    value = (rng.uniform(-3, 3, shape).astype(np.float32) if np.dtype(dtype) == np.float32
             else quantized_input(rng, shape, dtype))
    return b, [value]


def second_input(b: GraphBuilder, shape: tuple[int, ...], dtype: Any, quantization: Any) -> int:
    rng = np.random.default_rng(4)
    value = (rng.uniform(-3, 3, shape).astype(np.float32) if np.dtype(dtype) == np.float32
             else quantized_input(rng, shape, dtype))
    return b.add_constant("other", value, quantization=quantization)


def builder_cases() -> dict[str, tuple[GraphBuilder, list]]:
    cases: dict[str, tuple[GraphBuilder, list]] = {
        "int8_per_channel_conv": build(case_of(dtype="int8", channels=6, filters=5, zero_points=(-5, 0, 7),
                                               stride=(2, 1), dilation=(2, 1), activation="RELU")),
        "int8_per_channel_grouped_conv": build(case_of(channels=6, filters=4, groups=2, dtype="int8",
                                                       zero_points=(-128, 0, 127))),
        "int8_per_channel_atrous_depthwise": build(case_of(multiplier=2, channels=3, dilation=(2, 3), dtype="int8",
                                                           zero_points=(3, 0, -9), activation="RELU6")),
        "uint8_depthwise_multiplier_3": build(case_of(multiplier=3, channels=2, kernel=(5, 5))),
        "float_max_pool": single_op("MAX_POOL_2D", (1, 7, 6, 3), np.float32, None, (1, 4, 3, 3), padding="SAME",
                                    stride_h=2, stride_w=2, filter_height=3, filter_width=3),
        "uint8_max_pool": single_op("MAX_POOL_2D", (1, 7, 6, 3), np.uint8, (0.1, 7), (1, 4, 3, 3), padding="SAME",
                                    stride_h=2, stride_w=2, filter_height=3, filter_width=3,
                                    fused_activation_function="RELU6"),
        "int8_average_pool": single_op("AVERAGE_POOL_2D", (1, 7, 6, 3), np.int8, (0.1, -3), (1, 4, 3, 3),
                                       padding="SAME", stride_h=2, stride_w=2, filter_height=3, filter_width=3),
        "float_average_pool": single_op("AVERAGE_POOL_2D", (1, 7, 6, 3), np.float32, None, (1, 4, 3, 3),
                                        padding="SAME", stride_h=2, stride_w=2, filter_height=3, filter_width=3),
        "float_mean": single_op("MEAN", (1, 5, 4, 3), np.float32, None, (1, 1, 1, 3),
                                constants=((np.array([1, 2], np.int32), None),), keep_dims=True),
        "uint8_mean": single_op("MEAN", (1, 5, 4, 3), np.uint8, (0.05, 100), (1, 3), (0.02, 120),
                                constants=((np.array([1, 2], np.int32), None),), keep_dims=False),
        "int8_resize_integer": single_op("RESIZE_BILINEAR", (1, 3, 4, 2), np.int8, (0.1, 0), (1, 7, 9, 2),
                                         constants=((np.array([7, 9], np.int32), None),), half_pixel_centers=True),
        "uint8_resize": single_op("RESIZE_BILINEAR", (1, 3, 4, 2), np.uint8, (0.1, 0), (1, 7, 9, 2),
                                  constants=((np.array([7, 9], np.int32), None),), align_corners=True),
        "float_resize": single_op("RESIZE_BILINEAR", (1, 3, 4, 2), np.float32, None, (1, 7, 9, 2),
                                  constants=((np.array([7, 9], np.int32), None),), half_pixel_centers=True),
        "float_to_int8_quantize": single_op("QUANTIZE", (1, 4, 5, 3), np.float32, None, (1, 4, 5, 3),
                                            (0.02, -4), output_dtype=np.int8),
        "uint8_requantize": single_op("QUANTIZE", (1, 4, 5, 3), np.uint8, (0.05, 100), (1, 4, 5, 3), (0.03, 90)),
    }
    for kind in ("ADD", "SUB", "MUL"):
        for dtype, q, q_out in ((np.float32, None, None), (np.uint8, (0.05, 120), (0.07, 100)),
                                (np.int8, (0.05, -10), (0.09, 5))):
            b, inputs = single_op(kind, (1, 3, 4, 5), dtype, q, (1, 3, 4, 5), q_out)
            # rebuild with a broadcast constant second operand
            g = GraphBuilder()
            x = g.add_input("x", (1, 3, 4, 5), dtype, quantization=q)
            other = second_input(g, (1, 1, 4, 5), dtype, (0.04, 3) if q is not None else None)
            g.mark_outputs(g.add_op(kind, [x, other], output_shape=(1, 3, 4, 5), output_dtype=dtype,
                                    output_quantization=q_out, fused_activation_function="RELU6"))
            cases[f"{np.dtype(dtype).name}_{kind.lower()}"] = (g, inputs)
    g = GraphBuilder()  # uint8 CONCATENATION with an input of its own scale: requantized
    a = g.add_input("a", (1, 3, 4, 2), np.uint8, quantization=(0.05, 120))
    c = second_input(g, (1, 3, 4, 3), np.uint8, (0.11, 30))
    g.mark_outputs(g.add_op("CONCATENATION", [a, c], output_shape=(1, 3, 4, 5), output_dtype=np.uint8,
                            output_quantization=(0.07, 100), axis=3))
    cases["uint8_concatenation_requantized"] = (g, [quantized_input(np.random.default_rng(5), (1, 3, 4, 2),
                                                                    np.uint8)])
    return cases


CASES = builder_cases()


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("name", sorted(CASES))
def test_single_op_elements_equal_litert(name: str, backend: str) -> None:
    builder, inputs = CASES[name]
    data = builder.to_bytes()
    (expected,) = run_litert(data, inputs)
    interpreter = Interpreter(model_content=data, backend=backend)
    for number, index in enumerate(elements(expected.shape, count=12)):
        e = interpreter.explain(0, index, inputs=inputs if number == 0 else None)
        assert e.value == expected[index].item(), index
        if expected.dtype == np.float32:  # npdeeplab's float kernels may sum in another order
            assert e.output == pytest.approx(e.value, rel=1e-6, abs=1e-6), index
        else:
            assert e.output == e.value, index
    assert json.loads(json.dumps(e.to_dict()))["value"] == e.value


def test_int8_per_channel_uses_each_channels_multiplier() -> None:
    builder, inputs = CASES["int8_per_channel_conv"]
    interpreter = Interpreter(model_content=builder.to_bytes(), backend="numpy")
    multipliers = {interpreter.explain(0, (0, 1, 1, c), inputs=inputs).steps[4].data["multiplier"] for c in range(5)}
    assert len(multipliers) > 1
    e = interpreter.explain(0, (0, 0, 0, 2))  # a padding corner: stride 2x1, dilation 2x1
    taps = e.steps[2].data["taps"]  # the taps inside the input, each with all 6 channels' products
    inside = [t for t in e.steps[0].data["taps"] if not t["padding"]]
    assert len(taps) == len(inside) < 9 and all(len(t["products"]) == 6 for t in taps)
    assert taps[-1]["products"][-1]["acc"] + e.steps[3].data["bias"] == e.steps[3].data["acc"]
    assert "prepare's are used" not in e.to_text()


# --- errors and the command line ----------------------------------------------------------------


def test_uncovered_kind_and_bad_element_are_one_line_errors(dm05: Any) -> None:
    path, x, _ = dm05
    interpreter = Interpreter(model_path=path, backend="numpy")
    with pytest.raises(InputError, match="explain does not cover ARG_MAX yet"):
        interpreter.explain(71, (0, 0, 0), inputs=x)
    with pytest.raises(InputError, match=r"element \[0,0,0,999\] is not in the op's output"):
        interpreter.explain(51, (0, 0, 0, 999), inputs=x)
    with pytest.raises(InputError, match="op 500 is not in the model"):
        interpreter.explain(500, (0, 0, 0, 0), inputs=x)
    with pytest.raises(InputError, match="no inputs"):
        Interpreter(model_path=path, backend="numpy").explain(51, (0, 0, 0, 0))


def test_cli_text_and_json(dm05: Any, capsys: pytest.CaptureFixture[str], tmp_path: Any) -> None:
    path, x, ref = dm05
    np.save(tmp_path / "x.npy", x)
    assert main(["explain", str(path), "--op", "51", "--at", "0,0,0,5", "--input", str(tmp_path / "x.npy"),
                 "--backend", "numpy"]) == 0
    text = capsys.readouterr().out
    assert "RoundingDivideByPOT" in text and "ky=0" in text
    assert main(["explain", str(path), "--op", "51", "--at", "0,0,0,5", "--input", str(tmp_path / "x.npy"),
                 "--json", "--backend", "numpy"]) == 0
    report = json.loads(capsys.readouterr().out)
    expected = ref.get_tensor(Interpreter(model_path=path).ops[51].op.outputs[0])[0, 0, 0, 5]
    assert report["value"] == expected and report["kind"] == "DEPTHWISE_CONV_2D"
    assert main(["explain", str(path), "--op", "51", "--at", "0,0,0,5", "--random", "--json"]) == 0
    assert "value" in json.loads(capsys.readouterr().out)
    image = shared_file("images", "bird_segmentation.bmp")  # IMAGE after the options, as the usage shows
    assert main(["explain", str(path), "--op", "0", "--at", "0,0,0,0", str(image), "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["op"] == 0
    np.save(tmp_path / "wrong.npy", x[..., :2])
    assert main(["explain", str(path), "--op", "0", "--at", "0,0,0,0", "--input", str(tmp_path / "wrong.npy")]) == 2
    assert "the model takes uint8[1, 513, 513, 3]" in capsys.readouterr().err


@pytest.mark.parametrize("argv, message", [
    (["--op", "71", "--at", "0,0,0", "--random"], "explain does not cover ARG_MAX yet"),
    (["--op", "51", "--at", "0,x", "--random"], "give comma-separated integers"),
    (["--op", "51", "--at", "0,0,0,0"], "give an IMAGE, --random or --input"),
    (["--op", "51", "--at", "0,40,0,0", "--random"], "is not in the op's output"),
])
def test_cli_errors_exit_2(dm05: Any, capsys: pytest.CaptureFixture[str], argv: list[str], message: str) -> None:
    path, _, _ = dm05
    assert main(["explain", str(path), *argv]) == 2
    err = capsys.readouterr().err
    assert message in err and len(err.strip().splitlines()) == 1
