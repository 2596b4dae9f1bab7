"""MediaPipe's custom Convolution2DTransposeBias, which stock LiteRT cannot run.

How it is checked: LiteRT runs the same model with the custom op rewritten as the builtin
TRANSPOSE_CONV with its bias input (npdeeplab.ops.custom.rewrite_for_litert, the rewrite
`compare` uses), by its reference kernels and by its default resolver; npdeeplab runs the custom
op itself, on every backend. Hypothesis draws strides, kernels, paddings, sizes and channels in
one-op models; the shared Selfie model is held against the rewrite op by op and end to end.
"""

from __future__ import annotations

import struct
from typing import Any

import numpy as np
import pytest
from conftest import BACKENDS, shared_file
from hypothesis import given
from hypothesis import strategies as st
from quantized_harness import SETTINGS, run_litert

import npdeeplab
from npdeeplab import ModelError
from npdeeplab.model.builder import GraphBuilder
from npdeeplab.model.loader import load_model
from npdeeplab.model.writer import write_model
from npdeeplab.ops.custom import rewrite_for_litert
from npdeeplab.ops.mediapipe import NAME, output_size
from npdeeplab.tools.comparison import compare_with_litert
from npdeeplab.tools.extract import extract_ops
from npdeeplab.tools.summary import summarize

SELFIE = "selfiesegmentation_mlkit-256x256-2021_01_19-v1215.f16.tflite"
KIND = f"CUSTOM:{NAME}"
PADDING_CODES = {"SAME": 1, "VALID": 2}
TOLERANCE = 1e-5  # of max(1, max|LiteRT|): the custom op sums in another order than the builtin
Case = dict[str, Any]


def options(padding: str, stride_h: int, stride_w: int) -> bytes:
    return struct.pack("<iii", PADDING_CODES.get(padding, 0), stride_w, stride_h)


def build(case: Case, raw_options: bytes | None = None) -> tuple[GraphBuilder, list[np.ndarray]]:
    rng = np.random.default_rng(case["seed"])
    n, h, w, cin, cout = case["batch"], *case["size"], case["cin"], case["cout"]
    kh, kw = case["kernel"]
    g = GraphBuilder()
    x = g.add_input("x", (n, h, w, cin), np.float32)
    weights = g.add_constant("w", rng.uniform(-1, 1, (cout, kh, kw, cin)).astype(np.float32))
    bias = g.add_constant("bias", rng.uniform(-1, 1, (cout,)).astype(np.float32))
    shape = (n, output_size(h, kh, case["stride"][0], case["padding"]),
             output_size(w, kw, case["stride"][1], case["padding"]), cout)
    custom = options(case["padding"], *case["stride"]) if raw_options is None else raw_options
    g.mark_outputs(g.add_op(KIND, [x, weights, bias], output_shape=shape, output_dtype=np.float32,
                            custom_options=custom))
    return g, [rng.uniform(-1, 1, (n, h, w, cin)).astype(np.float32)]


def run(data: bytes, inputs: list[np.ndarray], backend: str) -> np.ndarray:
    interpreter = npdeeplab.Interpreter(model_content=data, backend=backend)
    interpreter.allocate_tensors()
    interpreter.set_tensor(interpreter.get_input_details()[0]["index"], inputs[0])
    interpreter.invoke()
    return interpreter.get_tensor(interpreter.get_output_details()[0]["index"])


def check(case: Case) -> None:
    builder, inputs = build(case)
    data = builder.to_bytes()
    rewritten, notes = rewrite_for_litert(load_model(data))
    assert notes == [f"op 0 ({KIND}) runs in LiteRT as builtin TRANSPOSE_CONV"]
    for reference in (True, False):
        (expected,) = run_litert(write_model(rewritten), inputs, reference=reference)
        scale = max(1.0, float(np.abs(expected).max()))
        for backend in BACKENDS:
            got = run(data, inputs, backend)
            assert got.shape == expected.shape and got.dtype == np.float32, (backend, got.shape, expected.shape)
            error = float(np.abs(got.astype(np.float64) - expected).max())
            assert error <= TOLERANCE * scale, (backend, reference, error)


