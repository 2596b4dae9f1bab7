"""Every class of malformed input the fuzzer found ends in one ModelError (or ImageError) that
names the problem, at load, on both backends; memory and pixel limits refuse what cannot fit."""

from __future__ import annotations

import dataclasses
import struct
import subprocess
import sys
import warnings

import numpy as np
import pytest
from conftest import BACKENDS
from PIL import Image

import npdeeplab
from npdeeplab.errors import ImageError, InputError, ModelError
from npdeeplab.model.builder import GraphBuilder
from npdeeplab.model.ir import Quantization, SignatureDef
from npdeeplab.model.loader import load_model
from npdeeplab.model.options import StridedSliceOptions
from npdeeplab.model.writer import write_model
from npdeeplab.runtime.plan import memory_limit, parse_bytes
from npdeeplab.segmentation.images import DEFAULT_MAX_PIXELS, load_image


def refused(content: bytes, backend: str = "numpy", **options) -> str:
    with pytest.raises(ModelError) as caught:
        npdeeplab.Interpreter(model_content=content, backend=backend, **options)
    message = str(caught.value)
    assert "\n" not in message
    return message


def replaced(model, *, tensors=None, ops=None, inputs=None, signatures=None):
    graph = model.main
    changes = {}
    if tensors:
        table = list(graph.tensors)
        for index, fields in tensors.items():
            table[index] = dataclasses.replace(table[index], **fields)
        changes["tensors"] = tuple(table)
    if ops:
        table = list(graph.ops)
        for index, fields in ops.items():
            table[index] = dataclasses.replace(table[index], **fields)
        changes["ops"] = tuple(table)
    if inputs is not None:
        changes["inputs"] = tuple(inputs)
    model = dataclasses.replace(model, subgraphs=(dataclasses.replace(graph, **changes),))
    if signatures is not None:
        model = dataclasses.replace(model, signatures=tuple(signatures))
    return write_model(model)


def resize_model(kind: str) -> GraphBuilder:
    g = GraphBuilder()
    x = g.add_input("x", (1, 4, 5, 3))
    g.mark_outputs(g.add_op(kind, [x, g.add_constant("size", np.array([8, 8], np.int32))]))
    return g


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("kind", ["RESIZE_BILINEAR", "RESIZE_NEAREST_NEIGHBOR"])
@pytest.mark.parametrize("shape", [(1, 0, 5, 3), (1, 4, 0, 3), (0, 4, 5, 3), (1, 4, 5, 0)])
def test_an_empty_resize_input_is_refused_at_load(backend, kind, shape):
    """Numba read out of bounds (and segfaulted) on a 0-row input; NumPy raised IndexError."""
    content = replaced(resize_model(kind).build(), tensors={0: {"shape": shape, "shape_signature": shape}})
    message = refused(content, backend)
    assert f"op 0 ({kind}): input 0 (tensor 0 'x') has shape {list(shape)}, which holds no values" in message


@pytest.mark.parametrize("backend", BACKENDS)
def test_resizing_an_input_to_zero_rows_is_refused_and_changes_nothing(backend):
    it = npdeeplab.Interpreter(model_content=resize_model("RESIZE_BILINEAR").to_bytes(), backend=backend)
    with pytest.raises(ModelError, match="RESIZE_BILINEAR needs at least one"):
        it.resize_tensor_input(0, (1, 0, 5, 3))
    it.allocate_tensors()
    it.set_tensor(0, np.ones((1, 4, 5, 3), np.float32))
    it.invoke()
    assert it.get_tensor(it.get_output_details()[0]["index"]).shape == (1, 8, 8, 3)


def conv(cin: int = 3, batch: int = 1) -> GraphBuilder:
    g = GraphBuilder()
    x = g.add_input("x", (batch, 6, 6, 3))
    w = g.add_constant("w", np.ones((4, 3, 3, 3), np.float32))
    g.mark_outputs(g.add_op("CONV_2D", [x, w, g.add_constant("b", np.zeros(4, np.float32))], name="y"))
    return g


