"""`npdeeplab extract --golden`: golden vectors that reproduce the op, in npdeeplab and in LiteRT.

Each golden directory is read back with load_golden; its small model, fed the saved inputs, must
give the saved outputs exactly (quantized) or within float rounding (float), on both npdeeplab
backends and in LiteRT's reference kernels; the manifest's multipliers and shifts are recomputed
here from the tensors' scales, as TFLite's Prepare does; golden.h must hold the same numbers
(parsed back here, and compiled and run where a C compiler exists).
"""

from __future__ import annotations

import json
import re
import shutil
import subprocess
from pathlib import Path

import numpy as np
import pytest
from conftest import BACKENDS, litert_module, shared_file

from npdeeplab import cli
from npdeeplab.errors import InputError
from npdeeplab.kernels.fixed_point import quantize_multiplier
from npdeeplab.runtime.interpreter import Interpreter
from npdeeplab.tools import golden as golden_module
from npdeeplab.tools.extract import parse_op_range
from npdeeplab.tools.golden import FORMAT, load_golden

QUANT = "deeplabv3_mnv2_dm05_pascal_quant.tflite"
FLOAT = "deeplabv3_257_mv_gpu.tflite"
SELFIE = "selfiesegmentation_mlkit-256x256-2021_01_19-v1215.f16.tflite"
TOLERANCE = 1e-5  # x max(1, max|output|): float outputs, another engine's rounding
CASES = {  # name: (model, --ops, the kinds, input arguments)
    "conv": (QUANT, "0", ["CONV_2D"], ["--random", "--seed", "2"]),  # 3x3, stride 2, SAME: odd padding
    "dilated_depthwise": (QUANT, "51", ["DEPTHWISE_CONV_2D"], ["--random"]),
    "add": (QUANT, "9", ["ADD"], ["--random", "--seed", "1"]),
    "float_depthwise": (FLOAT, "37", ["DEPTHWISE_CONV_2D"], ["IMAGE"]),
    "range": (QUANT, "8..9", ["CONV_2D", "ADD"], ["--random"]),
    # float16 weights: the DEQUANTIZE ops that widen them come along, and the widened weights are saved
    "float16_weights": (SELFIE, "2", ["DEQUANTIZE", "DEQUANTIZE", "CONV_2D"], ["--random"]),
}


@pytest.fixture(scope="module")
def golden_dirs(tmp_path_factory) -> dict[str, Path]:
    made: dict[str, Path] = {}

    def make(name: str) -> Path:
        if name not in made:
            model, ops, _, source = CASES[name]
            source = [str(shared_file("images", "bird_segmentation.bmp")) if a == "IMAGE" else a for a in source]
            out = tmp_path_factory.mktemp(name) / "golden"
            assert cli.main(["extract", str(shared_file("models", model)), "--ops", ops, "--golden", str(out),
                             *source]) == 0
            made[name] = out
        return made[name]

    return make  # type: ignore[return-value]


def run_npdeeplab(model: Path, feeds: dict[str, np.ndarray], backend: str) -> dict[str, np.ndarray]:
    interpreter = Interpreter(model_path=model, backend=backend)
    interpreter.allocate_tensors()
    for detail in interpreter.get_input_details():
        interpreter.set_tensor(detail["index"], feeds[detail["name"]])
    interpreter.invoke()
    return {d["name"]: interpreter.get_tensor(d["index"]) for d in interpreter.get_output_details()}


