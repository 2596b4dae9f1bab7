"""`npdeeplab quant-diff FLOAT_MODEL QUANT_MODEL [IMAGE...|--random N] [--json] [--model-explorer OUT.json]`."""

from __future__ import annotations

import argparse
import json

from npdeeplab.commands import add_numerics_option


def add_parser(subparsers: argparse._SubParsersAction) -> None:
    from npdeeplab.tools.quant_diff import DEFAULT_MARGIN_DB

    parser = subparsers.add_parser(
        "quant-diff",
        usage="npdeeplab quant-diff FLOAT_MODEL QUANT_MODEL (IMAGE... | --random N) [options]",
        help="rank a quantized model's layers by how much accuracy each loses against the float model",
        description=(
            "Matches the quantized model's ops to the float model's (by output tensor name, then by graph "
            "position and op kind), runs both on the same inputs and reports per layer the error in units of the "
            "output's scale (mean, max), SNR in dB and cosine: accumulated (the whole quantized run) and isolated "
            "(the op alone on the float model's activations, quantized with its own input parameters). Layers are "
            "ranked by isolated SNR, lowest first; those more than --margin dB below the median are the ones to "
            "keep in float. Exit 0; 1 when fewer than half the quantized layers match (no ranking then); 2 on bad "
            "input."
        ),
    )
    parser.add_argument("float_model", metavar="FLOAT_MODEL", help="the float model (.tflite or registry name)")
    parser.add_argument("quant_model", metavar="QUANT_MODEL", help="its quantized twin (.tflite or registry name)")
    parser.add_argument("images", nargs="*", metavar="IMAGE", help="images, preprocessed for each model as segment "
                        "does")
    parser.add_argument("--random", type=int, metavar="N", help="N seeded random inputs instead of images")
    parser.add_argument("--seed", type=int, default=0, help="seed for --random (0)")
    parser.add_argument("--margin", type=float, default=DEFAULT_MARGIN_DB, metavar="DB",
                        help=f"keep in float what is this far below the median isolated SNR ({DEFAULT_MARGIN_DB:g} dB)")
    parser.add_argument("--json", action="store_true", help="print the layers, worst first, as JSON")
    parser.add_argument("--model-explorer", metavar="OUT.json",
                        help="also write the ranking as Model Explorer node data (isolated SNR per node)")
    parser.add_argument("--backend", choices=("auto", "numpy", "numba"), default=None)
    add_numerics_option(parser, "the quantized model's kernels")
    parser.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    from npdeeplab.errors import InputError
    from npdeeplab.files import atomic_file
    from npdeeplab.runtime.interpreter import Interpreter
    from npdeeplab.tools import quant_diff as tool
    from npdeeplab.zoo import resolve_model

    if bool(args.images) == (args.random is not None):
        raise InputError("give IMAGE... or --random N (one of them)")
    if args.random is not None and args.random < 1:
        raise InputError(f"--random takes a positive number of inputs, got {args.random}")
    float_side = Interpreter(model_path=resolve_model(args.float_model), backend=args.backend)
    quant_side = Interpreter(model_path=resolve_model(args.quant_model), backend=args.backend,
                             numerics=args.numerics)
    if args.random is not None:
        inputs = tool.paired_random_inputs(float_side, quant_side, args.random, args.seed)
    else:
        inputs = tool.paired_image_inputs(float_side, quant_side, args.images)
    result = tool.quant_diff(float_side, quant_side, inputs, margin_db=args.margin)
    if args.model_explorer and result.problem is None:  # no ranking, no overlay
        with atomic_file(args.model_explorer) as f:
            f.write(json.dumps(tool.model_explorer_node_data(result, quant_side), indent=2).encode() + b"\n")
    print(json.dumps(result.to_json(), indent=2) if args.json else result.to_text())
    return 1 if result.problem is not None else 0
