"""The command line: a campaign, a replay of one saved model, or the harness's self-test."""

from __future__ import annotations

import argparse
import json
import os
from pathlib import Path

from .campaign import print_summary, run_campaign, summary
from .check import FAILURES, check_model
from .isolation import DEFAULT_MEMORY_LIMIT, DEFAULT_TIMEOUT, preload_numba_kernels, prepare_to_fork, run_isolated
from .seeds import load_seed_files, shared_models_folder
from .selftest import self_test

DEFAULT_CASES = 300


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python tests/fuzz", description="Fuzz npdeeplab's loader and both backends.")
    parser.add_argument("--cases", type=int, default=int(os.environ.get("NPDEEPLAB_FUZZ_CASES", DEFAULT_CASES)),
                        help="number of cases (default: $NPDEEPLAB_FUZZ_CASES, else %(default)s)")
    parser.add_argument("--start", type=int, default=0, help="first case number (to continue or shard a run)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", type=Path, default=Path("/tmp/npdeeplab-fuzz"), help="where failures are saved")
    parser.add_argument("--workers", type=int, default=len(os.sched_getaffinity(0)))
    parser.add_argument("--timeout", type=float, default=DEFAULT_TIMEOUT, help="seconds per case")
    parser.add_argument("--memory-limit", type=float, default=DEFAULT_MEMORY_LIMIT / 2**30, help="GiB of address space")
    parser.add_argument("--models", type=Path, default=None,
                        help="folder of the shared models (default: $NPDEEPLAB_MODELS, else ../shared/models)")
    parser.add_argument("--threading-layer", choices=["forksafe", "default"], default="forksafe",
                        help="forksafe: kernels preloaded here (Numba's workqueue); default: each child loads them")
    parser.add_argument("--summary-json", type=Path, help="also write the summary here as JSON")
    parser.add_argument("--progress", type=int, default=0, help="print a progress line every N cases")
    parser.add_argument("--replay", type=Path, help="run one saved model (as a case would) and print the result")
    parser.add_argument("--input-seed", type=int, default=0, help="with --replay: the case's input seed")
    parser.add_argument("--self-test", action="store_true", help="check that the harness detects crashes, hangs...")
    return parser.parse_args(argv)


def replay(path: Path, input_seed: int, timeout: float, memory_limit: int) -> int:
    data = path.read_bytes()
    result = run_isolated(lambda report: check_model(data, input_seed, report), timeout, memory_limit)
    for key in ("outcome", "type", "message", "where", "stage", "seconds", "traceback", "stderr"):
        if result.get(key):
            print(f"{key}: {result[key]}")
    return 1 if result["outcome"] in FAILURES else 0


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    memory_limit = int(args.memory_limit * 2**30)
    if args.self_test:
        results = self_test()
        print(json.dumps(results, indent=2))
        return 0 if all(r["outcome"] == r["expected"] for r in results.values()) else 1
    prepare_to_fork(args.threading_layer)
    if args.replay:
        return replay(args.replay, args.input_seed, args.timeout, memory_limit)
    seeds = load_seed_files(args.models or shared_models_folder())
    numbers = range(args.start, args.start + args.cases)
    refresh = preload_numba_kernels if args.threading_layer == "forksafe" else None
    campaign, generator = run_campaign(seeds, args.seed, numbers, args.out, args.workers, args.timeout,
                                       memory_limit, args.progress, refresh)
    report = summary(campaign, generator, len(numbers), args.seed, args.workers)
    print_summary(report)
    (args.out / "summary.json").write_text(json.dumps(report, indent=2))
    if args.summary_json:
        args.summary_json.write_text(json.dumps(report, indent=2))
    return 1 if report["failures"] else 0
