"""Seed-model benchmark: npdeeplab (Numba, NumPy) against LiteRT (XNNPACK, no delegates).

    python benchmarks/bench.py [MODEL] [--runs N] [--threads T]

Same as `npdeeplab bench`; kept as a script so it can be run from a checkout.
"""

import sys

import npdeeplab  # noqa: F401  (first, before NumPy: sets the thread-waiting policy)
from npdeeplab.cli import main

if __name__ == "__main__":
    sys.exit(main(["bench", *sys.argv[1:]]))
