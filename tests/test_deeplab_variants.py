"""Synthetic DeepLab graphs, built with npdeeplab.model.builder, end to end against LiteRT.

The seed model is one DeepLab: output stride 16, 257x257, atrous rates 2 and 4 in the backbone.
These are the others users bring: output stride 8 (atrous rates doubled), DeepLab v3+ with its
decoder, ASPP with rates 6/12/18 and image pooling as AVERAGE_POOL_2D or as MEAN, at the
input sizes 321 and 513. Weights are random (fixed seed) and channels tiny, so that 513x513 runs
in about a second; the structure (strides, dilations, paddings, resizes) is DeepLab's.

Each graph runs in LiteRT (BUILTIN_REF and the default resolver) and in npdeeplab (every backend):
max |difference| <= 1e-4 x max(1, max|logits|), and the per-pixel argmax agrees on >= 99.9% of pixels.
"""

from __future__ import annotations

import os
from collections.abc import Callable

import numpy as np
import pytest
from conftest import BACKENDS

from npdeeplab import Interpreter
from npdeeplab.model.builder import GraphBuilder

try:
    from ai_edge_litert.interpreter import Interpreter as LiteRTInterpreter
    from ai_edge_litert.interpreter import OpResolverType
except ImportError:  # pragma: no cover - depends on the environment
    if os.environ.get("CI") == "true":
        pytest.fail("ai-edge-litert does not import in CI; the DeepLab variants must be checked", pytrace=False)
    pytest.skip("ai-edge-litert is not installed", allow_module_level=True)

CLASSES = 21
TOLERANCE = 1e-4
ARGMAX_AGREEMENT = 0.999


class DeepLabBuilder:
    """DeepLab's building blocks over a GraphBuilder, with random weights from one seed."""

    def __init__(self, size: int, seed: int) -> None:
        self.b = GraphBuilder(description=f"synthetic DeepLab {size}x{size}")
        self.rng = np.random.default_rng(seed)
        self.size = size
        self.image = self.b.add_input("image", (1, size, size, 3))

    def weights(self, shape: tuple[int, ...], fan_in: int) -> int:
        values = self.rng.standard_normal(shape) * np.sqrt(2.0 / fan_in)
        return self.b.add_constant(f"w{len(self.b.tensors)}", values.astype(np.float32))

    def bias(self, channels: int) -> int:
        return self.b.add_constant(f"b{len(self.b.tensors)}", self.rng.uniform(-0.1, 0.1, channels).astype(np.float32))

    def conv(self, x: int, channels: int, kernel: int = 1, stride: int = 1, rate: int = 1, act: str = "RELU6") -> int:
        cin = self.b.shape(x)[3]
        w = self.weights((channels, kernel, kernel, cin), kernel * kernel * cin)
        return self.b.add_op(
            "CONV_2D", [x, w, self.bias(channels)], padding="SAME", stride_h=stride, stride_w=stride,
            dilation_h_factor=rate, dilation_w_factor=rate, fused_activation_function=act,
        )

    def depthwise(self, x: int, stride: int = 1, rate: int = 1) -> int:
        channels = self.b.shape(x)[3]
        w = self.weights((1, 3, 3, channels), 9)
        return self.b.add_op(
            "DEPTHWISE_CONV_2D", [x, w, self.bias(channels)], padding="SAME", stride_h=stride, stride_w=stride,
            dilation_h_factor=rate, dilation_w_factor=rate, depth_multiplier=1, fused_activation_function="RELU6",
        )

    def inverted_residual(self, x: int, channels: int, stride: int = 1, rate: int = 1) -> int:
        """MobileNetV2's block: 1x1 expand, 3x3 depthwise (strided or atrous), 1x1 project, residual add."""
        y = self.conv(x, 2 * self.b.shape(x)[3])
        y = self.depthwise(y, stride=stride, rate=rate)
        y = self.conv(y, channels, act="NONE")
        return self.b.add_op("ADD", [x, y]) if self.b.shape(y) == self.b.shape(x) else y

    def resize(self, x: int, height: int, width: int) -> int:
        size = self.b.add_constant(f"size{len(self.b.tensors)}", np.array([height, width], np.int32))
        return self.b.add_op("RESIZE_BILINEAR", [x, size], align_corners=True)

    def backbone(self, output_stride: int) -> tuple[int, int]:
        """(features at output_stride, low-level features at stride 4). A MobileNetV2-like stack of
        stages that would reach stride 32; stages past the output stride trade their stride for an
        atrous rate that doubles per stage, as DeepLab does (stride 16: rate 2; stride 8: 2 and 4)."""
        x = self.conv(self.image, 8, kernel=3, stride=2)  # stride 2
        x = self.inverted_residual(x, 8)
        low_level = x = self.inverted_residual(x, 12, stride=2)  # stride 4
        x = self.inverted_residual(x, 12)
        stride, rate = 4, 1
        for channels in (16, 24, 32):
            if stride < output_stride:
                x, stride = self.inverted_residual(x, channels, stride=2), stride * 2
            else:
                rate *= 2
                x = self.inverted_residual(x, channels, rate=rate)
            x = self.inverted_residual(x, channels, rate=rate)
        return x, low_level

    def image_pooling(self, x: int, form: str) -> int:
        _, height, width, _ = self.b.shape(x)
        if form == "AVERAGE_POOL_2D":
            pooled = self.b.add_op("AVERAGE_POOL_2D", [x], padding="VALID", filter_height=height, filter_width=width,
                                   stride_h=height, stride_w=width)
        else:
            axes = self.b.add_constant(f"axes{len(self.b.tensors)}", np.array([1, 2], np.int32))
            pooled = self.b.add_op("MEAN", [x, axes], keep_dims=True)
        return self.resize(self.conv(pooled, 8), height, width)

    def aspp(self, x: int, rates: tuple[int, ...], pooling: str) -> int:
        branches = [self.conv(x, 8)] + [self.conv(x, 8, kernel=3, rate=r) for r in rates]
        branches.append(self.image_pooling(x, pooling))
        return self.conv(self.b.add_op("CONCATENATION", branches, axis=3), 8)

    def logits(self, x: int) -> int:
        y = self.resize(self.conv(x, CLASSES, act="NONE"), self.size, self.size)
        self.b.mark_outputs(y)
        return y


