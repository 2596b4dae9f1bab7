"""`npdeeplab inspect MODEL [--json]`: the ops, their shapes, options, parameters and MACs."""

from __future__ import annotations

import argparse
import json

from npdeeplab.errors import ModelError
from npdeeplab.tools.summary import summarize
from npdeeplab.zoo import DEFAULT_MODEL


def add_parser(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "inspect",
        help="summarise a model: ops, shapes, options, parameters, MACs",
        description="Print one row per op, totals, and the inputs and outputs with dtypes and quantization.",
    )
    parser.add_argument("model", nargs="?", default=DEFAULT_MODEL, help="registry name or .tflite path")
    parser.add_argument("--json", action="store_true", help="print the summary as JSON")
    parser.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    summary = summarize(args.model)
    if args.json:
        print(json.dumps(summary.to_dict(), indent=2, default=str))
    else:
        print(summary.to_text())
    if summary.problem:
        raise ModelError(summary.problem)  # the table is still useful; the exit code says it cannot run
    return 0
