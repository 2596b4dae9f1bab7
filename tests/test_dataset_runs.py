"""Whole datasets: a process pool and a Dask cluster write exactly what a serial run writes;
--resume, --keep-going and the summary; `evaluate` on a real image and mask, alone and --compare."""

from __future__ import annotations

import importlib.util
import json
import logging
import sys
from pathlib import Path

import numpy as np
import pytest
from conftest import require
from PIL import Image

from npdeeplab.cli import main
from npdeeplab.commands import segment as segment_command
from npdeeplab.dataset import run_ordered
from npdeeplab.dataset.tasks import SegmentTask

QUANT = "deeplabv3_mnv2_dm05_pascal_quant"
BIRD_ONLY = {"0": 0, "3": 3}  # the bird mask's 1s and 2s are all on the bird's outline: ignored, as VOC's 255


@pytest.fixture(scope="module")
def photos(tmp_path_factory, shared_images_dir) -> Path:
    """Six images: the shared photos, and each flipped."""
    folder = tmp_path_factory.mktemp("photos")
    for name in ("astronaut.png", "chelsea.png", "bird_segmentation.bmp"):
        image = Image.open(shared_images_dir / name).convert("RGB")
        image.save(folder / f"{Path(name).stem}.png")
        image.transpose(Image.Transpose.FLIP_LEFT_RIGHT).save(folder / f"{Path(name).stem}_flipped.png")
    return folder


@pytest.fixture(scope="module")
def serial(photos, tmp_path_factory, shared_models_dir) -> dict[str, bytes]:
    out = tmp_path_factory.mktemp("serial")
    with pytest.MonkeyPatch.context() as patch:  # conftest's setting is per test; this fixture is per module
        patch.setenv("NPDEEPLAB_MODELS", str(shared_models_dir))
        assert main(["segment", str(photos), "-o", str(out), "--overlay", str(out), "--workers", "1"]) == 0
    return outputs(out)


@pytest.fixture(scope="module")
def cluster(shared_models_dir):
    """One local Dask cluster for the module (its start takes seconds): 2 processes on loopback."""
    require(importlib.util.find_spec("distributed") is not None, "Dask (dask[distributed]) is not installed")
    from distributed import LocalCluster

    with LocalCluster(n_workers=2, threads_per_worker=1, processes=True, host="127.0.0.1",
                      dashboard_address="127.0.0.1:0", silence_logs=logging.ERROR,
                      env={"NPDEEPLAB_MODELS": str(shared_models_dir)}) as local:
        yield local


def outputs(folder: Path) -> dict[str, bytes]:
    return {p.name: p.read_bytes() for p in sorted(folder.iterdir())}


def test_a_pool_writes_what_a_serial_run_writes(photos, serial, tmp_path, capsys):
    assert main(["segment", str(photos), "-o", str(tmp_path), "--overlay", str(tmp_path), "--workers", "2",
                 "--summary", str(tmp_path.parent / "summary.json")]) == 0
    assert outputs(tmp_path) == serial and len(serial) == 12
    err = capsys.readouterr().err
    assert "6 images: 6 segmented, 0 failed; " in err and "on 2 worker processes" in err
    summary = json.loads((tmp_path.parent / "summary.json").read_text())
    assert summary["segmented"] == 6 and summary["images_per_second"] > 0
    names = [c["name"] for c in summary["classes"]]
    assert names[0] == "background" and {"person", "cat", "bird"} <= set(names)
    assert sum(c["share"] for c in summary["classes"]) == pytest.approx(1, abs=1e-4)


@pytest.mark.parametrize("send_bytes", [False, True])
def test_dask_writes_what_a_serial_run_writes(send_bytes, cluster, photos, serial, tmp_path, capsys):
    args = ["segment", str(photos), "-o", str(tmp_path), "--overlay", str(tmp_path),
            "--dask", cluster.scheduler_address]
    assert main(args + (["--send-bytes"] if send_bytes else [])) == 0
    assert outputs(tmp_path) == serial
    assert "on Dask (2 worker threads)" in capsys.readouterr().err


def test_the_python_api_takes_a_client(cluster, photos):
    from distributed import Client

    images = sorted(str(p) for p in photos.iterdir())
    with Client(cluster) as client:
        remote = list(run_ordered(SegmentTask("deeplabv3_257_mv_gpu"), images, client=client, window=2))
    here = list(run_ordered(SegmentTask("deeplabv3_257_mv_gpu"), images))
    assert [r.image.size for r in remote] == [r.image.size for r in here]
    assert all(np.array_equal(a.labels, b.labels) for a, b in zip(remote, here, strict=True))