def test_conv_with_a_zero_channel_input():
    model = conv().build()
    content = replaced(model, tensors={0: {"shape": (1, 6, 6, 0), "shape_signature": (1, 6, 6, 0)}})
    assert "holds no values" in refused(content)  # was ZeroDivisionError in prepare


def test_conv_whose_filter_wants_more_channels_than_the_input_has():
    model = conv().build()
    w = np.ones((4, 3, 3, 6), np.float32)
    content = replaced(model, tensors={1: {"shape": w.shape, "shape_signature": w.shape, "data": w}})
    assert "input has 3 channels but the filter" in refused(content)


def test_batch_zero_is_refused_at_load_not_at_invoke():
    model = conv().build()
    content = replaced(model, tensors={0: {"shape": (0, 6, 6, 3), "shape_signature": (0, 6, 6, 3)},
                                       3: {"shape": (0, 6, 6, 4), "shape_signature": (0, 6, 6, 4)}})
    assert "op 0 (CONV_2D): input 0 (tensor 0 'x') has shape [0, 6, 6, 3], which holds no values" in refused(content)


@pytest.mark.parametrize("backend", BACKENDS)
def test_empty_tensors_run_through_data_movement_and_arithmetic(backend, litert):
    """LiteRT runs an empty SLICE and an ADD on it; so does npdeeplab, and returns the empty result."""
    LiteRT, OpResolverType = litert
    g = GraphBuilder()
    x = g.add_input("x", (2, 3))
    part = g.add_op("SLICE", [x, g.add_constant("begin", np.array([1, 0], np.int32)),
                              g.add_constant("size", np.array([0, 3], np.int32))])
    g.mark_outputs(g.add_op("ADD", [part, part]))
    content = g.to_bytes()
    results = []
    for it in (npdeeplab.Interpreter(model_content=content, backend=backend),
               LiteRT(model_content=content, experimental_op_resolver_type=OpResolverType.BUILTIN_REF)):
        it.allocate_tensors()
        it.set_tensor(it.get_input_details()[0]["index"], np.ones((2, 3), np.float32))
        it.invoke()
        results.append(it.get_tensor(it.get_output_details()[0]["index"]))
    assert results[0].shape == results[1].shape == (0, 3)


def test_softmax_over_an_empty_axis():
    g = GraphBuilder()
    x = g.add_input("x", (1, 4))
    g.mark_outputs(g.add_op("SOFTMAX", [x]))
    content = replaced(g.build(), tensors={0: {"shape": (1, 0), "shape_signature": (1, 0)}})
    assert "holds no values" in refused(content)


@pytest.mark.parametrize("kind", ["SLICE", "STRIDED_SLICE"])
def test_slices_of_huge_shapes_are_worked_out_without_numpy(kind):
    """np.broadcast_to raised "iterator is too large"; now the shape is computed, then the memory limit speaks."""
    huge = (1, 2**31 - 1, 2**31 - 1, 64)
    g = GraphBuilder()
    x = g.add_input("x", (1, 4, 4, 2))
    spec = [np.array([0, 1, 1, 0], np.int32), np.array([1, 2, 2, 2], np.int32)]
    if kind == "STRIDED_SLICE":
        spec.append(np.array([1, 1, 1, 1], np.int32))
    consts = [g.add_constant(f"c{i}", v) for i, v in enumerate(spec)]
    g.mark_outputs(g.add_op(kind, [x, *consts]))
    content = replaced(g.build(), tensors={0: {"shape": huge, "shape_signature": huge}})
    message = refused(content)
    assert "activation memory" in message and "over the limit" in message


def test_strided_slice_masks_that_address_more_axes_than_the_input_has():
    """ellipsis and new-axis masks on a short input raised StopIteration."""
    g = GraphBuilder()
    x = g.add_input("x", (5,))
    consts = [g.add_constant(f"c{i}", np.zeros(3, np.int32) + v) for i, v in enumerate((0, 1, 1))]
    g.mark_outputs(g.add_op("STRIDED_SLICE", [x, *consts], output_shape=(1,), output_dtype=np.float32))
    for masks in ({"new_axis_mask": 0b100}, {"ellipsis_mask": 0b001, "new_axis_mask": 0b100}):
        content = replaced(g.build(), ops={0: {"options": StridedSliceOptions(**masks)}})
        assert "the slice's masks address more axes than the input's 1 (shape [5])" in refused(content)


