"""Images per second over a dataset against the number of workers: npdeeplab and LiteRT, each in the
same runner (npdeeplab.dataset.run_ordered): in this process, a pool of 2 processes, and a Dask
local cluster of 2 processes (one Numba/BLAS thread per worker; in this process, the default threads).

    python benchmarks/dataset.py [--images 24] [--model deeplabv3_257_mv_gpu]

The images are copies of the shared photos, flipped, cropped and resized (in a temporary folder,
deleted afterwards). Each worker loads its model once. `first` is the time to the first result
(pool start, model load; Numba's on-disk
cache is warmed first); `steady` the rate after it; `overall` the whole run.
"""

from __future__ import annotations

import argparse
import os
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image

import npdeeplab  # noqa: F401  (before NumPy: the thread-waiting policy)
from npdeeplab.dataset import run_ordered
from npdeeplab.dataset.tasks import SegmentTask
from npdeeplab.zoo import resolve_model

PHOTOS = ("astronaut.png", "chelsea.png", "bird_segmentation.bmp")


@dataclass(frozen=True)
class LiteRTTask:
    """The same per-image work on LiteRT (no delegates: its reference-grade builtin kernels; 1 thread):
    stretch to the input, (x - 127.5) / 127.5, invoke, logits scaled to the image and argmaxed."""

    model: str

    def setup(self) -> None:
        from ai_edge_litert.interpreter import Interpreter, OpResolverType

        interpreter = Interpreter(model_path=self.model, num_threads=1,
                                  experimental_op_resolver_type=OpResolverType.BUILTIN_WITHOUT_DEFAULT_DELEGATES)
        interpreter.allocate_tensors()
        object.__setattr__(self, "interpreter", interpreter)  # set up in the worker, never pickled

    def __call__(self, path: str) -> np.ndarray:
        from npdeeplab.segmentation import upsampled_argmax

        image, litert = Image.open(path).convert("RGB"), self.interpreter
        detail = litert.get_input_details()[0]
        height, width = int(detail["shape"][1]), int(detail["shape"][2])
        pixels = np.asarray(image.resize((width, height), Image.Resampling.BILINEAR), dtype=np.float32)
        litert.set_tensor(detail["index"], ((pixels - 127.5) / 127.5)[None])
        litert.invoke()
        logits = litert.get_tensor(litert.get_output_details()[0]["index"])[0]
        return upsampled_argmax(logits, (image.height, image.width))


def dataset(folder: Path, count: int, images: Path) -> list[str]:
    paths = []
    for i in range(count):
        image = Image.open(images / PHOTOS[i % len(PHOTOS)]).convert("RGB")
        if i // len(PHOTOS) % 2:
            image = image.transpose(Image.Transpose.FLIP_LEFT_RIGHT)
        crop = (i // 6) % 4 * 16
        image = image.crop((crop, crop, image.width - crop, image.height - crop)).resize((500, 375 + 25 * (i % 3)))
        path = folder / f"{i:03d}.png"
        image.save(path)
        paths.append(str(path))
    return paths


def timed(task, paths: list[str], **where) -> tuple[float, float, float]:
    start = time.perf_counter()
    first = None
    for _ in run_ordered(task, paths, **where):
        first = first or time.perf_counter()
    end = time.perf_counter()
    return first - start, (len(paths) - 1) / (end - first), len(paths) / (end - start)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--images", type=int, default=24)
    parser.add_argument("--model", default="deeplabv3_257_mv_gpu")
    parser.add_argument("--shared-images", default=os.environ.get("NPDEEPLAB_IMAGES", "../shared/images"))
    args = parser.parse_args()
    model = str(resolve_model(args.model))
    engines = {"npdeeplab (Numba)": lambda: SegmentTask(model, backend="numba"),  # a fresh task for each run
               "LiteRT, no delegates": lambda: LiteRTTask(model)}
    with tempfile.TemporaryDirectory() as folder:
        paths = dataset(Path(folder), args.images, Path(args.shared_images))
        rows = []
        for task in engines.values():  # Numba's on-disk cache filled: the workers load, not compile
            list(run_ordered(task(), paths[:6]))
        for engine, task in engines.items():
            rows.append((engine, "1 (this process)", *timed(task(), paths)))
            rows.append((engine, "2 (process pool)", *timed(task(), paths, workers=2)))
        from distributed import Client, LocalCluster

        with LocalCluster(n_workers=2, threads_per_worker=1, processes=True, host="127.0.0.1",
                          dashboard_address="127.0.0.1:0", env={"NUMBA_NUM_THREADS": "1"}) as cluster:
            with Client(cluster) as client:
                for engine, task in engines.items():
                    rows.append((engine, "Dask local:2", *timed(task(), paths, client=client)))
    print(f"{args.images} images (500 px wide), {args.model}, {os.cpu_count()} cores")
    print("| engine | workers | first result s | steady images/s | overall images/s |")
    print("| --- | --- | ---: | ---: | ---: |")
    for engine, where, first, steady, overall in sorted(rows, key=lambda r: r[0] != "npdeeplab (Numba)"):
        print(f"| {engine} | {where} | {first:.2f} | {steady:.1f} | {overall:.1f} |")


if __name__ == "__main__":
    main()
