"""`npdeeplab trace MODEL [IMAGE|--random] [--dump FILE.npz] [--stop-after N]`."""

from __future__ import annotations

import argparse

from npdeeplab.commands import add_numerics_option


def add_parser(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "trace",
        help="run a model and print every op's output statistics and time",
        description=(
            "One row per op: output shape, min/max/mean/std, share of zeros (dead ReLUs), NaN/Inf count and "
            "time. --dump saves every intermediate tensor in an .npz whose keys read op012_CONV_2D__t57 "
            "(op index, op kind, output tensor index), plus input__t<index>."
        ),
    )
    parser.add_argument("model", help="registry name or .tflite path")
    parser.add_argument("image", nargs="?", help="image to feed (preprocessed as for segmentation)")
    parser.add_argument("--random", action="store_true", help="feed random data instead of an image")
    parser.add_argument("--seed", type=int, default=0, help="seed for --random")
    parser.add_argument("--dump", help="save every intermediate tensor to this .npz")
    parser.add_argument("--stop-after", type=int, default=None, metavar="N", help="stop after op N")
    parser.add_argument("--backend", choices=("auto", "numpy", "numba"), default=None)
    add_numerics_option(parser)
    parser.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    from npdeeplab.errors import InputError
    from npdeeplab.runtime.interpreter import Interpreter
    from npdeeplab.runtime.trace import trace
    from npdeeplab.segmentation import model_input
    from npdeeplab.zoo import resolve_model

    if (args.image is None) == (not args.random):
        raise InputError("give an IMAGE or --random (one of them)")
    interpreter = Interpreter(model_path=resolve_model(args.model), backend=args.backend, numerics=args.numerics)
    if args.stop_after is not None and not 0 <= args.stop_after < len(interpreter.ops):
        raise InputError(f"--stop-after {args.stop_after} is out of range: the model has {len(interpreter.ops)} ops")
    x = model_input(interpreter, None if args.random else args.image, seed=args.seed)
    result = trace(interpreter, x, stop_after=args.stop_after, keep_arrays=args.dump is not None)
    print(result.to_text())
    if args.dump:
        result.save_npz(args.dump)
        print(f"wrote {args.dump}: {len(result.arrays)} arrays")
    return 0