def test_a_dimension_past_int32():
    """An empty TILE input with a 2**31 - 1 axis, doubled: get_tensor_details raised OverflowError."""
    g = GraphBuilder()
    x = g.add_input("x", (1, 1, 1))
    g.mark_outputs(g.add_op("TILE", [x, g.add_constant("multiples", np.array([1, 1, 2], np.int32))]))
    shape = (0, 1, 2**31 - 1)
    content = replaced(g.build(), tensors={0: {"shape": shape, "shape_signature": (-1, 1, 2**31 - 1)},
                                           2: {"shape_signature": (-1, -1, -1)}})
    assert "would have shape [0, 1, 4294967294], with a dimension over 2147483647" in refused(content)


def test_a_signature_naming_a_tensor_out_of_range():
    model = conv().build()
    signature = SignatureDef("serving_default", 0, {"x": 0}, {"y": 999})
    message = refused(replaced(model, signatures=[signature]))
    assert "signature 'serving_default' output 'y' refers to tensor 999, out of range 0..3" in message


def test_a_constant_listed_as_a_graph_input():
    """It was silently zeroed; now refused."""
    model = conv().build()
    message = refused(replaced(model, inputs=[0, 1]))
    assert "graph input 1 is tensor 1 'w', a constant" in message


def test_an_op_writing_a_constant_or_an_input():
    model = conv().build()
    message = refused(replaced(model, ops={0: {"outputs": (1,)}}))
    assert "output 0 (tensor 1 'w') is a constant" in message


def test_a_uint8_zero_point_out_of_range():
    """PAD of uint8 with zero point 300 raised OverflowError."""
    g = GraphBuilder()
    x = g.add_input("x", (1, 2, 2, 1), np.uint8, quantization=(0.5, 3))
    paddings = g.add_constant("paddings", np.array([[0, 0], [1, 1], [1, 1], [0, 0]], np.int32))
    g.mark_outputs(g.add_op("PAD", [x, paddings], output_quantization=(0.5, 7)))
    model = g.build()
    bad = Quantization(np.array([0.5], np.float32), np.array([300]))
    message = refused(replaced(model, tensors={2: {"quantization": bad}}))
    assert "is uint8 with zero point 300, outside the type's range 0..255" in message


@pytest.mark.parametrize("backend", BACKENDS)
def test_float16_activations_are_refused(backend):
    """They reached a Numba kernel, which raised NotImplementedError."""
    g = GraphBuilder()
    x = g.add_input("x", (1, 4, 4, 2), np.float16)
    g.mark_outputs(g.add_op("RESIZE_NEAREST_NEIGHBOR", [x, g.add_constant("size", np.array([8, 8], np.int32))]))
    assert "graph input 0 (tensor 0 'x') is float16" in refused(g.to_bytes(), backend)


def test_truncated_files_are_described_in_user_terms(seed_model_path):
    data = seed_model_path.read_bytes()
    for cut in (100_000, 2_000_000, len(data) - 10):
        message = refused(data[:cut])
        assert "unpack_from" not in message and "struct" not in message
        assert f"past the end of the {cut}-byte file (truncated" in message, message


@pytest.mark.parametrize("backend", BACKENDS)
def test_arithmetic_on_scalars(backend):
    """0-d ADD: NumPy's clamp was handed a NumPy scalar, which np.clip cannot write into."""
    g = GraphBuilder()
    x = g.add_input("x", ())
    g.mark_outputs(g.add_op("ADD", [x, g.add_constant("b", np.array(-3.4e38, np.float32))]))
    it = npdeeplab.Interpreter(model_content=g.to_bytes(), backend=backend)
    it.allocate_tensors()
    it.set_tensor(0, np.array(-3.4e38, np.float32))
    it.invoke()
    assert it.get_tensor(it.get_output_details()[0]["index"]) == np.float32(-3.4028235e38)  # -inf, clamped


