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
    parser.add_argument("--tensors", action="store_true",
                        help="also list every tensor: dtype, shape, constant or not, scale and zero point")
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
        if args.tensors:
            print()
            print(summary.tensors_text())
    return 0


def list_ops(as_json: bool) -> int:
    from npdeeplab.ops import SUPPORTED_OPS, SUPPORTED_QUANTIZED_OPS
    from npdeeplab.ops.base import RAW_VALUE_KINDS
    from npdeeplab.ops.custom import CUSTOM_OPS

    quantized = sorted({*SUPPORTED_QUANTIZED_OPS, *(set(RAW_VALUE_KINDS) & set(SUPPORTED_OPS))})
    custom = sorted(CUSTOM_OPS)
    if as_json:
        print(json.dumps({"ops": list(SUPPORTED_OPS), "quantized": quantized, "custom": custom}, indent=2))
        return 0
    kinds = sorted({*SUPPORTED_OPS, *SUPPORTED_QUANTIZED_OPS})
    print(f"npdeeplab runs {len(kinds)} op kinds: {len(SUPPORTED_OPS)} on float32 tensors (index and shape ops also "
          f"on int32/int64), {len(quantized)} on quantized uint8/int8 tensors (marked q):")
    for kind in kinds:
        print(f"  {kind}{'  q' if kind in quantized else ''}")
    print(f"and {len(custom)} custom op{'s' if len(custom) != 1 else ''} (npdeeplab.register_custom_op adds more): "
          f"{', '.join(custom)}")
    return 0
