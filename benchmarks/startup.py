"""`npdeeplab segment` from process start to PNG written, with its peak RSS: first as on a new
machine (an empty Numba cache, so every kernel the model calls compiles), then warm (the kernels
loaded from that cache).

    NPDEEPLAB_MODELS=../shared/models python benchmarks/startup.py ../shared/images/astronaut.png
    python benchmarks/startup.py IMAGE --model deeplabv3_mnv2_dm05_pascal_quant --warm 5
"""

import argparse
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path


def segment(image: str, model: str | None, folder: Path, cache: Path) -> tuple[float, float, bool, int]:
    """Seconds to PNG, peak RSS in MB (of the process, or of the compiling helper it waited for),
    whether it compiled, exit code."""
    command = [sys.executable, "-m", "npdeeplab", "segment", image, "-o", str(folder / "m.png")]
    command += ["--model", model] if model else []
    start = time.perf_counter()
    with tempfile.TemporaryFile("w+") as stderr:
        child = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=stderr,
                                 env={**os.environ, "NUMBA_CACHE_DIR": str(cache)})
        _, status, usage = os.wait4(child.pid, 0)
        seconds = time.perf_counter() - start
        stderr.seek(0)
        compiled = "compiling" in stderr.read()
    return seconds, usage.ru_maxrss / 1024, compiled, os.waitstatus_to_exitcode(status)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("image")
    parser.add_argument("--model", help="a model name or .tflite path (default: segment's)")
    parser.add_argument("--warm", type=int, default=3, help="warm runs after the cold one")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as folder:
        folder = Path(folder)
        for _ in range(1 + args.warm):
            seconds, peak, compiled, code = segment(args.image, args.model, folder, folder / "numba")
            label = "cold (compiled kernels)" if compiled else "warm"
            print(f"{label}: {seconds:.2f} s to PNG, peak RSS {peak:.0f} MB, exit {code}", flush=True)


if __name__ == "__main__":
    main()
