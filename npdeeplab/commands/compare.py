"""`npdeeplab compare MODEL [MODEL_B] [IMAGE|--random] [--reference litert|litert-ref] [--isolate]`;
`npdeeplab compare MODEL (IMAGE|--random) --explain-diff` (npdeeplab.tools.explain_diff)."""

from __future__ import annotations

import argparse
from pathlib import Path

from npdeeplab.commands import add_numerics_option


def add_parser(subparsers: argparse._SubParsersAction) -> None:
    from npdeeplab.tools.comparison import DEFAULT_ATOL, DEFAULT_RTOL

    parser = subparsers.add_parser(
        "compare",
        usage="npdeeplab compare MODEL [MODEL_B] (IMAGE | --random) [options]",
        help="compare npdeeplab with LiteRT (or two models) op by op and find the first divergence",
        description=(
            "With one model: npdeeplab against LiteRT on the same input, op by op. With two models: both run "
            "in npdeeplab, compared by op index when their structure matches, else by tensor name. Exit code 1 "
            "when an op exceeds the tolerance |a-b| <= atol + rtol*|b| or when fewer than half the ops could be "
            "matched, 0 otherwise, 2 on bad input. The ulp column is max|a-b| in units of the float32 spacing at "
            "the reference tensor's largest magnitude (independent of the tolerances); lsb, for integer tensors, "
            "the largest difference."
        ),
    )
    parser.add_argument("models", nargs="+", metavar="MODEL", help="one or two models (.tflite or registry name), "
                        "then an image unless --random")
    parser.add_argument("--random", action="store_true", help="feed random data instead of an image")
    parser.add_argument("--seed", type=int, default=0, help="seed for --random")
    parser.add_argument("--reference", choices=("litert", "litert-ref"), default="litert",
                        help="LiteRT's optimised kernels without delegates (litert) or its reference kernels")
    parser.add_argument("--isolate", action="store_true", help="feed every op the reference's own inputs")
    parser.add_argument("--reference-model", metavar="PATH",
                        help="the file LiteRT runs (default: MODEL itself), e.g. the original of a modified model")
    parser.add_argument("--atol", type=float, default=DEFAULT_ATOL, help=f"absolute tolerance ({DEFAULT_ATOL:g})")
    parser.add_argument("--rtol", type=float, default=DEFAULT_RTOL, help=f"relative tolerance ({DEFAULT_RTOL:g})")
    parser.add_argument("--backend", choices=("auto", "numpy", "numba"), default=None)
    add_numerics_option(parser)
    parser.add_argument("--explain-diff", action="store_true",
                        help="per op (each alone, fed LiteRT REF's inputs): which numerics personalities reproduce "
                             "LiteRT's default interpreter (XNNPACK on), and by how much the others differ; exit 1 "
                             "when some op is reproduced by none")
    parser.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    from npdeeplab.errors import InputError
    from npdeeplab.runtime.interpreter import Interpreter
    from npdeeplab.segmentation import model_input
    from npdeeplab.tools.comparison import compare_models, compare_with_litert
    from npdeeplab.zoo import registry, resolve_model

    models = [m for m in args.models if Path(m).suffix == ".tflite" or m in registry()]
    images = [m for m in args.models if m not in models]
    if not 1 <= len(models) <= 2 or len(images) > 1:
        raise InputError("give one or two models (.tflite files or registry names) and at most one image")
    if (not images) == (not args.random):
        raise InputError("give an IMAGE or --random (one of them)")
    if len(models) == 2 and (args.isolate or args.reference != "litert" or args.reference_model):
        raise InputError("--isolate and --reference compare against LiteRT: give one model")
    if args.explain_diff:
        return _explain_diff(args, models, images)
    first = Interpreter(model_path=resolve_model(models[0]), backend=args.backend, numerics=args.numerics)
    x = model_input(first, images[0] if images else None, seed=args.seed)
    if len(models) == 2:
        result = compare_models(models[0], models[1], x, atol=args.atol, rtol=args.rtol, backend=args.backend,
                                numerics=args.numerics)
    else:
        reference_model = resolve_model(args.reference_model) if args.reference_model else None
        result = compare_with_litert(
            first, x, reference=args.reference, reference_model=reference_model, isolate=args.isolate,
            atol=args.atol, rtol=args.rtol,
        )
    print(result.to_text())
    return 1 if result.exceeded else 0


def _explain_diff(args: argparse.Namespace, models: list[str], images: list[str]) -> int:
    """--explain-diff: every op alone, LiteRT AUTO against each numerics personality; exit 1 when
    some op is explained by none."""
    from npdeeplab.errors import InputError
    from npdeeplab.runtime.interpreter import Interpreter
    from npdeeplab.segmentation import model_input
    from npdeeplab.tools.explain_diff import explain_diff
    from npdeeplab.zoo import resolve_model

    if len(models) != 1 or args.isolate or args.reference != "litert" or args.reference_model:
        raise InputError("--explain-diff takes one model and runs its own references: no --isolate, --reference "
                         "or --reference-model")
    model = Interpreter(model_path=resolve_model(models[0]), backend="numpy")
    x = model_input(model, images[0] if images else None, seed=args.seed)
    result = explain_diff(model.model, x, backend=args.backend, atol=args.atol, rtol=args.rtol)
    print(result.to_text())
    return 1 if result.unexplained else 0