def deeplab_v3(size: int, output_stride: int, pooling: str, seed: int = 0) -> GraphBuilder:
    """DeepLab v3: backbone, ASPP (rates 6/12/18 at output stride 16, doubled at 8), logits, resize."""
    net = DeepLabBuilder(size, seed)
    features, _ = net.backbone(output_stride)
    rates = (6, 12, 18) if output_stride == 16 else (12, 24, 36)
    net.logits(net.aspp(features, rates, pooling))
    return net.b


def deeplab_v3_plus(size: int, pooling: str, seed: int = 0) -> GraphBuilder:
    """DeepLab v3+: the v3 encoder at output stride 16, then the decoder: 1x1-projected stride-4
    features, the ASPP output upsampled to them, concatenation, two 3x3 refinements, resize."""
    net = DeepLabBuilder(size, seed)
    features, low_level = net.backbone(16)
    encoded = net.aspp(features, (6, 12, 18), pooling)
    _, height, width, _ = net.b.shape(low_level)
    projected = net.conv(low_level, 4)
    upsampled = net.resize(encoded, height, width)
    x = net.b.add_op("CONCATENATION", [upsampled, projected], axis=3)
    x = net.conv(net.conv(x, 8, kernel=3), 8, kernel=3)
    net.logits(x)
    return net.b


VARIANTS: dict[str, Callable[[], GraphBuilder]] = {
    "v3-os16-aspp-6-12-18-average-pool-321": lambda: deeplab_v3(321, 16, "AVERAGE_POOL_2D"),
    "v3-os16-aspp-6-12-18-mean-321": lambda: deeplab_v3(321, 16, "MEAN"),
    "v3-os8-aspp-12-24-36-average-pool-321": lambda: deeplab_v3(321, 8, "AVERAGE_POOL_2D", seed=1),
    "v3-os8-aspp-12-24-36-mean-513": lambda: deeplab_v3(513, 8, "MEAN", seed=2),
    "v3plus-decoder-mean-321": lambda: deeplab_v3_plus(321, "MEAN", seed=3),
    "v3plus-decoder-average-pool-513": lambda: deeplab_v3_plus(513, "AVERAGE_POOL_2D", seed=4),
}


