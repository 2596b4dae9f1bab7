"""A MobileNetV3-style person-segmentation model, built with npdeeplab.model.builder, against LiteRT.

The shared Selfie model is one person segmenter; this is the family it belongs to, made small:
a 64x64 RGB input in [0, 1], a stride-2 stem with HARD_SWISH, three inverted-residual blocks
(1x1 expand with RELU or HARD_SWISH, 3x3 depthwise, one of them strided, squeeze-excite and a
1x1 projection, residual ADDs where the shapes allow), and a decoder: a stride-2 TRANSPOSE_CONV
with bias, a skip ADD from the stride-2 features, RESIZE_BILINEAR back to 64x64 and a 1-channel
convolution with LOGISTIC, the person probability. Squeeze-excite is MobileNetV3's: a global
average (AVERAGE_POOL_2D in one block, MEAN in another), RESHAPE, FULLY_CONNECTED, RELU,
FULLY_CONNECTED, a gate (LOGISTIC, or the hard sigmoid relu6(x + 3) / 6 as ADD, RELU6 and MUL),
RESHAPE to [1, 1, 1, C] and a MUL broadcast over the block's activations.

Four forms, each on every backend:
- float32: every op within float32 rounding of LiteRT's reference kernels and of its optimised
  kernels, op by op in a whole run; the probability within 1e-5 of REF and of the default resolver.
- float16 weights: every weight and bias stored as float16 and widened by DEQUANTIZE (as the
  Selfie model is): within 1e-4 relative of LiteRT; `inspect` reports the float16 tensors.
- int8, made by tests/post_training.py (per-channel weights, calibrated activations), with float
  input and output through QUANTIZE/DEQUANTIZE and with int8 input and output: every op identical
  to BUILTIN_REF, in a whole run and with each op fed REF's inputs.
- the decoder's TRANSPOSE_CONV as MediaPipe's custom Convolution2DTransposeBias: npdeeplab runs the
  custom op; LiteRT runs the builtin rewrite (compare_with_litert does it); every op within tolerance.
"""

from __future__ import annotations

import struct
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from conftest import BACKENDS
from post_training import WEIGHTED, quantize_graph

from npdeeplab import Interpreter
from npdeeplab.model.builder import GraphBuilder
from npdeeplab.model.ir import Model
from npdeeplab.model.writer import save_model
from npdeeplab.ops.mediapipe import NAME as MEDIAPIPE_TRANSPOSE_CONV
from npdeeplab.tools.comparison import compare_with_litert
from npdeeplab.tools.summary import summarize

SIZE = 64
# compare_with_litert's per-element |a - b| <= tol + tol |b|; seen: at most 5e-7 of a tensor's largest
# value (a few ULPs, float32 sums in another order than LiteRT's), so 1e-5 is float rounding with room.
FLOAT_TOLERANCE = 1e-5
PROBABILITY_TOLERANCE = 1e-5
FLOAT16_TOLERANCE = 1e-4
HEAD_GAIN = 4.0  # spreads the probabilities of random weights on noise over most of (0, 1)
SAME_PADDING = 1  # TfLitePadding in MediaPipe's raw custom options


