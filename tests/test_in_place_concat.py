"""A channel concatenation whose inputs are convolutions or bilinear resizes costs no copy: the Numba
backend writes each into its slice of the concatenation's buffer
(npdeeplab.runtime.plan.in_place_concatenations).

Held against LiteRT's reference kernels, against the same engine with the arena off (every tensor
its own array, nothing aliased: the same kernels, so the same bits), and for which inputs may not
be aliased: a graph input, an input another op also reads, a graph output, a concatenation along
another axis.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest

from npdeeplab import Interpreter
from npdeeplab.model.builder import GraphBuilder
from npdeeplab.runtime.backends import numba_available

if not numba_available():
    if os.environ.get("CI") == "true":
        pytest.fail("Numba does not import in CI; the in-place concatenation must be tested", pytrace=False)
    pytest.skip("Numba is not installed", allow_module_level=True)

try:
    from ai_edge_litert.interpreter import Interpreter as LiteRTInterpreter
    from ai_edge_litert.interpreter import OpResolverType
except ImportError:  # pragma: no cover - depends on the environment
    if os.environ.get("CI") == "true":
        pytest.fail("ai-edge-litert does not import in CI; the in-place concatenation must be tested", pytrace=False)
    pytest.skip("ai-edge-litert is not installed", allow_module_level=True)


def aspp_like(extra_reader: bool = False, concat_is_output: bool = False, axis: int = 3) -> tuple[GraphBuilder, dict]:
    """x -> [1x1 conv (5 channels), x itself, 3x3 conv (7 channels, the direct tile), image pooling
    (average to 1x1, bilinear resize back: 4 channels)] concatenated, then a 1x1 conv; optionally
    the first conv also read by an ADD, or the concatenation a graph output."""
    rng = np.random.default_rng(7)
    b = GraphBuilder()
    x = b.add_input("x", (1, 6, 9, 4))

    def conv(name: str, cout: int, k: int) -> int:
        w = b.add_constant(f"{name}_w", rng.standard_normal((cout, k, k, 4)).astype(np.float32) / k)
        bias = b.add_constant(f"{name}_b", rng.uniform(-0.5, 0.5, cout).astype(np.float32))
        return b.add_op("CONV_2D", [x, w, bias], padding="SAME", fused_activation_function="RELU6")

    pointwise, window = conv("pointwise", 5, 1), conv("window", 7, 3)
    pooled = b.add_op("AVERAGE_POOL_2D", [x], padding="VALID", stride_h=1, stride_w=1, filter_height=6, filter_width=9)
    size = b.add_constant("size", np.array([6, 9], np.int32))
    image = b.add_op("RESIZE_BILINEAR", [pooled, size], align_corners=True)
    inputs = [pointwise, x, window, image] if axis == 3 else [pointwise, conv("other", 5, 1)]
    joined = b.add_op("CONCATENATION", inputs, axis=axis)
    head = b.add_constant("head_w", rng.standard_normal((3, 1, 1, b.shape(joined)[3])).astype(np.float32))
    y = b.add_op("CONV_2D", [joined, head, b.add_constant("head_b", np.zeros(3, np.float32))], padding="VALID")
    outputs = [y]
    if extra_reader:
        outputs.append(b.add_op("ADD", [pointwise, pointwise]))
    if concat_is_output:
        outputs.append(joined)
    b.mark_outputs(*outputs)
    return b, {"x": x, "pointwise": pointwise, "window": window, "image": image, "joined": joined}


def run(builder: GraphBuilder, x: np.ndarray, **options: object) -> tuple[Interpreter, list[np.ndarray]]:
    it = Interpreter(model=builder.build(), backend="numba", **options)
    it.allocate_tensors()
    it.set_tensor(it.get_input_details()[0]["index"], x)
    it.invoke()
    return it, [it.get_tensor(d["index"]) for d in it.get_output_details()]


def litert(builder: GraphBuilder, x: np.ndarray) -> list[np.ndarray]:
    it = LiteRTInterpreter(model_content=builder.to_bytes(), experimental_op_resolver_type=OpResolverType.BUILTIN_REF)
    it.allocate_tensors()
    it.set_tensor(it.get_input_details()[0]["index"], x)
    it.invoke()
    return [it.get_tensor(d["index"]) for d in it.get_output_details()]


IMAGE = np.random.default_rng(3).uniform(-2, 2, (1, 6, 9, 4)).astype(np.float32)


@pytest.mark.parametrize("concat_is_output", [False, True])
def test_the_convolutions_write_into_their_slices(concat_is_output: bool) -> None:
    builder, t = aspp_like(concat_is_output=concat_is_output)
    it, got = run(builder, IMAGE)
    runner = it._runner
    assert {i: (a.concat, a.start) for i, a in runner.aliases.items()} == {
        t["pointwise"]: (t["joined"], 0), t["window"]: (t["joined"], 9), t["image"]: (t["joined"], 16)}
    for index in (t["pointwise"], t["window"], t["image"]):
        assert np.shares_memory(runner.buffers[index], runner.buffers[t["joined"]])
    concat = next(s for s in runner.steps if s.op.kind == "CONCATENATION")
    assert concat.params.in_place == (True, False, True, True)  # x, a graph input, is copied
    joined = it.get_tensor(t["joined"]) if concat_is_output else None
    it.invoke()  # a second invoke: the slices are written again, not accumulated
    again = [it.get_tensor(d["index"]) for d in it.get_output_details()]
    _, separate = run(builder, IMAGE, experimental_preserve_all_tensors=True)
    for a, b, c, expected in zip(got, again, separate, litert(builder, IMAGE), strict=True):
        np.testing.assert_array_equal(a, c)  # the same kernels with nothing aliased: the same bits
        np.testing.assert_array_equal(a, b)
        np.testing.assert_allclose(a, expected, rtol=1e-5, atol=1e-5)
    if concat_is_output:
        np.testing.assert_array_equal(joined[..., 5:9], IMAGE)


def test_an_input_read_elsewhere_or_a_graph_input_is_copied() -> None:
    builder, t = aspp_like(extra_reader=True)
    it, got = run(builder, IMAGE)
    assert set(it._runner.aliases) == {t["window"], t["image"]}  # the ADD reads the pointwise conv too
    for a, expected in zip(got, litert(builder, IMAGE), strict=True):
        np.testing.assert_allclose(a, expected, rtol=1e-5, atol=1e-5)


def test_no_aliases_without_the_arena_or_along_another_axis() -> None:
    """Convolutions that would qualify along the channels are copied when the arena is off, on
    the NumPy backend, and for a concatenation along the width."""
    builder, _ = aspp_like()
    assert not run(builder, IMAGE, experimental_preserve_all_tensors=True)[0]._runner.aliases
    it = Interpreter(model=builder.build(), backend="numpy")
    assert not it._runner.aliases
    other_axis, _ = aspp_like(axis=2)
    assert not run(other_axis, IMAGE)[0]._runner.aliases


@pytest.mark.parametrize("name", ["deeplabv3_257_mv_gpu", "deeplabv3_mnv2_dm05_pascal_quant"])
def test_aspp_concatenation_of_the_deeplab_models(name: str, shared_models_dir: Path) -> None:
    """ASPP's branches are written into the concatenation in place, and the segmentation is the
    same bits as without: both in the float model (image pooling ends in a RESIZE_BILINEAR, then
    the 1x1 conv); the 1x1 conv only in dm05, whose image pooling ends in a QUANTIZE."""
    path = shared_models_dir / f"{name}.tflite"
    it = Interpreter(model_path=path, backend="numba")
    slices = sorted((it.tensors[a.concat].shape[-1], a.start) for a in it._runner.aliases.values())
    assert slices == ([(512, 0), (512, 256)] if "gpu" in name else [(512, 256)])
    details = it.get_input_details()[0]
    rng = np.random.default_rng(0)
    if details["dtype"] == np.float32:
        x = rng.uniform(-1, 1, details["shape"]).astype(np.float32)
    else:
        x = rng.integers(0, 256, details["shape"]).astype(details["dtype"])
    outputs = []
    for preserve in (False, True):
        runner = Interpreter(model_path=path, backend="numba", experimental_preserve_all_tensors=preserve)
        runner.allocate_tensors()
        runner.set_tensor(details["index"], x)
        runner.invoke()
        outputs.append(runner.get_tensor(runner.get_output_details()[0]["index"]))
    np.testing.assert_array_equal(outputs[0], outputs[1])
