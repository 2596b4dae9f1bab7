"""`npdeeplab extract MODEL --op N|M:K -o OUT.tflite [--dump-inputs IMAGE | --random]`.
`npdeeplab extract MODEL --ops N[..M] --golden DIR [IMAGE] [--random]`: golden vectors (tools/golden.py).

Writes one op, or the ops M to K (both included), with their weights as a standalone model. With
--dump-inputs or --random, the full model also runs (npdeeplab) on an image or a random input, and
OUT.npz, next to OUT.tflite, receives the exact arrays the extracted ops saw (keys: the small
model's input tensor names) and what npdeeplab computed for its outputs (keys: output names).
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np

from npdeeplab.commands import add_numerics_option
from npdeeplab.errors import InputError
from npdeeplab.model.ir import Model
from npdeeplab.model.loader import load_model
from npdeeplab.model.writer import write_atomically, write_model
from npdeeplab.runtime.inputs import random_inputs
from npdeeplab.runtime.interpreter import Interpreter
from npdeeplab.segmentation import model_input
from npdeeplab.tools.extract import (
    Extraction,
    capture,
    dumped_arrays,
    extract_ops,
    parse_op_range,
    save_npz,
)
from npdeeplab.zoo import resolve_model


def add_parser(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "extract",
        help="write one op (or a range of ops) as a standalone .tflite, optionally with its inputs",
        description=(
            "Write op N, or ops M to K (both included), with their weights as a standalone .tflite model whose "
            "inputs are the ops' non-constant inputs. --dump-inputs/--random also run the full model and save "
            "OUT.npz with the arrays the ops saw and npdeeplab's outputs, to reproduce a mismatch in two files. "
            "--golden DIR writes golden vectors for implementers of the ops instead (see npdeeplab/tools/golden.py)."
        ),
    )
    parser.add_argument("model", help="registry name or .tflite path")
    parser.add_argument("--op", "--ops", dest="op", required=True, metavar="N|M:K|M..K",
                        help="op index, or inclusive range M:K (or M..K)")
    parser.add_argument("-o", "--output", type=Path, metavar="OUT.tflite", help="model to write (optional: --golden)")
    source = parser.add_mutually_exclusive_group()
    source.add_argument("--dump-inputs", metavar="IMAGE", type=Path, help="run the full model on this image")
    source.add_argument("--random", action="store_true", help="run the full model on a random input")
    parser.add_argument("--seed", type=int, default=0, help="seed for --random (default 0)")
    parser.add_argument("--backend", choices=("auto", "numpy", "numba"), default=None, help="npdeeplab backend")
    add_numerics_option(parser, "the full run's quantized kernels (--dump-inputs, --random, --golden)")
    parser.add_argument("image", nargs="?", type=Path, help="IMAGE: the same as --dump-inputs IMAGE")
    parser.add_argument(
        "--golden", nargs="+", metavar=("DIR", "IMAGE"), type=Path,
        help="write golden vectors into DIR (from a full run on IMAGE, or --random): the ops' exact inputs, weights "
             "and outputs (.npy and a C header golden.h), their prepared parameters (manifest.json) and model.tflite",
    )
    parser.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    model_path = resolve_model(args.model)
    model = load_model(model_path)
    first, last = parse_op_range(args.op, len(model.main.ops))
    part = extract_ops(model, first, last)
    if args.golden is not None:  # --golden DIR [IMAGE]
        if len(args.golden) > 2:
            raise InputError("--golden takes a directory and at most one image: --golden DIR [IMAGE]")
        if len(args.golden) == 2 and args.image is not None:
            raise InputError("give one input: IMAGE, --dump-inputs IMAGE or --random")
        args.image = args.golden[1] if len(args.golden) == 2 else args.image
    if args.image is not None:  # IMAGE, as trace takes it
        if args.dump_inputs is not None or args.random:
            raise InputError("give one input: IMAGE, --dump-inputs IMAGE or --random")
        args.dump_inputs = args.image
    if args.golden is not None:
        args.golden = args.golden[0]
        return _golden(args, model, part)
    if args.output is None:
        raise InputError("give -o OUT.tflite (or --golden DIR)")
    data = write_model(part.model)
    arrays = None
    if args.dump_inputs is not None or args.random:
        feeds = random_inputs(model, args.seed) if args.random else [image_input(args.dump_inputs, model)]
        captured = capture(model, feeds, [*part.source_inputs, *part.source_outputs], backend=args.backend,
                           numerics=args.numerics)
        arrays = dumped_arrays(part, captured)
    write_atomically(args.output, data)  # only now: a failure above leaves no file behind
    print(_summary(part, args.output, len(data)))
    if arrays is not None:
        npz = save_npz(args.output.with_suffix(".npz"), arrays)
        where = f"a random input (seed {args.seed})" if args.random else str(args.dump_inputs)
        print(f"wrote {npz}: {len(part.source_inputs)} input and {len(part.source_outputs)} output arrays "
              f"from npdeeplab's run of the full model on {where}")
    return 0


def image_input(image: Path, model: Model) -> np.ndarray:
    """The model's input for an image, preprocessed as `segment` does (size, normalisation,
    quantization of integer inputs, from the registry entry or the input tensor)."""
    graph = model.main
    if len(graph.inputs) != 1 or len(graph.tensors[graph.inputs[0]].shape) != 4:
        raise InputError("--dump-inputs needs a model with one [1, H, W, C] image input; use --random")
    return model_input(Interpreter(model=model, backend="numpy"), image)


def _summary(part: Extraction, path: Path, size: int) -> str:
    graph = part.model.main
    kinds = ", ".join(dict.fromkeys(op.kind for op in graph.ops[len(part.widening) :]))
    span = f"op {part.first}" if part.first == part.last else f"ops {part.first}..{part.last}"
    count = len(part.widening)
    widening = f" and {count} DEQUANTIZE op{'s' * (count > 1)} widening float16 weights" if count else ""
    lines = [f"wrote {path}: {span} ({kinds}){widening}, {len(graph.tensors)} tensors, {size} bytes"]
    for role, indices in (("input ", graph.inputs), ("output", graph.outputs)):
        for i in indices:
            t = graph.tensors[i]
            lines.append(f"  {role} {t.name!r} {list(t.shape)} {t.dtype.name}")
    return "\n".join(lines)


def _golden(args: argparse.Namespace, model: Model, part: Extraction) -> int:
    """--golden DIR: the ops' golden vectors from a full run (npdeeplab.tools.golden)."""
    from npdeeplab.tools import golden

    if args.dump_inputs is None and not args.random:
        raise InputError("--golden needs the input of a full run: give IMAGE or --random")
    golden.check_destination(args.golden)  # refused before the run, not after it
    feeds = random_inputs(model, args.seed) if args.random else [image_input(args.dump_inputs, model)]
    where = f"random, seed {args.seed}" if args.random else f"image {args.dump_inputs.name}"
    vectors = golden.golden_vectors(model, part, feeds, backend=args.backend or "numpy", input_note=where,
                                    numerics=args.numerics)
    golden.write_golden(args.golden, vectors)
    if args.output is not None:
        write_atomically(args.output, vectors.model_bytes)
    print(golden.summary(vectors, args.golden))
    return 0