class PersonSegmenterBuilder:
    """MobileNetV3's building blocks over a GraphBuilder, with random weights from one seed.

    upsample: the decoder's transposed convolution, "TRANSPOSE_CONV" (the builtin) or "CUSTOM"
    (MediaPipe's Convolution2DTransposeBias, same weights and result).
    """

    def __init__(self, seed: int = 0, upsample: str = "TRANSPOSE_CONV") -> None:
        self.b = GraphBuilder(description=f"synthetic MobileNetV3 person segmenter {SIZE}x{SIZE}")
        self.rng = np.random.default_rng(seed)
        self.upsample = upsample
        self.image = self.b.add_input("image", (1, SIZE, SIZE, 3))

    # --- constants ------------------------------------------------------------------------------

    def constant(self, name: str, values: np.ndarray) -> int:
        """A float32 constant; Float16PersonSegmenter stores it as float16 instead."""
        return self.b.add_constant(f"{name}{len(self.b.tensors)}", values.astype(np.float32))

    def weights(self, shape: tuple[int, ...], fan_in: int, gain: float = 1.0) -> int:
        """He-initialised, times gain."""
        return self.constant("w", self.rng.standard_normal(shape) * gain * np.sqrt(2.0 / fan_in))

    def bias(self, channels: int) -> int:
        return self.constant("b", self.rng.uniform(-0.1, 0.1, channels))

    def ints(self, name: str, values: tuple[int, ...]) -> int:
        return self.b.add_constant(f"{name}{len(self.b.tensors)}", np.array(values, np.int32))

    # --- layers ---------------------------------------------------------------------------------

    def activation(self, x: int, act: str) -> int:
        """HARD_SWISH as its own op (LiteRT fuses no hard-swish), anything else fused before it."""
        return self.b.add_op("HARD_SWISH", [x]) if act == "HARD_SWISH" else x

    def conv(self, x: int, channels: int, kernel: int = 1, stride: int = 1, act: str = "NONE",
             gain: float = 1.0) -> int:
        """CONV_2D SAME with bias; act "HARD_SWISH" adds the op, other activations are fused."""
        cin = self.b.shape(x)[3]
        w = self.weights((channels, kernel, kernel, cin), kernel * kernel * cin, gain)
        fused = "NONE" if act == "HARD_SWISH" else act
        y = self.b.add_op("CONV_2D", [x, w, self.bias(channels)], padding="SAME", stride_h=stride,
                          stride_w=stride, fused_activation_function=fused)
        return self.activation(y, act)

    def depthwise(self, x: int, stride: int, act: str) -> int:
        channels = self.b.shape(x)[3]
        w = self.weights((1, 3, 3, channels), 9)
        fused = "NONE" if act == "HARD_SWISH" else act
        y = self.b.add_op("DEPTHWISE_CONV_2D", [x, w, self.bias(channels)], padding="SAME", stride_h=stride,
                          stride_w=stride, depth_multiplier=1, fused_activation_function=fused)
        return self.activation(y, act)

    def dense(self, x: int, units: int, act: str = "NONE") -> int:
        depth = self.b.shape(x)[-1]
        w = self.weights((units, depth), depth)
        return self.b.add_op("FULLY_CONNECTED", [x, w, self.bias(units)], fused_activation_function=act)

    def reshape(self, x: int, shape: tuple[int, ...]) -> int:
        return self.b.add_op("RESHAPE", [x, self.ints("shape", shape)], new_shape=shape)

    def global_average(self, x: int, form: str) -> int:
        """[1, H, W, C] -> [1, 1, 1, C] by AVERAGE_POOL_2D over the whole map, or by MEAN."""
        _, height, width, _ = self.b.shape(x)
        if form == "AVERAGE_POOL_2D":
            return self.b.add_op("AVERAGE_POOL_2D", [x], padding="VALID", filter_height=height,
                                 filter_width=width, stride_h=height, stride_w=width)
        return self.b.add_op("MEAN", [x, self.ints("axes", (1, 2))], keep_dims=True)

    def gate(self, x: int, form: str) -> int:
        """LOGISTIC, or MobileNetV3's hard sigmoid relu6(x + 3) / 6 as the converter lays it out."""
        if form == "LOGISTIC":
            return self.b.add_op("LOGISTIC", [x])
        shifted = self.b.add_op("ADD", [x, self.constant("three", np.array([3.0]))], fused_activation_function="RELU6")
        return self.b.add_op("MUL", [shifted, self.constant("sixth", np.array([1 / 6]))])

    # --- blocks ---------------------------------------------------------------------------------

    def squeeze_excite(self, x: int, pooling: str, gate: str) -> int:
        """Global average, RESHAPE [1, C], FULLY_CONNECTED to C/4, RELU, FULLY_CONNECTED to C, gate,
        RESHAPE [1, 1, 1, C], MUL broadcast with x."""
        channels = self.b.shape(x)[3]
        squeezed = self.reshape(self.global_average(x, pooling), (1, channels))
        hidden = self.b.add_op("RELU", [self.dense(squeezed, max(8, channels // 4))])
        weights = self.gate(self.dense(hidden, channels), gate)
        return self.b.add_op("MUL", [x, self.reshape(weights, (1, 1, 1, channels))])

    def inverted_residual(self, x: int, expand: int, channels: int, stride: int, act: str, pooling: str,
                          gate: str) -> int:
        """MobileNetV3's bneck: 1x1 expand, 3x3 depthwise, squeeze-excite, 1x1 project, residual ADD
        when the shapes allow."""
        y = self.conv(x, expand, act=act)
        y = self.depthwise(y, stride, act)
        y = self.squeeze_excite(y, pooling, gate)
        y = self.conv(y, channels)
        return self.b.add_op("ADD", [x, y]) if self.b.shape(y) == self.b.shape(x) else y

    def transposed_conv(self, x: int, channels: int) -> int:
        """3x3 stride-2 SAME upsampling with bias: the builtin, or MediaPipe's custom op."""
        n, height, width, cin = self.b.shape(x)
        w = self.weights((channels, 3, 3, cin), 9 * cin)
        bias = self.bias(channels)
        shape = (n, 2 * height, 2 * width, channels)
        if self.upsample == "TRANSPOSE_CONV":
            return self.b.add_op("TRANSPOSE_CONV", [self.ints("output_shape", shape), w, x, bias], padding="SAME",
                                 stride_h=2, stride_w=2)
        return self.b.add_op(f"CUSTOM:{MEDIAPIPE_TRANSPOSE_CONV}", [x, w, bias], output_shape=shape,
                             output_dtype=np.float32, custom_options=struct.pack("<iii", SAME_PADDING, 2, 2))

    def encoder(self) -> tuple[int, int]:
        """(features at stride 4, skip features at stride 2)."""
        x = self.conv(self.image, 16, kernel=3, stride=2, act="HARD_SWISH")  # 32x32
        skip = x = self.inverted_residual(x, 32, 16, 1, "RELU", "AVERAGE_POOL_2D", "LOGISTIC")
        x = self.inverted_residual(x, 48, 24, 2, "HARD_SWISH", "MEAN", "HARD_SIGMOID")  # 16x16
        x = self.inverted_residual(x, 72, 24, 1, "HARD_SWISH", "MEAN", "LOGISTIC")
        return x, skip

    def decoder(self, features: int, skip: int) -> int:
        """Upsample to the skip's stride, add it, resize to the input and classify: person probability."""
        x = self.transposed_conv(features, self.b.shape(skip)[3])
        x = self.b.add_op("ADD", [x, skip], fused_activation_function="RELU")
        x = self.b.add_op("RESIZE_BILINEAR", [x, self.ints("size", (SIZE, SIZE))], half_pixel_centers=True)
        return self.b.add_op("LOGISTIC", [self.conv(x, 1, gain=HEAD_GAIN)])


class Float16PersonSegmenter(PersonSegmenterBuilder):
    """The same model with every float constant stored as float16 and widened by DEQUANTIZE."""

    def constant(self, name: str, values: np.ndarray) -> int:
        stored = self.b.add_constant(f"{name}{len(self.b.tensors)}_fp16", values.astype(np.float16))
        return self.b.add_op("DEQUANTIZE", [stored], output_shape=values.shape, output_dtype=np.float32)


def person_segmenter(net: PersonSegmenterBuilder) -> GraphBuilder:
    """The whole model on net's weights: encoder, decoder, the probability as the one output."""
    features, skip = net.encoder()
    net.b.mark_outputs(net.decoder(features, skip))
    return net.b


def images(seed: int, count: int) -> list[np.ndarray]:
    rng = np.random.default_rng(seed)
    return [rng.uniform(0, 1, (1, SIZE, SIZE, 3)).astype(np.float32) for _ in range(count)]


def run(interpreter: Any, x: np.ndarray) -> np.ndarray:
    """One input, one output, for npdeeplab's Interpreter and LiteRT's alike."""
    interpreter.allocate_tensors()
    interpreter.set_tensor(interpreter.get_input_details()[0]["index"], x)
    interpreter.invoke()
    return interpreter.get_tensor(interpreter.get_output_details()[0]["index"])


def litert_output(litert: Any, path: Path, x: np.ndarray, resolver: Any) -> np.ndarray:
    LiteRT, _ = litert
    return run(LiteRT(model_path=str(path), experimental_op_resolver_type=resolver), x)


def assert_close(ours: np.ndarray, theirs: np.ndarray, tolerance: float, what: str) -> None:
    assert ours.shape == theirs.shape and ours.dtype == theirs.dtype, what
    scale = max(1.0, float(np.abs(theirs).max()))
    error = float(np.abs(ours.astype(np.float64) - theirs).max())
    assert error <= tolerance * scale, f"{what}: max |difference| {error:.3g} > {tolerance} x {scale:.3g}"


@pytest.fixture(scope="module")
def float_path(tmp_path_factory) -> Path:
    return person_segmenter(PersonSegmenterBuilder()).save(tmp_path_factory.mktemp("person") / "float.tflite")


@pytest.fixture(scope="module")
def float16_path(tmp_path_factory) -> Path:
    return person_segmenter(Float16PersonSegmenter()).save(tmp_path_factory.mktemp("person") / "float16.tflite")


def test_the_graph_is_a_mobilenet_v3_person_segmenter(float_path):
    graph = Interpreter(model_path=float_path).model.main
    kinds = [op.kind for op in graph.ops]
    assert {"HARD_SWISH", "FULLY_CONNECTED", "LOGISTIC", "AVERAGE_POOL_2D", "MEAN", "RESHAPE", "MUL",
            "TRANSPOSE_CONV", "RESIZE_BILINEAR", "ADD", "RELU"} <= set(kinds)
    assert kinds.count("FULLY_CONNECTED") == 6 and kinds.count("HARD_SWISH") == 5
    strides = [op.options.stride_h for op in graph.ops if op.kind == "DEPTHWISE_CONV_2D"]
    assert strides == [1, 2, 1]
    excite = [op for op in graph.ops if op.kind == "MUL" and graph.tensors[op.inputs[1]].shape == (1, 1, 1, 48)]
    assert len(excite) == 1 and graph.tensors[excite[0].outputs[0]].shape == (1, 16, 16, 48)  # broadcast
    (up,) = [op for op in graph.ops if op.kind == "TRANSPOSE_CONV"]
    assert up.options.stride_h == up.options.stride_w == 2 and len(up.inputs) == 4  # with bias
    assert graph.tensors[up.outputs[0]].shape == (1, 32, 32, 16)
    assert kinds[-1] == "LOGISTIC" and graph.tensors[graph.outputs[0]].shape == (1, SIZE, SIZE, 1)


@pytest.mark.parametrize("backend", BACKENDS)
def test_float_model_op_by_op_against_litert(float_path, backend, litert):
    """Every op against LiteRT's reference and optimised kernels; the probability against REF and
    the default resolver (XNNPACK, which keeps no intermediates)."""
    _, OpResolverType = litert
    x = images(1, 1)[0]
    interpreter = Interpreter(model_path=float_path, backend=backend)
    for reference in ("litert-ref", "litert"):
        result = compare_with_litert(interpreter, x, reference=reference, atol=FLOAT_TOLERANCE,
                                     rtol=FLOAT_TOLERANCE, reference_model=float_path)
        assert len(result.rows) == len(interpreter.model.main.ops) and not result.exceeded, result.to_text()
    probability = run(interpreter, x)
    assert 0.05 < float(probability.std()), "a degenerate model: the same probability everywhere"
    for resolver in (OpResolverType.BUILTIN_REF, OpResolverType.AUTO):
        theirs = litert_output(litert, float_path, x, resolver)
        assert_close(probability, theirs, PROBABILITY_TOLERANCE, f"{backend} vs LiteRT {resolver}")


@pytest.mark.parametrize("backend", BACKENDS)
def test_float16_weights_agree_with_litert(float16_path, backend, litert):
    """The DEQUANTIZE'd float16 weights are the ones LiteRT widens: every op and the probability agree."""
    _, OpResolverType = litert
    x = images(2, 1)[0]
    interpreter = Interpreter(model_path=float16_path, backend=backend)
    result = compare_with_litert(interpreter, x, reference="litert-ref", atol=FLOAT16_TOLERANCE,
                                 rtol=FLOAT16_TOLERANCE, reference_model=float16_path)
    assert not result.exceeded, result.to_text()
    probability = run(interpreter, x)
    for resolver in (OpResolverType.BUILTIN_REF, OpResolverType.AUTO):
        theirs = litert_output(litert, float16_path, x, resolver)
        assert_close(probability, theirs, FLOAT16_TOLERANCE, f"{backend} vs LiteRT {resolver}")


def test_inspect_reports_the_float16_weights(float16_path):
    """Folded at load, and `npdeeplab inspect`'s summary counts them: every weight, bias and gate constant."""
    interpreter = Interpreter(model_path=float16_path)
    dequantizes = [op for op in interpreter.model.main.ops if op.kind == "DEQUANTIZE"]
    assert interpreter.folded_ops == tuple(op.index for op in dequantizes)
    stored = {interpreter.model.main.tensors[op.inputs[0]].dtype for op in dequantizes}
    assert stored == {np.dtype(np.float16)}
    summary = summarize(interpreter)
    assert summary.numerics == "float16-weight" and summary.problem is None
    assert summary.float16_weights == len(dequantizes) == 2 * 18 + 2  # 18 weighted ops, the hard sigmoid's 3 and 1/6
    text = summary.to_text()
    assert f"float16     {len(dequantizes)} weight tensors stored as float16, widened to float32 once at load" in text


@pytest.fixture(scope="module")
def float_model(float_path) -> Model:
    return Interpreter(model_path=float_path).model


@pytest.mark.parametrize("io", ["float", "int8"])
@pytest.mark.parametrize("backend", BACKENDS)
def test_int8_model_bit_exact_op_by_op(float_model, io, backend, tmp_path, litert):
    """Converter-style int8: every op's output identical to BUILTIN_REF's, in a whole run and fed REF's inputs."""
    quantized = quantize_graph(float_model, images(3, 4), io=io).build()
    graph = quantized.main
    kinds = {op.kind for op in graph.ops}
    assert {"HARD_SWISH", "FULLY_CONNECTED", "LOGISTIC", "TRANSPOSE_CONV", "MUL", "MEAN"} <= kinds
    assert ("QUANTIZE" in kinds and "DEQUANTIZE" in kinds) == (io == "float")
    for op in graph.ops:
        if op.kind in WEIGHTED:  # one scale per output channel
            weights = graph.tensors[op.inputs[WEIGHTED[op.kind][1]]]
            channels = weights.shape[WEIGHTED[op.kind][3]]
            assert weights.dtype == np.int8 and weights.quantization.scale.size == channels, op
        if op.kind == "LOGISTIC":  # what LiteRT requires of an int8 LOGISTIC's output
            q = graph.tensors[op.outputs[0]].quantization
            assert (float(q.scale[0]), int(q.zero_point[0])) == (1 / 256, -128)
    path = save_model(quantized, tmp_path / f"person_int8_{io}.tflite")
    interpreter = Interpreter(model_path=path, backend=backend)
    if io == "float":
        x = images(4, 1)[0]
    else:
        x = np.random.default_rng(4).integers(-128, 128, (1, SIZE, SIZE, 3)).astype(np.int8)
    for isolate in (False, True):
        result = compare_with_litert(interpreter, x, reference="litert-ref", isolate=isolate, atol=0, rtol=0,
                                     reference_model=path)
        assert len(result.rows) == len(graph.ops) and not result.exceeded, result.to_text()


def test_int8_model_tracks_the_float_model(float_model, float_path):
    """The quantization is a sensible one: the int8 probability is near the float one."""
    x = images(5, 1)[0]
    quantized = quantize_graph(float_model, images(3, 4), io="float").build()
    ours = run(Interpreter(model=quantized), x)
    expected = run(Interpreter(model_path=float_path), x)
    assert float(np.abs(ours - expected).max()) < 0.05  # 0.022 seen: about six steps of 1/256


@pytest.mark.parametrize("backend", BACKENDS)
def test_mediapipe_transposed_conv_decoder(float_path, backend, litert):
    """The decoder on MediaPipe's custom op: npdeeplab runs it, LiteRT its builtin rewrite; the same
    probability as the builtin model's."""
    custom = person_segmenter(PersonSegmenterBuilder(upsample="CUSTOM")).build()
    kind = f"CUSTOM:{MEDIAPIPE_TRANSPOSE_CONV}"
    assert [op.kind for op in custom.main.ops].count(kind) == 1
    assert "TRANSPOSE_CONV" not in {op.kind for op in custom.main.ops}
    x = images(6, 1)[0]
    interpreter = Interpreter(model=custom, backend=backend)
    result = compare_with_litert(interpreter, x, reference="litert-ref", atol=FLOAT_TOLERANCE, rtol=FLOAT_TOLERANCE)
    assert any("runs in LiteRT as builtin TRANSPOSE_CONV" in note for note in result.notes), result.notes
    assert len(result.rows) == len(custom.main.ops) and not result.exceeded, result.to_text()
    builtin = run(Interpreter(model_path=float_path, backend=backend), x)
    assert_close(run(interpreter, x), builtin, PROBABILITY_TOLERANCE, f"{backend}: custom vs builtin decoder")