def test_dask_local_n_starts_and_stops_its_own_cluster(photos, serial, tmp_path):
    require(importlib.util.find_spec("distributed") is not None, "Dask (dask[distributed]) is not installed")
    assert main(["segment", str(photos / "chelsea.png"), str(photos / "astronaut.png"), "-o", str(tmp_path),
                 "--dask", "local:1"]) == 0
    assert outputs(tmp_path) == {k: v for k, v in serial.items() if k in ("chelsea_mask.png", "astronaut_mask.png")}


def test_without_dask_the_option_says_how_to_install_it(photos, tmp_path, monkeypatch, capsys):
    monkeypatch.setitem(sys.modules, "distributed", None)  # import distributed now raises ImportError
    assert main(["segment", str(photos), "-o", str(tmp_path / "out"), "--dask", "local:2"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert err[-1] == ("npdeeplab: error: --dask needs Dask's distributed scheduler, which is not installed: "
                       "pip install 'npdeeplab[dask]'")
    assert not (tmp_path / "out").exists()


def test_resume_after_an_interruption(photos, serial, tmp_path, monkeypatch, capsys):
    """A run stopped after 2 images; a third's output is then corrupted: --resume redoes it and the rest."""
    write, count = segment_command.Outputs.write, []

    def stop_after_two(self, job, result):
        if len(count) == 2:
            raise KeyboardInterrupt
        count.append(job)
        write(self, job, result)

    monkeypatch.setattr(segment_command.Outputs, "write", stop_after_two)
    assert main(["segment", str(photos), "-o", str(tmp_path), "--overlay", str(tmp_path)]) == 130
    assert len(outputs(tmp_path)) == 4
    monkeypatch.setattr(segment_command.Outputs, "write", write)
    second = tmp_path / "astronaut_flipped_mask.png"  # the images run in order: astronaut, astronaut_flipped, ...
    second.write_bytes(second.read_bytes()[:100])  # a truncated PNG
    capsys.readouterr()
    assert main(["segment", str(photos), "-o", str(tmp_path), "--overlay", str(tmp_path), "--resume", "--json",
                 "--workers", "1"]) == 0
    reports = json.loads(capsys.readouterr().out)["images"]
    assert [("skipped" in r) for r in reports] == [True, False, False, False, False, False]
    assert outputs(tmp_path) == serial


def test_keep_going_in_a_pool(photos, serial, tmp_path, capsys):
    folder = tmp_path / "in"
    folder.mkdir()
    for name in ("astronaut.png", "chelsea.png"):
        (folder / name).write_bytes((photos / name).read_bytes())
    (folder / "broken.png").write_bytes(b"\x89PNG not really")
    assert main(["segment", str(folder), "-o", str(tmp_path / "out"), "--keep-going", "--workers", "2",
                 "--json"]) == 1
    captured = capsys.readouterr()
    document = json.loads(captured.out)
    reports = document["images"]
    assert [Path(r["image"]).name for r in reports] == ["astronaut.png", "broken.png", "chelsea.png"]
    assert document["summary"]["segmented"] == 2 and document["summary"]["failed"] == 1
    assert "not an image Pillow can read" in reports[1]["error"]
    assert "3 images: 2 segmented, 1 failed" in captured.err and "1 of 3 images failed" in captured.err
    assert outputs(tmp_path / "out") == {k: serial[k] for k in ("astronaut_mask.png", "chelsea_mask.png")}


@pytest.fixture(scope="module")
def bird(tmp_path_factory, shared_images_dir) -> tuple[Path, Path, Path]:
    """The bird and its mask, and the same flipped; chelsea has no mask; the label map."""
    root = tmp_path_factory.mktemp("bird")
    (root / "images").mkdir()
    (root / "masks").mkdir()
    image = Image.open(shared_images_dir / "bird_segmentation.bmp")
    mask = Image.open(shared_images_dir / "bird_segmentation_mask.bmp")
    image.save(root / "images" / "bird.png")
    mask.save(root / "masks" / "bird.png")
    image.transpose(Image.Transpose.FLIP_TOP_BOTTOM).save(root / "images" / "bird_upside_down.png")
    mask.transpose(Image.Transpose.FLIP_TOP_BOTTOM).save(root / "masks" / "bird_upside_down.png")
    Image.open(shared_images_dir / "chelsea.png").save(root / "images" / "chelsea.png")
    (root / "bird_only.json").write_text(json.dumps(BIRD_ONLY))
    return root / "images", root / "masks", root / "bird_only.json"


def evaluate(capsys, *args: str) -> dict:
    assert main(["evaluate", *args, "--json"]) == 0
    return json.loads(capsys.readouterr().out)


def test_evaluate_the_bird(image_path, capsys, tmp_path):
    bmp, mask = str(image_path("bird_segmentation.bmp")), str(image_path("bird_segmentation_mask.bmp"))
    found = evaluate(capsys, "deeplabv3_257_mv_gpu", bmp, mask, "--plot", str(tmp_path / "confusion.png"))
    present = {k: v for k, v in found["per_class"].items() if v is not None}
    assert sorted(present) == ["aeroplane", "background", "bicycle", "bird"]  # the mask's 1s and 2s count
    assert found["miou"] == pytest.approx(sum(present.values()) / 4, abs=1e-5)
    assert present["bird"] > 0.8 and present["background"] > 0.9 and found["pixel_accuracy"] > 0.9
    assert np.array(found["confusion"]).sum() == 513 * 513 == found["pixels"]
    with Image.open(tmp_path / "confusion.png") as plot:
        plot.load()
        assert plot.format == "PNG"
    (tmp_path / "map.json").write_text(json.dumps(BIRD_ONLY))
    outline_ignored = evaluate(capsys, "deeplabv3_257_mv_gpu", bmp, mask, "--label-map", str(tmp_path / "map.json"))
    assert outline_ignored["miou"] > 0.85 and outline_ignored["per_class"]["aeroplane"] is None


def test_evaluate_a_folder_in_a_pool_and_on_dask_is_the_serial_score(bird, cluster, capsys):
    images, masks, label_map = (str(p) for p in bird)
    serial = evaluate(capsys, "deeplabv3_257_mv_gpu", images, masks, "--label-map", label_map, "--workers", "1")
    assert serial["images"] == 2 and [Path(p).name for p in serial["images_without_mask"]] == ["chelsea.png"]
    assert serial["miou"] > 0.8
    pooled = evaluate(capsys, "deeplabv3_257_mv_gpu", images, masks, "--label-map", label_map, "--workers", "2")
    remote = evaluate(capsys, "deeplabv3_257_mv_gpu", images, masks, "--label-map", label_map,
                      "--dask", cluster.scheduler_address, "--send-bytes")
    assert pooled == serial == remote


def test_evaluate_compare_float_and_quantized(bird, capsys):
    images, masks, label_map = (str(p) for p in bird)
    found = evaluate(capsys, "deeplabv3_257_mv_gpu", images, masks, "--label-map", label_map, "--compare", QUANT)
    other = found["compare"]
    assert other["model"] == QUANT and other["miou"] > 0.8
    assert other["miou_delta"] == pytest.approx(other["miou"] - found["miou"], abs=1e-5)
    bird_delta = other["per_class"]["bird"] - found["per_class"]["bird"]
    assert other["per_class_delta"]["bird"] == pytest.approx(bird_delta, abs=1e-5)
    assert other["per_class_delta"]["cat"] is None
    assert 0.9 < other["pixel_agreement"] < 1
    assert main(["evaluate", "deeplabv3_257_mv_gpu", images, masks, "--label-map", label_map, "--compare",
                 QUANT]) == 0
    text = capsys.readouterr().out
    assert "the two models agree on" in text and "B - A" in text and "\nbird " in text


@pytest.mark.parametrize("case", ["size", "no-match"])
def test_evaluate_refuses_in_one_line(case, image_path, tmp_path, capsys):
    bmp = str(image_path("bird_segmentation.bmp"))
    if case == "size":
        Image.new("L", (10, 20)).save(tmp_path / "small.png")
        args = [bmp, str(tmp_path / "small.png")]
    else:
        (tmp_path / "gt").mkdir()
        Image.new("L", (10, 20)).save(tmp_path / "gt" / "other.png")
        args = [str(image_path("bird_segmentation.bmp").parent), str(tmp_path / "gt")]
    assert main(["evaluate", "deeplabv3_257_mv_gpu", *args]) == 2
    line = capsys.readouterr().err.strip().splitlines()[-1]
    expected = {"size": "small.png' is 10x20 but image", "no-match": "has a mask of the same file stem"}[case]
    assert line.startswith("npdeeplab: error: ") and expected in line, line