@st.composite
def cases(draw: Any) -> Case:
    return {
        "batch": draw(st.integers(1, 2)),
        "size": (draw(st.integers(1, 9)), draw(st.integers(1, 9))),
        "cin": draw(st.integers(1, 8)),
        "cout": draw(st.integers(1, 6)),
        "kernel": (draw(st.integers(1, 5)), draw(st.integers(1, 5))),
        "stride": (draw(st.integers(1, 3)), draw(st.integers(1, 3))),
        "padding": draw(st.sampled_from(["SAME", "VALID"])),
        "seed": draw(st.integers(0, 2**16)),
    }


@SETTINGS
@given(cases())
def test_against_litert_running_the_builtin_rewrite(case: Case) -> None:
    check(case)


SELFIE_DECODER = {"batch": 1, "size": (8, 8), "cin": 16, "cout": 1, "kernel": (2, 2), "stride": (2, 2),
                  "padding": "SAME", "seed": 1}  # the Selfie model's last layer, smaller


@pytest.mark.parametrize("change", [
    {}, {"kernel": (3, 3)}, {"kernel": (4, 4), "stride": (3, 3)}, {"padding": "VALID"}, {"stride": (1, 2)},
])
def test_explicit_cases(change: Case) -> None:
    check(dict(SELFIE_DECODER, **change))


@pytest.mark.parametrize("raw, message", [
    (b"\x01\x00\x00\x00\x02\x00\x00\x00", r"custom options are 8 bytes; expected at least 12"),
    (struct.pack("<iii", 0, 2, 2), r"padding 0 in the custom options is neither SAME \(1\) nor VALID \(2\)"),
    (struct.pack("<iii", 1, 0, 2), r"strides \(2, 0\) in the custom options must be 1 or more"),
])
def test_bad_options_are_refused(raw: bytes, message: str) -> None:
    builder, _ = build(SELFIE_DECODER, raw_options=raw)
    with pytest.raises(ModelError, match=rf"op 0 \({KIND}\): {message}"):
        npdeeplab.Interpreter(model_content=builder.to_bytes())


def test_bias_of_the_wrong_length_is_refused() -> None:
    g = GraphBuilder()
    x = g.add_input("x", (1, 4, 4, 3), np.float32)
    w = g.add_constant("w", np.ones((2, 2, 2, 3), np.float32))
    b = g.add_constant("b", np.ones((3,), np.float32))
    g.mark_outputs(g.add_op(KIND, [x, w, b], output_shape=(1, 8, 8, 2), output_dtype=np.float32,
                            custom_options=options("SAME", 2, 2)))
    with pytest.raises(ModelError, match=r"bias .* has 3 values for weights with 2 output channels"):
        npdeeplab.Interpreter(model_content=g.to_bytes())


def test_inspect_decodes_the_options_and_extract_keeps_them() -> None:
    builder, inputs = build(SELFIE_DECODER)
    model = builder.build()
    row = summarize(model).ops[0]
    assert row.kind == KIND and row.options == "s2 SAME (custom options)" and row.macs == 8 * 8 * 16 * 4
    part = extract_ops(model, 0, 0)
    np.testing.assert_array_equal(run(write_model(part.model), inputs, "numpy"), run(builder.to_bytes(), inputs,
                                                                                       "numpy"))


@pytest.fixture(scope="module")
def selfie() -> str:
    return str(shared_file("models", SELFIE))


@pytest.mark.parametrize("backend", BACKENDS)
def test_selfie_model_op_by_op_against_the_rewrite(selfie: str, litert: Any, backend: str, image_path: Any) -> None:
    """Every op of the shared Selfie model, in a whole run and each fed LiteRT's inputs, within
    float rounding of LiteRT running the model with its custom op rewritten as TRANSPOSE_CONV."""
    from npdeeplab.segmentation import model_input

    interpreter = npdeeplab.Interpreter(model_path=selfie, backend=backend)
    x = model_input(interpreter, image_path("astronaut.png"))
    for isolate in (False, True):
        result = compare_with_litert(interpreter, [x], reference="litert-ref", isolate=isolate, atol=1e-4, rtol=1e-4)
        assert not result.exceeded and len(result.rows) == 136, result.to_text()
        assert f"op 244 ({KIND}) runs in LiteRT as builtin TRANSPOSE_CONV" in result.notes
        last = result.rows[-1]
        assert last.kind == "LOGISTIC" and last.max_abs < 1e-4  # the person probability: 1.4e-5 measured
