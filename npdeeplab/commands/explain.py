"""`npdeeplab explain MODEL --op N --at B,Y,X,C [IMAGE|--random|--input ARRAY.npy] [--json]`."""

from __future__ import annotations

import argparse

from npdeeplab.commands import add_numerics_option


def add_parser(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "explain",
        help="show the arithmetic behind one output element of one op, step by step",
        description=(
            "Run the model, then recompute one element of op N's output in the order LiteRT's reference "
            "kernel computes it: the window and the weights it meets (padding taps marked), the products "
            "and the running sum (float32), or for quantized ops the zero points, the int32 accumulator, "
            "the bias, the multiplier's (M, shift), the left shift, SaturatingRoundingDoublingHighMul, the "
            "rounding shift with its remainder and threshold, the output zero point and the clamp. Covers "
            "CONV_2D, DEPTHWISE_CONV_2D, ADD, SUB, MUL, AVERAGE_POOL_2D, MAX_POOL_2D, MEAN, RESIZE_BILINEAR, "
            "CONCATENATION, QUANTIZE, FULLY_CONNECTED, TRANSPOSE_CONV, LOGISTIC, TANH, HARD_SWISH, RELU, RELU6, "
            "RELU_N1_TO_1, LEAKY_RELU and PRELU (float), DEQUANTIZE, RESIZE_NEAREST_NEIGHBOR and SOFTMAX."
        ),
    )
    parser.add_argument("model", help="registry name or .tflite path")
    parser.add_argument("image", nargs="?", help="image to feed (preprocessed as for segmentation)")
    parser.add_argument("--op", type=int, required=True, metavar="N", help="the op's index (as trace numbers it)")
    parser.add_argument("--at", required=True, metavar="B,Y,X,C", help="the output element, one index per axis")
    parser.add_argument("--random", action="store_true", help="feed random data instead of an image")
    parser.add_argument("--seed", type=int, default=0, help="seed for --random")
    parser.add_argument("--input", metavar="ARRAY.npy", help="feed this array (the model's input shape and dtype)")
    parser.add_argument("--json", action="store_true", help="print every number as JSON (the element under value)")
    parser.add_argument("--backend", choices=("auto", "numpy", "numba"), default=None)
    add_numerics_option(parser, "the run's quantized kernels (explain covers reference numerics only)")
    parser.set_defaults(run=run)
    parser.__class__ = IntermixedParser  # IMAGE may come after the options, as the usage line shows


class IntermixedParser(argparse.ArgumentParser):
    """A subcommand parser that takes positionals among the options (`MODEL --op 3 --at ... IMAGE`):
    argparse's parse_known_intermixed_args, which calls parse_known_args itself (then plainly)."""

    _mixing = False

    def parse_known_args(self, args=None, namespace=None):  # noqa: ANN001, ANN201  (argparse's signature)
        if self._mixing:
            return super().parse_known_args(args, namespace)
        self._mixing = True
        try:
            return self.parse_known_intermixed_args(args, namespace)
        finally:
            self._mixing = False


def run(args: argparse.Namespace) -> int:
    import json

    from npdeeplab.errors import InputError
    from npdeeplab.runtime.interpreter import Interpreter
    from npdeeplab.segmentation import model_input
    from npdeeplab.zoo import resolve_model

    if sum((args.image is not None, args.random, args.input is not None)) != 1:
        raise InputError("give an IMAGE, --random or --input ARRAY.npy (one of them)")
    index = parse_index(args.at)
    interpreter = Interpreter(model_path=resolve_model(args.model), backend=args.backend, numerics=args.numerics)
    if args.input is not None:
        x = load_array(args.input, interpreter)
    else:
        x = model_input(interpreter, None if args.random else args.image, seed=args.seed)
    explanation = interpreter.explain(args.op, index, inputs=x)
    print(json.dumps(explanation.to_dict(), indent=1) if args.json else explanation.to_text())
    return 0


def parse_index(text: str) -> tuple[int, ...]:
    from npdeeplab.errors import InputError

    try:
        return tuple(int(part) for part in text.split(","))
    except ValueError:
        raise InputError(f"--at {text!r}: give comma-separated integers, one per axis, e.g. 0,12,7,3") from None


def load_array(path: str, interpreter: object) -> object:
    import numpy as np

    from npdeeplab.errors import InputError

    try:
        array = np.load(path, allow_pickle=False)
    except (OSError, ValueError) as error:
        raise InputError(f"cannot read {path} as a .npy array: {error}") from None
    detail = interpreter.get_input_details()[0]
    expected = tuple(int(d) for d in detail["shape"])
    if array.shape != expected or array.dtype != detail["dtype"]:
        raise InputError(f"{path} holds {array.dtype.name}{list(array.shape)}; the model takes "
                         f"{np.dtype(detail['dtype']).name}{list(expected)}")
    return array
