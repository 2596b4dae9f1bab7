"""Seed-model benchmark: npdeeplab (Numba, NumPy) against LiteRT (XNNPACK, no delegates).

    python benchmarks/bench.py [MODEL] [--runs N] [--passes P] [--engines xnnpack,litert,numba,numpy] [--threads T]

Same as `npdeeplab bench`, kept as a script so it can be run from a checkout: each engine runs alone in
a fresh process, the engines alternating over the passes; it reports each engine's best median, the
spread of its medians, and the ratios.
"""

import sys

import npdeeplab  # noqa: F401  (first, before NumPy: sets the thread-waiting policy the children inherit)
from npdeeplab.cli import main

if __name__ == "__main__":
    sys.exit(main(["bench", *sys.argv[1:]]))