def run_litert(data: bytes, image: np.ndarray, resolver: OpResolverType) -> np.ndarray:
    interpreter = LiteRTInterpreter(model_content=data, experimental_op_resolver_type=resolver)
    interpreter.allocate_tensors()
    interpreter.set_tensor(interpreter.get_input_details()[0]["index"], image)
    interpreter.invoke()
    return interpreter.get_tensor(interpreter.get_output_details()[0]["index"])


def run_npdeeplab(builder: GraphBuilder, image: np.ndarray, backend: str) -> np.ndarray:
    interpreter = Interpreter(model=builder.build(), backend=backend)
    interpreter.allocate_tensors()
    interpreter.set_tensor(interpreter.get_input_details()[0]["index"], image)
    interpreter.invoke()
    return interpreter.get_tensor(interpreter.get_output_details()[0]["index"])


def assert_agrees(got: np.ndarray, expected: np.ndarray, what: str) -> None:
    assert got.shape == expected.shape and got.dtype == expected.dtype, what
    scale = max(1.0, float(np.abs(expected).max()))
    error = float(np.abs(got - expected).max())
    assert error <= TOLERANCE * scale, f"{what}: max abs difference {error:.3g} > {TOLERANCE} x {scale:.3g}"
    agreement = float(np.mean(got.argmax(-1) == expected.argmax(-1)))
    assert agreement >= ARGMAX_AGREEMENT, f"{what}: argmax agrees on {agreement:.4%} of pixels"


@pytest.mark.parametrize("name", list(VARIANTS))
def test_deeplab_variant_against_litert(name: str) -> None:
    builder = VARIANTS[name]()
    size = builder.shape(builder.inputs[0])[1]
    image = np.random.default_rng(size).uniform(-1, 1, (1, size, size, 3)).astype(np.float32)
    data = builder.to_bytes()
    reference = run_litert(data, image, OpResolverType.BUILTIN_REF)
    assert reference.shape == (1, size, size, CLASSES)
    assert np.unique(reference.argmax(-1)).size > 1, "a degenerate graph: one class everywhere"
    for backend in BACKENDS:
        got = run_npdeeplab(builder, image, backend)
        assert_agrees(got, reference, f"{name}: npdeeplab {backend} vs LiteRT BUILTIN_REF")
    assert_agrees(got, run_litert(data, image, OpResolverType.AUTO), f"{name}: npdeeplab vs LiteRT default resolver")


def test_variants_have_deeplab_structure() -> None:
    """The graphs are what their names say: strides, atrous rates, pooling form, decoder."""
    model = VARIANTS["v3-os8-aspp-12-24-36-mean-513"]().build()
    graph = model.main
    rates = sorted({op.options.dilation_h_factor for op in graph.ops if op.kind == "CONV_2D"})
    assert rates == [1, 12, 24, 36]
    assert sorted({op.options.dilation_h_factor for op in graph.ops if op.kind == "DEPTHWISE_CONV_2D"}) == [1, 2, 4]
    concat = next(op for op in graph.ops if op.kind == "CONCATENATION")
    assert graph.tensors[concat.outputs[0]].shape == (1, 65, 65, 40)  # 513 at output stride 8, five branches
    os16 = VARIANTS["v3-os16-aspp-6-12-18-mean-321"]().build().main
    assert sorted({op.options.dilation_h_factor for op in os16.ops if op.kind == "DEPTHWISE_CONV_2D"}) == [1, 2]
    assert "MEAN" in {op.kind for op in graph.ops} and "AVERAGE_POOL_2D" not in {op.kind for op in graph.ops}
    plus = VARIANTS["v3plus-decoder-mean-321"]().build().main
    concats = [plus.tensors[op.outputs[0]].shape for op in plus.ops if op.kind == "CONCATENATION"]
    assert concats == [(1, 21, 21, 40), (1, 81, 81, 12)]  # ASPP at stride 16, then the decoder at stride 4
