"""`npdeeplab bench [MODEL] [--runs N] [--passes P] [--engines LIST] [--threads T] [--load N]`: npdeeplab
against LiteRT, each engine alone in a fresh process; with --load N, also each engine while N other
processes keep N cores busy, and how much that slows each one down."""

from __future__ import annotations

import argparse
import dataclasses
import json
import sys

from npdeeplab.commands import add_numerics_option
from npdeeplab.tools.bench import DEFAULT_TIMEOUT_S, ENGINES, benchmark
from npdeeplab.zoo import DEFAULT_MODEL, resolve_model


def add_parser(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "bench",
        help="time npdeeplab (Numba, NumPy) against LiteRT (XNNPACK, no delegates)",
        description="Time npdeeplab and LiteRT, each engine alone in a fresh process, alternating over "
        "several passes: best median per engine, the spread of its medians, ratios, a per-op breakdown. "
        "With --load N, every pass runs each engine twice, back to back: alone, and while N other processes "
        "(pure busy loops) keep N cores busy; a second table gives each engine's best median unloaded and "
        "loaded and its slowdown (loaded / unloaded), so the engines' slowdowns under the same load compare "
        "within one run.",
    )
    parser.add_argument("model", nargs="?", default=DEFAULT_MODEL, help="registry name or .tflite path")
    parser.add_argument("--runs", type=positive_int, default=20, help="timed runs per engine and pass (default 20)")
    parser.add_argument("--passes", type=positive_int, default=3, help="passes over the engines (default 3)")
    parser.add_argument(
        "--engines",
        type=engine_list,
        default=None,
        help=f"comma-separated subset of {','.join(ENGINES)} (default: all)",
    )
    parser.add_argument(
        "--threads", type=positive_int, default=None, help="threads for every engine (default: all cores)"
    )
    parser.add_argument(
        "--load",
        type=non_negative_int,
        default=0,
        metavar="N",
        help="also time each engine in every pass while N other processes keep N cores busy (a pure busy "
        "loop each, started before the engine's process and stopped when it ends), and report each "
        "engine's slowdown under that load (default 0: no loaded runs)",
    )
    parser.add_argument("--top", type=positive_int, default=10, help="ops to list in the per-op breakdown")
    parser.add_argument(
        "--timeout",
        type=float,
        default=DEFAULT_TIMEOUT_S,
        help=f"seconds one engine's process may take before it is stopped (default {DEFAULT_TIMEOUT_S:g})",
    )
    parser.add_argument("--json", action="store_true", help="print the whole result as JSON")
    add_numerics_option(parser, "npdeeplab's engines (not LiteRT's)")
    parser.set_defaults(run=run)


def positive_int(text: str) -> int:
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be at least 1, got {value}")
    return value


def non_negative_int(text: str) -> int:
    value = int(text)
    if value < 0:
        raise argparse.ArgumentTypeError(f"must be at least 0, got {value}")
    return value


def engine_list(text: str) -> list[str]:
    names = [name.strip() for name in text.split(",") if name.strip()]
    unknown = [name for name in names if name not in ENGINES]
    if unknown or not names:
        raise argparse.ArgumentTypeError(
            f"unknown engine(s) {', '.join(unknown) or '(none given)'}; choose from {', '.join(ENGINES)}"
        )
    return names


def run(args: argparse.Namespace) -> int:
    result = benchmark(
        resolve_model(args.model),
        runs=args.runs,
        threads=args.threads,
        passes=args.passes,
        engines=args.engines,
        timeout_s=args.timeout,
        numerics=args.numerics,
        load=args.load,
        progress=print_progress if sys.stderr.isatty() else None,
    )
    if args.json:
        print(json.dumps(dataclasses.asdict(result), indent=2))
    else:
        print(result.to_text(top=args.top))
    return 0


def print_progress(message: str) -> None:
    print(f"npdeeplab bench: {message}", file=sys.stderr, flush=True)
