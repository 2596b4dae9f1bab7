"""What a new user meets first: the CLI's conventions (version, pipes, backend errors), segment's
reporting and directory handling, one-channel models, reprs, LiteRT's allocate-before-invoke rule."""

from __future__ import annotations

import fcntl
import json
import os
import pty
import re
import struct
import subprocess
import sys
import termios
import textwrap
import threading
from importlib import metadata
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

import npdeeplab
from npdeeplab.cli import main
from npdeeplab.errors import InputError, NotAllocatedError
from npdeeplab.model.builder import GraphBuilder
from npdeeplab.segmentation import segment, upsampled_labels

ROOT = Path(__file__).resolve().parents[1]


def run_cli(*args: str, cwd: Path, env: dict | None = None) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "npdeeplab", *args], capture_output=True, text=True, cwd=cwd,
                          timeout=300, env={**os.environ, **(env or {})})


def error_line(result: subprocess.CompletedProcess) -> str:
    lines = [line for line in result.stderr.splitlines() if line and "compiling Numba" not in line]
    assert result.returncode == 2 and len(lines) == 1 and "Traceback" not in result.stderr, result.stderr
    return lines[0]


def test_version():
    result = run_cli("--version", cwd=ROOT)
    assert result.returncode == 0
    assert re.fullmatch(rf"npdeeplab {re.escape(npdeeplab.__version__)} \(Python [\d.]+, NumPy [\d.]+, "
                        r"(Numba [\d.]+|no Numba)\)\n", result.stdout), result.stdout


def printing_commands(model: Path, image: Path, tmp: Path) -> dict[str, list[str]]:
    return {
        "inspect": ["inspect", str(model)],
        "inspect --ops": ["inspect", "--ops"],
        "inspect --json": ["inspect", str(model), "--json"],
        "trace": ["trace", str(model), "--random", "--backend", "numpy"],
        "compare": ["compare", str(model), "--random", "--backend", "numpy"],
        "segment": ["segment", str(image), "-o", str(tmp / "m.png"), "--json"],
        "extract": ["extract", str(model), "--op", "3", "-o", str(tmp / "x.tflite")],
        "report": ["report", str(model), str(image), "-o", str(tmp / "r.html")],
        "bench": ["bench", str(model), "--engines", "numpy", "--runs", "1", "--passes", "1"],
        "--help": ["--help"],
    }


@pytest.mark.parametrize("command", ["inspect", "inspect --ops", "inspect --json", "trace", "compare", "segment",
                                     "extract", "report", "bench", "--help"])
def test_a_closed_pipe_ends_quietly(command, seed_model_path, image_path, litert, tmp_path):
    """`npdeeplab ... | head`: the reader goes away; no BrokenPipeError traceback, exit 0 or 141."""
    args = printing_commands(seed_model_path, image_path("chelsea.png"), tmp_path)[command]
    read, write = os.pipe()
    os.close(read)  # the reader is gone before the first byte: every write hits a closed pipe
    process = subprocess.run([sys.executable, "-m", "npdeeplab", *args], stdout=write, stderr=subprocess.PIPE,
                             text=True, cwd=tmp_path, timeout=300)
    os.close(write)
    assert process.returncode in (0, 141), process.stderr
    assert "Traceback" not in process.stderr and "BrokenPipe" not in process.stderr, process.stderr


def test_unknown_backend_variable_is_one_line(seed_model_path, tmp_path):
    result = run_cli("trace", str(seed_model_path), "--random", cwd=tmp_path, env={"NPDEEPLAB_BACKEND": "cuda"})
    assert "unknown NPDEEPLAB_BACKEND 'cuda'; choose one of auto, numpy, numba" in error_line(result)