def test_a_corrupt_root_offset():
    data = bytearray(conv().to_bytes())
    data[0:4] = struct.pack("<I", len(data) + 100)
    assert f"root table is at byte {len(data) + 100}, past the end" in refused(bytes(data))


def test_a_corrupt_vector_length(seed_model_path):
    model = load_model(seed_model_path)
    data = bytearray(seed_model_path.read_bytes())
    shape = model.main.tensors[50].shape
    start = data.find(struct.pack(f"<I{len(shape)}i", len(shape), *shape))
    data[start : start + 4] = struct.pack("<I", 2**30)  # the shape vector's length
    message = refused(bytes(data))
    assert "runs past the end" in message or "past the end of the" in message


# --- memory -------------------------------------------------------------------------------------


def big_model(side: int = 60000, channels: int = 64) -> bytes:
    g = GraphBuilder()
    x = g.add_input("x", (1, 4, 4, channels))
    g.mark_outputs(g.add_op("RESIZE_NEAREST_NEIGHBOR", [x, g.add_constant("s", np.array([side, side], np.int32))]))
    return g.to_bytes()


def test_a_huge_activation_is_refused_at_load_with_what_it_would_need():
    message = refused(big_model())
    assert "the model needs 921.6 GB of activation memory" in message
    assert "largest tensor is 2" in message and "[1, 60000, 60000, 64] float32" in message
    assert "NPDEEPLAB_MAX_MEMORY" in message


def test_the_memory_limit_can_be_changed(monkeypatch):
    small = big_model(side=64, channels=2)  # 32 kB of output, 128 B of input
    npdeeplab.Interpreter(model_content=small)
    assert "over the limit of 1.0 kB (max_memory=)" in refused(small, max_memory=1000)
    monkeypatch.setenv("NPDEEPLAB_MAX_MEMORY", "16K")
    assert "(NPDEEPLAB_MAX_MEMORY)" in refused(small)
    npdeeplab.Interpreter(model_content=small, max_memory=0)  # 0: no limit
    monkeypatch.setenv("NPDEEPLAB_MAX_MEMORY", "lots")
    with pytest.raises(InputError, match="NPDEEPLAB_MAX_MEMORY='lots' is not a size"):
        npdeeplab.Interpreter(model_content=small)


def test_resize_tensor_input_is_checked_against_the_limit_too():
    it = npdeeplab.Interpreter(model_content=conv().to_bytes(), max_memory=10_000_000)
    with pytest.raises(ModelError, match="over the limit of 10.0 MB"):
        it.resize_tensor_input(0, (1, 4000, 4000, 3))
    assert it.get_input_details()[0]["shape"].tolist() == [1, 6, 6, 3]  # unchanged


def test_preserving_all_tensors_counts_every_tensor():
    content = conv().to_bytes()
    plan = npdeeplab.Interpreter(model_content=content).memory_plan
    limit = plan.all_activation_bytes - 1
    npdeeplab.Interpreter(model_content=content, max_memory=max(limit, plan.peak_bytes))
    message = refused(content, max_memory=limit, experimental_preserve_all_tensors=True)
    assert "every tensor kept" in message


def test_default_limit_is_half_the_ram(monkeypatch):
    monkeypatch.delenv("NPDEEPLAB_MAX_MEMORY", raising=False)
    limit, source = memory_limit()
    assert "half of this machine's" in source and limit > 100e6
    assert parse_bytes("1.5G") == 3 << 29 and parse_bytes("100") == 100


