"""What the numerics-personality tests share: LiteRT run with a chosen resolver, npdeeplab run
with a chosen personality, and the shared dm05 model's ops each alone, fed REF's own inputs.

    from numerics_harness import dm05_ops_alone, run_litert_with, run_with_numerics
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
from conftest import litert_module

import npdeeplab
from npdeeplab.model.loader import load_model
from npdeeplab.model.writer import write_model
from npdeeplab.tools.comparison import litert_tensors
from npdeeplab.tools.extract import extract_ops


def run_litert_with(resolver: str, data: bytes, inputs: list[np.ndarray]) -> tuple[list[np.ndarray], bool]:
    """LiteRT with OpResolverType.<resolver>: the outputs, and whether a delegate took an op."""
    lite = litert_module()
    interpreter = lite.Interpreter(model_content=data,
                                   experimental_op_resolver_type=getattr(lite.OpResolverType, resolver))
    interpreter.allocate_tensors()
    for detail, value in zip(interpreter.get_input_details(), inputs, strict=True):
        interpreter.set_tensor(detail["index"], value)
    interpreter.invoke()
    delegated = any(op["op_name"] == "DELEGATE" for op in interpreter._get_ops_details())
    return [interpreter.get_tensor(d["index"]) for d in interpreter.get_output_details()], delegated


def run_with_numerics(data: bytes, inputs: list[np.ndarray], backend: str,
                      numerics: str) -> tuple[list[np.ndarray], npdeeplab.Interpreter]:
    """npdeeplab's outputs under a numerics personality, and the interpreter that ran."""
    interpreter = npdeeplab.Interpreter(model_content=data, backend=backend, numerics=numerics)
    interpreter.allocate_tensors()
    for detail, value in zip(interpreter.get_input_details(), inputs, strict=True):
        interpreter.set_tensor(detail["index"], value)
    interpreter.invoke()
    return [interpreter.get_tensor(d["index"]) for d in interpreter.get_output_details()], interpreter


def dm05_ops_alone(path: Path, image_input: np.ndarray, resolver: str) -> list[tuple[Any, ...]]:
    """Per op: (op, one-op model bytes, REF's inputs to it, LiteRT <resolver>'s output, REF's output)."""
    litert_module()
    model = load_model(path)
    tensors = litert_tensors(path, [image_input], "litert-ref")
    cases = []
    for op in model.main.ops:
        part = extract_ops(model, op.index, op.index)
        data = write_model(part.model)
        inputs = [tensors[t] for t in part.source_inputs]
        (theirs,), _ = run_litert_with(resolver, data, inputs)
        cases.append((op, data, inputs, theirs, tensors[op.outputs[0]]))
    return cases
