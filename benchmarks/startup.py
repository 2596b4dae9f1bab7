"""`npdeeplab segment` from process start to PNG written, with its peak RSS; run twice to see the
cold (first, compiling) and warm (cached kernels) cases.

    NPDEEPLAB_MODELS=../shared/models python benchmarks/startup.py ../shared/images/astronaut.png
"""

import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path


def main() -> None:
    image = sys.argv[1]
    with tempfile.TemporaryDirectory() as folder:
        start = time.perf_counter()
        command = [sys.executable, "-m", "npdeeplab", "segment", image, "-o", str(Path(folder) / "m.png")]
        result = subprocess.run(command, capture_output=True, text=True)
        seconds = time.perf_counter() - start
    peak = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024
    compiled = "compiling" in result.stderr
    print(f"{'cold (compiled kernels)' if compiled else 'warm'}: {seconds:.2f} s to PNG, peak RSS {peak:.0f} MB, "
          f"exit {result.returncode}")


if __name__ == "__main__":
    main()
