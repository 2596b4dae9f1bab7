"""`npdeeplab inspect MODEL [--json]`: the ops, their shapes, options, parameters and MACs;
`npdeeplab inspect --ops`: the op kinds npdeeplab runs."""

from __future__ import annotations

import argparse
import json

from npdeeplab.zoo import DEFAULT_MODEL


def add_parser(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "inspect",
        help="summarise a model: ops, shapes, options, parameters, MACs",
        description=(
            "Print one row per op, totals, and the inputs and outputs with dtypes and quantization. A model "
            "npdeeplab can read but not run is still summarised (with the shapes its file declares and why it "
            "cannot run), with exit code 0."
        ),
    )
    parser.add_argument("model", nargs="?", default=DEFAULT_MODEL, help="registry name or .tflite path")
    parser.add_argument("--json", action="store_true", help="print the summary as JSON")
    parser.add_argument("--ops", action="store_true", help="list the op kinds npdeeplab runs, and exit")
    parser.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    if args.ops:
        return list_ops(args.json)
    from npdeeplab.tools.summary import summarize

    summary = summarize(args.model)
    if args.json:
        print(json.dumps(summary.to_dict(), indent=2, default=str))
    else:
        print(summary.to_text())
    return 0


def list_ops(as_json: bool) -> int:
    from npdeeplab.ops import SUPPORTED_OPS
    from npdeeplab.runtime.graph import RAW_VALUE_KINDS

    if as_json:
        print(json.dumps({"ops": list(SUPPORTED_OPS), "on_quantized_tensors": sorted(RAW_VALUE_KINDS)}, indent=2))
        return 0
    print(f"npdeeplab runs {len(SUPPORTED_OPS)} op kinds on float32 tensors (index and shape ops also on int32/int64):")
    for kind in SUPPORTED_OPS:
        note = "  (also on quantized uint8/int8 tensors: raw values)" if kind in RAW_VALUE_KINDS else ""
        print(f"  {kind}{note}")
    return 0
