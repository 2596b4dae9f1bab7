"""`npdeeplab bench MODEL [--runs N] [--threads T]`: npdeeplab and LiteRT side by side."""

from __future__ import annotations

import argparse
import json

from npdeeplab.tools.bench import benchmark
from npdeeplab.zoo import DEFAULT_MODEL, resolve_model


def add_parser(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "bench",
        help="time npdeeplab (Numba, NumPy) against LiteRT (XNNPACK, no delegates)",
        description="Time npdeeplab and LiteRT in one process: warm-up, interleaved runs, medians, ratios.",
    )
    parser.add_argument("model", nargs="?", default=DEFAULT_MODEL, help="registry name or .tflite path")
    parser.add_argument("--runs", type=positive_int, default=20, help="timed runs per engine (default 20)")
    parser.add_argument(
        "--threads", type=positive_int, default=None, help="threads for every engine (default: all cores)"
    )
    parser.add_argument("--top", type=positive_int, default=10, help="ops to list in the per-op breakdown")
    parser.add_argument("--json", action="store_true", help="print the result as JSON")
    parser.set_defaults(run=run)


def positive_int(text: str) -> int:
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be at least 1, got {value}")
    return value


def run(args: argparse.Namespace) -> int:
    result = benchmark(resolve_model(args.model), runs=args.runs, threads=args.threads)
    if args.json:
        print(json.dumps(result.__dict__, indent=2))
    else:
        print(result.to_text(top=args.top))
    return 0
