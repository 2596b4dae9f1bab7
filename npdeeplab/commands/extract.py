"""`npdeeplab extract MODEL --op N|M:K -o OUT.tflite [--dump-inputs IMAGE | --random]`.

Writes one op, or the ops M to K (both included), with their weights as a standalone model. With
--dump-inputs or --random, the full model also runs (npdeeplab) on an image or a random input, and
OUT.npz, next to OUT.tflite, receives the exact arrays the extracted ops saw (keys: the small
model's input tensor names) and what npdeeplab computed for its outputs (keys: output names).
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np

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
            "OUT.npz with the arrays the ops saw and npdeeplab's outputs, to reproduce a mismatch in two files."
        ),
    )
    parser.add_argument("model", help="registry name or .tflite path")
    parser.add_argument("--op", required=True, metavar="N|M:K", help="op index, or inclusive range M:K")
    parser.add_argument("-o", "--output", required=True, type=Path, metavar="OUT.tflite", help="model to write")
    source = parser.add_mutually_exclusive_group()
    source.add_argument("--dump-inputs", metavar="IMAGE", type=Path, help="run the full model on this image")
    source.add_argument("--random", action="store_true", help="run the full model on a random input")
    parser.add_argument("--seed", type=int, default=0, help="seed for --random (default 0)")
    parser.add_argument("--backend", choices=("auto", "numpy", "numba"), default=None, help="npdeeplab backend")
    parser.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    model_path = resolve_model(args.model)
    model = load_model(model_path)
    first, last = parse_op_range(args.op, len(model.main.ops))
    part = extract_ops(model, first, last)
    data = write_model(part.model)
    arrays = None
    if args.dump_inputs is not None or args.random:
        feeds = random_inputs(model, args.seed) if args.random else [image_input(args.dump_inputs, model)]
        captured = capture(model, feeds, [*part.source_inputs, *part.source_outputs], backend=args.backend)
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
    kinds = ", ".join(dict.fromkeys(op.kind for op in graph.ops))
    span = f"op {part.first}" if part.first == part.last else f"ops {part.first}..{part.last}"
    lines = [f"wrote {path}: {span} ({kinds}), {len(graph.tensors)} tensors, {size} bytes"]
    for role, indices in (("input ", graph.inputs), ("output", graph.outputs)):
        for i in indices:
            t = graph.tensors[i]
            lines.append(f"  {role} {t.name!r} {list(t.shape)} {t.dtype.name}")
    return "\n".join(lines)