def test_numba_asked_for_where_it_does_not_import(seed_model_path, tmp_path):
    blocker = tmp_path / "site"
    blocker.mkdir()
    (blocker / "sitecustomize.py").write_text(textwrap.dedent("""
        import importlib.abc, sys

        class BlockNumba(importlib.abc.MetaPathFinder):
            def find_spec(self, name, path=None, target=None):
                if name == "numba" or name.startswith("numba."):
                    raise ImportError("No module named 'numba'")

        sys.meta_path.insert(0, BlockNumba())
    """))
    env = {"PYTHONPATH": os.pathsep.join([str(blocker), os.environ.get("PYTHONPATH", "")])}
    result = run_cli("trace", str(seed_model_path), "--random", "--backend", "numba", cwd=tmp_path, env=env)
    line = error_line(result)
    assert "'numba' was asked for, but Numba does not import here (ImportError: No module named 'numba')" in line
    assert run_cli("trace", str(seed_model_path), "--random", "--stop-after", "0", cwd=tmp_path,
                   env=env).returncode == 0  # auto falls back to NumPy


def test_segment_says_where_each_output_went(image_path, tmp_path):
    result = run_cli("segment", str(image_path("astronaut.png")), "--overlay", "over.png", cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    assert result.stdout.startswith("astronaut.png  background ")
    assert result.stdout.rstrip().endswith("-> astronaut_mask.png, over.png")
    folder = tmp_path / "out"
    result = run_cli("segment", str(image_path("astronaut.png")), str(image_path("chelsea.png")), "-o", "out",
                     cwd=tmp_path)
    lines = result.stdout.splitlines()
    assert [line.split("-> ")[1] for line in lines] == [str(Path("out", "astronaut_mask.png")),
                                                         str(Path("out", "chelsea_mask.png"))]
    assert sorted(p.name for p in folder.iterdir()) == ["astronaut_mask.png", "chelsea_mask.png"]


@pytest.mark.parametrize("flag", ["-o", "--overlay"])
def test_one_file_name_for_several_images_is_refused(flag, image_path, tmp_path):
    images = [str(image_path("astronaut.png")), str(image_path("chelsea.png"))]
    result = run_cli("segment", *images, flag, "masks.png", cwd=tmp_path)
    line = error_line(result)
    assert f"{flag} masks.png names one file, but 2 images were given; give a directory" in line
    assert list(tmp_path.iterdir()) == []


def image_folder(tmp_path: Path, image_path, bad: bool = True, subfolder: bool = True) -> Path:
    folder = tmp_path / "photos"
    folder.mkdir()
    for name in ("astronaut.png", "chelsea.png"):
        (folder / name).write_bytes(image_path(name).read_bytes())
    if subfolder:
        (folder / "more").mkdir()
        (folder / "more" / "bird.bmp").write_bytes(image_path("bird_segmentation.bmp").read_bytes())
    if bad:
        (folder / "broken.png").write_bytes(b"\x89PNG not really")
    return folder


def test_keep_going_writes_what_works_and_lists_what_failed(image_path, tmp_path):
    folder = image_folder(tmp_path, image_path)
    result = run_cli("segment", str(folder), "-o", "masks", "--keep-going", cwd=tmp_path)
    assert result.returncode == 1, result.stderr
    assert sorted(p.name for p in (tmp_path / "masks").iterdir()) == ["astronaut_mask.png", "chelsea_mask.png"]
    failures = result.stderr[result.stderr.index("npdeeplab: 1 of 3 images failed:"):].splitlines()
    assert failures[1].startswith(f"  {folder / 'broken.png'}: ") and "not an image Pillow can read" in failures[1]
    assert "skipped 1 subfolder(s)" in result.stderr and "--recursive" in result.stderr
    assert "Traceback" not in result.stderr


def test_keep_going_json_lists_failures(image_path, tmp_path, capsys):
    folder = image_folder(tmp_path, image_path)
    assert main(["segment", str(folder), "-o", str(tmp_path / "masks"), "--keep-going", "--json"]) == 1
    reports = json.loads(capsys.readouterr().out)["images"]
    assert [Path(r["image"]).name for r in reports] == ["astronaut.png", "broken.png", "chelsea.png"]
    assert "error" in reports[1] and "mask" not in reports[1] and Path(reports[0]["mask"]).is_file()


def test_without_keep_going_one_bad_image_stops_everything(image_path, tmp_path):
    folder = image_folder(tmp_path, image_path, subfolder=False)
    result = run_cli("segment", str(folder), "-o", "masks", cwd=tmp_path)
    assert str(folder / "broken.png") in error_line(result)  # the full path
    assert not (tmp_path / "masks").exists()


def test_recursive_keeps_the_subfolder_layout(image_path, tmp_path):
    folder = image_folder(tmp_path, image_path, bad=False)
    result = run_cli("segment", str(folder), "-o", "masks", "--recursive", cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    assert "skipped" not in result.stderr
    written = sorted(str(p.relative_to(tmp_path / "masks")) for p in (tmp_path / "masks").rglob("*.png"))
    assert written == ["astronaut_mask.png", "chelsea_mask.png", str(Path("more", "bird_mask.png"))]
    assert any(line.startswith(str(Path("more", "bird.bmp")) + "  ") for line in result.stdout.splitlines())


def test_a_stem_collision_names_both_files(image_path, tmp_path):
    folder = tmp_path / "photos"
    folder.mkdir()
    (folder / "cat.png").write_bytes(image_path("chelsea.png").read_bytes())
    Image.open(image_path("chelsea.png")).save(folder / "cat.jpg")
    line = error_line(run_cli("segment", str(folder), cwd=tmp_path))
    assert str(folder / "cat.jpg") in line and str(folder / "cat.png") in line and "cat_mask.png" in line


def test_progress_is_shown_while_a_folder_is_checked(image_path, tmp_path):
    folder = image_folder(tmp_path, image_path, bad=False)
    primary, secondary = pty.openpty()  # a terminal on stderr, where tqdm shows its bars
    fcntl.ioctl(secondary, termios.TIOCSWINSZ, struct.pack("HHHH", 24, 100, 0, 0))  # 0 columns would hide them
    process = subprocess.Popen([sys.executable, "-m", "npdeeplab", "segment", str(folder), "-o", "masks"],
                               stdout=subprocess.DEVNULL, stderr=secondary, cwd=tmp_path)
    os.close(secondary)
    shown = b""
    while True:
        try:
            chunk = os.read(primary, 4096)
        except OSError:  # the child closed the terminal
            break
        if not chunk:
            break
        shown += chunk
    assert process.wait(timeout=300) == 0
    assert b"checking images" in shown and b"segmenting" in shown


def one_channel_model(tmp_path: Path, logistic: bool) -> Path:
    """A 1x1 convolution to one channel: a foreground logit, or with LOGISTIC a probability."""
    g = GraphBuilder()
    x = g.add_input("image", (1, 33, 33, 3))
    w = g.add_constant("w", np.array([[[[0.0, 1.0, 0.0]]]], np.float32))  # green over half-scale: 32% of the cat photo
    y = g.add_op("CONV_2D", [x, w], padding="SAME")
    if logistic:
        y = g.add_op("LOGISTIC", [y])
    g.mark_outputs(y)
    return g.save(tmp_path / f"one_channel_{'probability' if logistic else 'logit'}.tflite")


@pytest.mark.parametrize("logistic", [False, True])
def test_one_channel_models_give_a_foreground_mask(logistic, image_path, tmp_path):
    model = one_channel_model(tmp_path, logistic)
    result = segment(image_path("chelsea.png"), model)
    assert result.class_names == ("background", "foreground")
    expected = upsampled_labels(result.logits, result.labels.shape, lambda b: b[..., 0] > (0.5 if logistic else 0))
    np.testing.assert_array_equal(result.labels, expected)
    assert 0 < result.labels.mean() < 1  # both classes present: the threshold is not all or nothing
    cli = run_cli("segment", str(image_path("chelsea.png")), "--model", str(model), cwd=tmp_path)
    assert cli.returncode == 0 and "class_0" not in cli.stdout and "foreground" in cli.stdout
    reading = "read as a probability: foreground where > 0.5" if logistic else "read as a logit"
    assert reading in cli.stderr


def test_segment_with_an_interpreter_of_ones_own(image_path, seed_model_path):
    it = npdeeplab.Interpreter(model_path=seed_model_path)
    assert not it.allocated
    result = segment(image_path("chelsea.png"), interpreter=it)
    assert it.allocated and result.areas()[0].name == "cat"


def test_reprs_are_short(image_path):
    result = segment(image_path("chelsea.png"))
    text = repr(result)
    assert text.startswith("SegmentationResult(model='deeplabv3_257_mv_gpu', size=451x300, cat ")
    assert "array" not in text and len(text) < 200
    area = result.areas()[0]
    assert type(area.share) is float and type(area.pixels) is int and "np." not in repr(area)


def test_invoke_before_allocate_tensors_is_refused_as_litert_does(seed_model_path, litert):
    LiteRT, _ = litert
    ours, theirs = npdeeplab.Interpreter(model_path=seed_model_path), LiteRT(model_path=str(seed_model_path))
    index = ours.get_input_details()[0]["index"]
    x = np.zeros((1, 257, 257, 3), np.float32)
    for interpreter in (ours, theirs):
        with pytest.raises(RuntimeError, match="not ready"):
            interpreter.invoke()
        with pytest.raises(ValueError, match="allocate_tensors"):
            interpreter.set_tensor(index, x)
        with pytest.raises(ValueError, match="allocate_tensors"):
            interpreter.get_tensor(interpreter.get_output_details()[0]["index"])
    with pytest.raises(NotAllocatedError):
        ours.invoke()
    with pytest.raises(InputError):
        ours.set_tensor(index, x)
    ours.allocate_tensors()
    ours.set_tensor(index, x)
    ours.invoke()
    ours.resize_tensor_input(index, (1, 257, 257, 3))
    with pytest.raises(RuntimeError, match="not ready"):  # a resize asks for allocate_tensors again
        ours.invoke()


def test_a_signature_runner_allocates_by_itself_as_litert_does(litert):
    LiteRT, _ = litert
    g = GraphBuilder()
    x = g.add_input("x", (1, 4))
    y = g.add_op("RELU", [x])
    g.mark_outputs(y)
    g.add_signature("serving_default", {"x": x}, {"y": y})
    value = np.array([[-1, 2, -3, 4]], np.float32)
    for cls in (LiteRT, npdeeplab.Interpreter):
        outputs = cls(model_content=g.to_bytes()).get_signature_runner()(x=value)
        np.testing.assert_array_equal(outputs["y"], [[0, 2, 0, 4]])


@pytest.mark.parametrize("content", ["model.tflite", 42, [1, 2]])
def test_model_content_of_the_wrong_type(content):
    with pytest.raises(npdeeplab.ModelError, match="model_content must be bytes"):
        npdeeplab.Interpreter(model_content=content)


def test_licence_is_declared_and_shipped():
    text = (ROOT / "LICENSE").read_text()
    assert text.lstrip().startswith("Apache License") and "Version 2.0, January 2004" in text
    info = metadata.metadata("npdeeplab")
    assert info["License-Expression"] == "Apache-2.0" and info.get_all("License-File") == ["LICENSE"]


def test_threads_sharing_one_interpreter_get_their_own_results(seed_model_path, image_path):
    """segment() from several threads shares one cached interpreter; each image gets its own labels."""
    names = ["astronaut.png", "chelsea.png", "bird_segmentation.bmp"] * 2
    alone = {name: segment(image_path(name), seed_model_path).labels for name in names[:3]}
    results: dict[int, np.ndarray] = {}

    def work(k: int) -> None:
        results[k] = segment(image_path(names[k]), seed_model_path).labels

    threads = [threading.Thread(target=work, args=(k,)) for k in range(len(names))]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    for k, name in enumerate(names):
        np.testing.assert_array_equal(results[k], alone[name])


@pytest.mark.parametrize("backend", ["numpy", "numba"])
def test_separate_interpreters_run_in_parallel_threads(backend, seed_model_path):
    from conftest import BACKENDS, require

    require(backend in BACKENDS, "Numba is not installed")
    inputs = [np.random.default_rng(k).uniform(-1, 1, (1, 257, 257, 3)).astype(np.float32) for k in range(4)]

    def run(x: np.ndarray, it: npdeeplab.Interpreter) -> np.ndarray:
        it.allocate_tensors()
        it.set_tensor(it.get_input_details()[0]["index"], x)
        it.invoke()
        return it.get_tensor(it.get_output_details()[0]["index"])

    expected = [run(x, npdeeplab.Interpreter(model_path=seed_model_path, backend=backend)) for x in inputs]
    got: dict[int, np.ndarray] = {}
    interpreters = [npdeeplab.Interpreter(model_path=seed_model_path, backend=backend) for _ in inputs]
    threads = [threading.Thread(target=lambda k=k: got.__setitem__(k, run(inputs[k], interpreters[k])))
               for k in range(len(inputs))]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    for k in range(len(inputs)):
        np.testing.assert_array_equal(got[k], expected[k])


def test_one_interpreter_invoked_from_two_threads_at_once(seed_model_path):
    """Calls on a shared interpreter are serialised by its lock: every invoke finishes, and what it
    computed is the result of some complete run."""
    it = npdeeplab.Interpreter(model_path=seed_model_path, backend="numpy")
    it.allocate_tensors()
    x = np.random.default_rng(0).uniform(-1, 1, (1, 257, 257, 3)).astype(np.float32)
    it.set_tensor(it.get_input_details()[0]["index"], x)
    it.invoke()
    expected = it.get_tensor(it.get_output_details()[0]["index"])
    errors: list[BaseException] = []

    def hammer() -> None:
        try:
            for _ in range(3):
                it.invoke()
                np.testing.assert_array_equal(it.get_tensor(it.get_output_details()[0]["index"]), expected)
        except BaseException as error:  # noqa: BLE001  (reported below)
            errors.append(error)

    threads = [threading.Thread(target=hammer) for _ in range(3)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert errors == []


def test_compare_of_models_that_do_not_correspond(seed_model_path, tmp_path, capsys):
    """Two graphs with hardly an op in common: one line and exit 1, not "all 0 ops within tolerance"."""
    import dataclasses

    from npdeeplab.model.loader import load_model
    from npdeeplab.model.writer import save_model

    model = load_model(seed_model_path)
    graph = model.main
    first_five = dataclasses.replace(graph, ops=graph.ops[:5], outputs=graph.ops[4].outputs)
    cut = save_model(dataclasses.replace(model, subgraphs=(first_five,)), tmp_path / "first5.tflite")
    assert main(["compare", str(seed_model_path), str(cut), "--random", "--backend", "numpy"]) == 1
    out = capsys.readouterr().out
    assert out == ("only 5 of 70 ops matched by tensor name: the two sides do not correspond op by op, so they were "
                   "not compared\n")


def test_compare_usage_line_is_readable():
    result = run_cli("compare", "--help", cwd=ROOT)
    assert result.stdout.splitlines()[0] == "usage: npdeeplab compare MODEL [MODEL_B] (IMAGE | --random) [options]"


def test_the_browser_test_fails_rather_than_skips_in_ci(tmp_path):
    """With CI=true and no Chromium on PATH, the report's browser test must fail, not skip."""
    env = {**os.environ, "CI": "true", "PATH": str(Path(sys.executable).parent)}
    result = subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider",
                             str(ROOT / "tests" / "test_tools.py"), "-k", "real_browser"],
                            capture_output=True, text=True, cwd=tmp_path, env=env, timeout=300)
    assert result.returncode == 1, result.stdout[-2000:]
    assert "1 failed" in result.stdout and "Chromium is not installed" in result.stdout
    assert "CI=true: this must not be skipped" in result.stdout
