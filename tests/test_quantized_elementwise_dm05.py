"""The shared uint8 DeepLab model's ADD, AVERAGE_POOL_2D and CONCATENATION ops, each cut out on
its own (npdeeplab.tools.extract) and fed random uint8 inputs over the whole range: npdeeplab on
every backend must equal LiteRT's reference kernels bit for bit."""

from __future__ import annotations

import numpy as np
import pytest
from conftest import shared_file
from quantized_harness import check, quantized_input

from npdeeplab.model.loader import load_model
from npdeeplab.tools.extract import extract_ops

MODEL = "deeplabv3_mnv2_dm05_pascal_quant.tflite"
KINDS = {"ADD": 10, "AVERAGE_POOL_2D": 1, "CONCATENATION": 1}  # how many the model has


@pytest.fixture(scope="module")
def dm05():  # noqa: ANN201
    return load_model(shared_file("models", MODEL))


@pytest.mark.parametrize("kind", sorted(KINDS))
def test_dm05_ops_in_isolation(dm05, kind: str) -> None:  # noqa: ANN001
    ops = [op for op in dm05.main.ops if op.kind == kind]
    assert len(ops) == KINDS[kind]
    for op in ops:
        part = extract_ops(dm05, op.index, op.index)
        rng = np.random.default_rng(op.index)
        tensors = part.model.main.tensors
        inputs = [quantized_input(rng, tensors[i].shape, tensors[i].dtype) for i in part.model.main.inputs]
        assert check(part.model, inputs) is not None, f"op {op.index} ({kind}) was refused"