def run_litert_ref(model: Path, feeds: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    litert = litert_module()
    runner = litert.Interpreter(model_path=str(model), experimental_op_resolver_type=litert.OpResolverType.BUILTIN_REF)
    runner.allocate_tensors()
    for detail in runner.get_input_details():
        runner.set_tensor(detail["index"], feeds[detail["name"]])
    runner.invoke()
    return {d["name"]: runner.get_tensor(d["index"]) for d in runner.get_output_details()}


def assert_same(outputs: dict[str, np.ndarray], expected: dict[str, np.ndarray], engine: str) -> None:
    assert sorted(outputs) == sorted(expected), engine
    for name, value in outputs.items():
        want = expected[name]
        assert value.shape == want.shape and value.dtype == want.dtype, (engine, name)
        if want.dtype.kind == "f":
            scale = max(1.0, float(np.abs(want).max()))
            assert float(np.abs(value - want).max()) <= TOLERANCE * scale, (engine, name)
        else:
            np.testing.assert_array_equal(value, want, err_msg=f"{engine}: {name}")


@pytest.mark.parametrize("name", list(CASES))
def test_golden_vectors_reproduce_the_ops(golden_dirs, name: str) -> None:
    directory = golden_dirs(name)
    golden = load_golden(directory)
    manifest = golden.manifest
    assert manifest["format"] == FORMAT and [op["kind"] for op in manifest["ops"]] == CASES[name][2]
    assert sorted(p.name for p in directory.iterdir()) == sorted(
        ["manifest.json", "model.tflite", "golden.h", *(e["file"] for e in manifest["arrays"].values())]
    )
    feeds, expected = golden.by_role("input"), golden.by_role("output")
    for backend in BACKENDS:
        assert_same(run_npdeeplab(golden.model_path, feeds, backend), expected, backend)
    assert_same(run_litert_ref(golden.model_path, feeds), expected, "LiteRT BUILTIN_REF")


def test_a_range_keeps_the_intermediate_tensor(golden_dirs) -> None:
    golden = load_golden(golden_dirs("range"))
    conv, add = golden.manifest["ops"]
    assert golden.manifest["arrays"][conv["outputs"][0]]["role"] == "intermediate"
    assert add["inputs"][0] == conv["outputs"][0]  # op 9 reads op 8's output, under op 8's key
    alone = load_golden(golden_dirs("add"))  # op 9 alone, another seed: its own inputs
    assert alone.manifest["ops"][0]["params"] == add["params"]


def test_float16_weights_are_saved_as_stored_and_as_the_op_reads_them(golden_dirs) -> None:
    golden = load_golden(golden_dirs("float16_weights"))
    widen, _, conv = golden.manifest["ops"]
    assert widen["params"] is None and widen["kernel"] is None  # done once at load, not by a kernel
    stored, widened = golden.arrays[widen["inputs"][0]], golden.arrays[widen["outputs"][0]]
    assert stored.dtype == np.float16 and widened.dtype == np.float32 and conv["inputs"][1] == widen["outputs"][0]
    np.testing.assert_array_equal(widened, stored.astype(np.float32))


def _scales(golden, key: str) -> list[float]:
    return golden.manifest["arrays"][key]["quantization"]["scale"]


@pytest.mark.parametrize("name", ["conv", "dilated_depthwise"])
def test_conv_multipliers_and_shifts_are_tflite_quantize_multiplier(golden_dirs, name: str) -> None:
    golden = load_golden(golden_dirs(name))
    (op,) = golden.manifest["ops"]
    x, w, _ = op["inputs"]
    (y,) = op["outputs"]
    (s_in,), (s_out,) = _scales(golden, x), _scales(golden, y)
    s_w = _scales(golden, w)
    channels = golden.manifest["arrays"][y]["shape"][-1]
    # uint8 conv.cc: GetQuantizedConvolutionMultipler, the product of the scales rounded to float32 first
    reals = [float(np.float32(s_in) * np.float32(s)) / s_out for s in s_w] * (channels if len(s_w) == 1 else 1)
    expected = [quantize_multiplier(r) for r in reals]
    assert list(zip(op["params"]["multiplier"], op["params"]["shift"], strict=True)) == expected
    params = op["params"]
    (z_in,), (z_w,), (z_out,) = (golden.manifest["arrays"][k]["quantization"]["zero_point"] for k in (x, w, y))
    assert (params["input_offset"], params["filter_offset"], params["output_offset"]) == (-z_in, -z_w, z_out)
    assert (params["act_min"], params["act_max"]) == (max(0, z_out), min(255, z_out + round(6 / s_out)))
    window = params["window"]
    options = op["options"]
    assert (window["dilation_h"], window["stride_h"]) == (options["dilation_h_factor"], options["stride_h"])
    if name == "conv":  # SAME, 513 -> 257 at stride 2 with a 3x3 filter: (257-1)*2 + 3 - 513 = 2, one each side
        assert (window["pad_top"], window["pad_left"], window["out_h"], window["stride_h"]) == (1, 1, 257, 2)
    else:
        assert window["dilation_h"] == 2 and window["pad_top"] == 2


def test_add_multipliers_and_shifts_are_tflite_quantize_multiplier(golden_dirs) -> None:
    golden = load_golden(golden_dirs("add"))
    (op,) = golden.manifest["ops"]
    (s1,), (s2,), (s_out,) = (_scales(golden, k) for k in (*op["inputs"], *op["outputs"]))
    params = op["params"]
    left_shift = params["left_shift"]
    assert left_shift == 20
    twice_max = float(np.float32(2) * np.float32(max(s1, s2)))  # add.cc, in float32
    real_output = twice_max / float(np.float32(1 << left_shift) * np.float32(s_out))
    for real, prefix in ((s1 / twice_max, "input1"), (s2 / twice_max, "input2"), (real_output, "output")):
        assert (params[f"{prefix}_multiplier"], params[f"{prefix}_shift"]) == quantize_multiplier(real), prefix


def test_float_op_records_options_and_activation_range(golden_dirs) -> None:
    golden = load_golden(golden_dirs("float_depthwise"))
    (op,) = golden.manifest["ops"]
    assert op["options"]["fused_activation_function"] == "RELU6" and op["options"]["dilation_h_factor"] == 2
    assert (op["params"]["act_min"], op["params"]["act_max"]) == (0.0, 6.0)
    assert golden.manifest["source"]["input"] == "image bird_segmentation.bmp"
    assert all(golden.manifest["arrays"][k]["dtype"] == "float32" for k in golden.arrays)


HEADER_ARRAY = re.compile(r"static const (\w+) (\w+)\[(\w+)\] = \{(?:  /\*[^*]*\*/)?\n(.*?)\n\};", re.S)
NUMPY_OF_C = {"uint8_t": np.uint8, "int8_t": np.int8, "int16_t": np.int16, "int32_t": np.int32,
              "int64_t": np.int64, "float": np.float32, "uint16_t": np.uint16}


def parse_header(text: str) -> tuple[dict[str, str], dict[str, np.ndarray]]:
    """golden.h's #defines and arrays, read back in Python (the structural check)."""
    defines = dict(re.findall(r"^#define (\w+) (.+)$", text, re.M))
    arrays = {}
    for c_type, name, size, body in HEADER_ARRAY.findall(text):
        items = [v.strip() for v in body.replace("\n", " ").split(",") if v.strip()]
        if c_type == "float":
            values = np.array([float(v.rstrip("f")) for v in items], dtype=np.float64).astype(np.float32)
        else:
            values = np.array([int(v) for v in items], dtype=np.int64).astype(NUMPY_OF_C[c_type])
        assert values.size == int(defines[size]), name
        arrays[name] = values
    return defines, arrays


@pytest.mark.parametrize("name", ["dilated_depthwise", "add", "float_depthwise"])
def test_header_holds_the_same_numbers(golden_dirs, name: str) -> None:
    golden = load_golden(golden_dirs(name))
    text = (golden.directory / "golden.h").read_text(encoding="ascii")
    assert text.startswith("/* golden.h") and "#ifndef NPDEEPLAB_GOLDEN_H" in text
    assert text.endswith("#endif /* NPDEEPLAB_GOLDEN_H */\n")
    defines, arrays = parse_header(text)
    for key, array in golden.arrays.items():
        macro = key.upper()
        assert defines[f"{macro}_SHAPE"] == "{" + ", ".join(map(str, array.shape)) + "}"
        assert int(defines[f"{macro}_SIZE"]) == array.size and int(defines[f"{macro}_RANK"]) == array.ndim
        np.testing.assert_array_equal(arrays[key], array.ravel())
        assert arrays[key].dtype == array.dtype
    (op,) = golden.manifest["ops"]
    prefix = f"OP{op['index']}"
    for field, value in op["params"].items():
        if isinstance(value, list):
            np.testing.assert_array_equal(arrays[f"{prefix}_{field}".lower()], value)
        elif isinstance(value, int):
            assert int(defines[f"{prefix}_{field.upper()}"].strip("()")) == value, field


def test_header_compiles_and_its_arrays_are_the_saved_bytes(golden_dirs, tmp_path: Path) -> None:
    compiler = shutil.which("cc") or shutil.which("gcc") or shutil.which("clang")
    if compiler is None:
        pytest.skip("no C compiler: test_header_holds_the_same_numbers checks golden.h's structure")
    golden = load_golden(golden_dirs("add"))
    header = golden.directory / "golden.h"
    flags = ["-std=c99", "-pedantic", "-Wall", "-Wextra", "-Werror"]
    subprocess.run([compiler, *flags, "-Wno-unused-const-variable", "-fsyntax-only", str(header)], check=True)
    (op,) = golden.manifest["ops"]
    ints = [k for k, v in op["params"].items() if isinstance(v, int) and not isinstance(v, bool)]
    writes = "\n".join(f'  dump("{k}.bin", {k}, sizeof {k});' for k in golden.arrays)
    prints = "\n".join(f'  printf("%lld\\n", (long long)OP{op["index"]}_{k.upper()});' for k in ints)
    program = tmp_path / "dump.c"
    program.write_text(f"""#include <stdio.h>
#include "{header}"
static void dump(const char *name, const void *data, size_t size) {{
  FILE *f = fopen(name, "wb");
  fwrite(data, 1, size, f);
  fclose(f);
}}
int main(void) {{
{writes}
{prints}
  return 0;
}}
""")
    subprocess.run([compiler, *flags, "-o", str(tmp_path / "dump"), str(program)], check=True)
    printed = subprocess.run([str(tmp_path / "dump")], cwd=tmp_path, check=True, capture_output=True, text=True)
    assert [int(v) for v in printed.stdout.split()] == [op["params"][k] for k in ints]
    for key, array in golden.arrays.items():
        assert (tmp_path / f"{key}.bin").read_bytes() == array.tobytes(), key  # little-endian host, as .npy


def test_rerun_replaces_a_golden_dir_and_refuses_any_other(golden_dirs, tmp_path: Path, capsys) -> None:
    model = str(shared_file("models", QUANT))
    out = tmp_path / "g"
    assert cli.main(["extract", model, "--ops", "9", "--golden", str(out), "--random"]) == 0
    first = load_golden(out).arrays["op9_output0"]
    assert cli.main(["extract", model, "--ops", "9", "--golden", str(out), "--random", "--seed", "5"]) == 0
    assert not np.array_equal(load_golden(out).arrays["op9_output0"], first)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["g"]  # nothing left beside it
    other = tmp_path / "notes"
    other.mkdir()
    (other / "keep.txt").write_text("mine")
    capsys.readouterr()
    assert cli.main(["extract", model, "--ops", "9", "--golden", str(other), "--random"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "is not a golden directory" in err
    assert [p.name for p in other.iterdir()] == ["keep.txt"]


@pytest.mark.parametrize(
    ("before", "after", "message"),
    [
        (["--ops", "9"], [], "--golden needs the input of a full run"),
        (["--ops", "9..99", "--random"], [], "op 99 is out of range"),
        (["--ops", "9", "--random"], ["IMAGE"], "give one input"),
        (["IMAGE", "--ops", "9"], ["IMAGE"], "give one input"),
        (["--ops", "9"], ["NOT_AN_IMAGE"], "notes.txt"),
        (["--ops", "9"], ["IMAGE", "IMAGE"], "at most one image"),
    ],
)
def test_errors_are_one_line_exit_2_and_leave_no_dir(tmp_path: Path, capsys, before, after, message) -> None:
    notes = tmp_path / "notes.txt"
    notes.write_text("not an image")
    image = str(shared_file("images", "bird_segmentation.bmp"))
    before, after = ([image if a == "IMAGE" else str(notes) if a == "NOT_AN_IMAGE" else a for a in args]
                     for args in (before, after))
    out = tmp_path / "g"
    assert cli.main(["extract", str(shared_file("models", QUANT)), *before, "--golden", str(out), *after]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and err.startswith("npdeeplab: error: ") and message in err
    assert sorted(p.name for p in tmp_path.iterdir()) == ["notes.txt"]


def test_a_failure_while_writing_leaves_nothing(tmp_path: Path, monkeypatch) -> None:
    from npdeeplab.tools import golden_c

    def broken(*_):
        raise OSError("disk full")

    monkeypatch.setattr(golden_c, "c_header", broken)
    with pytest.raises(OSError, match="disk full"):
        cli.main(["extract", str(shared_file("models", QUANT)), "--ops", "9", "--golden", str(tmp_path / "g"),
                  "--random"])
    assert list(tmp_path.iterdir()) == []


def test_load_golden_refuses_other_formats(tmp_path: Path) -> None:
    (tmp_path / "manifest.json").write_text(json.dumps({"format": "npdeeplab-golden/99"}))
    with pytest.raises(InputError, match="npdeeplab-golden/99"):
        load_golden(tmp_path)
    with pytest.raises(InputError, match="cannot read"):
        load_golden(tmp_path / "missing")


def test_ops_accepts_dotted_ranges() -> None:
    assert parse_op_range("8..9", 10) == (8, 9)
    for bad in ("8..", "..9", "1..2..3", "1..2:3"):
        with pytest.raises(InputError):
            parse_op_range(bad, 10)


def test_manifest_writes_non_finite_floats_as_strings() -> None:
    value = golden_module.jsonable({"act_min": float("-inf"), "act_max": np.float32(np.inf), "x": np.nan})
    assert value == {"act_min": "-inf", "act_max": "inf", "x": "nan"}
    assert json.loads(golden_module.manifest_text({"format": FORMAT, "v": value}))["v"] == value


def test_image_may_come_right_after_the_model_as_trace_takes_it(tmp_path: Path, capsys) -> None:
    image = shared_file("images", "bird_segmentation.bmp")
    out = tmp_path / "g"
    assert cli.main(["extract", str(shared_file("models", QUANT)), str(image), "--ops", "9", "--golden", str(out)]) == 0
    assert "golden vectors of op 9 (ADD) from a full run on image bird_segmentation.bmp" in capsys.readouterr().out
    golden = load_golden(out)
    assert_same(run_litert_ref(golden.model_path, golden.by_role("input")), golden.by_role("output"), "LiteRT")