def test_a_huge_pool_window_costs_no_more_than_its_input():
    """The NumPy pool padded its input to the window: tens of GB for a 60000x60000 filter."""
    g = GraphBuilder()
    x = g.add_input("x", (1, 10, 10, 8))
    g.mark_outputs(g.add_op("AVERAGE_POOL_2D", [x], padding="SAME", filter_height=60000, filter_width=60000))
    content = g.to_bytes()
    values = np.random.default_rng(0).standard_normal((1, 10, 10, 8)).astype(np.float32)
    results = []
    for backend in BACKENDS:
        it = npdeeplab.Interpreter(model_content=content, backend=backend)
        it.allocate_tensors()
        it.set_tensor(0, values)
        it.invoke()
        results.append(it.get_tensor(it.get_output_details()[0]["index"]))
    for result in results:  # every window covers the whole input: the global mean everywhere
        np.testing.assert_allclose(result, np.broadcast_to(values.mean(axis=(1, 2), keepdims=True), result.shape),
                                   rtol=1e-5, atol=1e-6)


# --- images -------------------------------------------------------------------------------------


def test_an_image_over_the_pixel_limit_is_one_image_error(tmp_path):
    path = tmp_path / "wide.png"
    Image.new("L", (20000, 5000)).save(path)  # 100 M pixels: between Pillow's warning and its error
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # Pillow's DecompressionBombWarning must not escape
        with pytest.raises(ImageError) as caught:
            load_image(path)
    message = str(caught.value)
    assert "has 100,000,000 pixels (20000x5000), over the limit of 89,478,485" in message
    assert "--max-pixels" in message
    assert load_image(path, max_pixels=100_000_000).size == (20000, 5000)
    assert Image.MAX_IMAGE_PIXELS == DEFAULT_MAX_PIXELS  # Pillow's own limit is back as it was


def test_a_decompression_bomb_is_refused_before_decoding(tmp_path):
    path = tmp_path / "bomb.png"
    Image.new("1", (30000, 30000)).save(path)  # 900 M pixels in a 100 kB file: over twice Pillow's limit
    assert path.stat().st_size < 2_000_000
    with pytest.raises(ImageError, match=r"has 900,000,000 pixels \(30000x30000\), over the limit"):
        load_image(path)
    result = subprocess.run([sys.executable, "-m", "npdeeplab", "segment", str(path)], capture_output=True,
                            text=True, cwd=tmp_path, timeout=120)
    assert result.returncode == 2 and "Traceback" not in result.stderr
    assert result.stderr.count("\n") == 1 and "900,000,000 pixels" in result.stderr
    assert sorted(p.name for p in tmp_path.iterdir()) == ["bomb.png"]
    code = subprocess.run([sys.executable, "-m", "npdeeplab", "segment", str(path), "--max-pixels", "-1"],
                          capture_output=True, text=True, cwd=tmp_path, timeout=120)
    assert code.returncode == 2 and "--max-pixels must be 0 (no limit) or more" in code.stderr


def test_a_huge_dilation_on_a_small_input_pads_nothing(litert):
    """SAME padding for dilation 32767 would pad a 10x10 input to 65544x65544 in the NumPy conv."""
    LiteRT, OpResolverType = litert
    rng = np.random.default_rng(2)
    g = GraphBuilder()
    x = g.add_input("x", (1, 10, 10, 2))
    w = g.add_constant("w", rng.standard_normal((3, 3, 3, 2)).astype(np.float32))
    y = g.add_op("CONV_2D", [x, w, g.add_constant("b", np.zeros(3, np.float32))], padding="SAME",
                 dilation_h_factor=32767, dilation_w_factor=32767)
    g.mark_outputs(y)
    content = g.to_bytes()
    values = rng.standard_normal((1, 10, 10, 2)).astype(np.float32)
    results = []
    interpreters = [npdeeplab.Interpreter(model_content=content, backend=b) for b in BACKENDS]
    interpreters.append(LiteRT(model_content=content, experimental_op_resolver_type=OpResolverType.BUILTIN_REF))
    for it in interpreters:
        it.allocate_tensors()
        it.set_tensor(it.get_input_details()[0]["index"], values)
        it.invoke()
        results.append(it.get_tensor(it.get_output_details()[0]["index"]))
    for result in results[:-1]:  # only the centre tap lands: a 1x1 convolution with the centre weights
        np.testing.assert_allclose(result, results[-1], rtol=1e-5, atol=1e-6)
