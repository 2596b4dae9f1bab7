"""Structure-aware mutations: the seed is loaded into the IR, one to three things are changed with
dataclasses.replace (STRUCTURE_MUTATORS), and the case writes it back with write_model.

Each mutator returns (mutated model, description), or None when the model has nothing it can
change (no ops, no constants...), in which case another mutator is drawn.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from typing import Any

import numpy as np

from npdeeplab.model import options as model_options
from npdeeplab.model.ir import Model, Quantization, SignatureDef
from npdeeplab.model.loader import TENSOR_DTYPES
from npdeeplab.ops import SUPPORTED_OPS

from .helpers import chance, pick, random_array, weighted
from .ir_edits import (
    any_tensor_index,
    dynamic_signatures,
    graph_inputs,
    input_dims,
    pick_op,
    pick_tensor,
    replace_graph,
    replace_op,
    replace_tensor,
    tensor_label,
)

DIM_VALUES = (0, 0, 0, 1, 1, 2, 3, 5, 16, 255, 257, 4097, 60000, 65536, 2**31 - 1)
INT_VALUES = (0, 0, 1, -1, 2, -2, 3, 7, 60000, 2**31 - 1, -(2**31), 2**16)
OPTION_INTS = (0, 0, -1, -2, 1, 2, 3, 4, 7, 32767, 32768, 60000, 2**31 - 1, -(2**31))
FLOAT_SPECIALS = (np.nan, np.inf, -np.inf, 3.4e38, -3.4e38, 1e-45, 0.0, -0.0)
FLOAT_OPTIONS = (0.0, -1.0, np.nan, np.inf, -np.inf, 1e30, 1e-30)
# Quantization vectors are made in the parent, which has no memory limit: an earlier mutation may have
# set the last dimension to 2**31 - 1 (a 24 GiB scale and zero point; the kernel's OOM killer ended a
# 50,000-case campaign at case 24290 of seed 0).
MAX_QUANTIZED_CHANNELS = 4096
OTHER_KINDS = ("QUANTIZE", "DEQUANTIZE", "ELU", "GATHER", "CUSTOM:FuzzOp", "UNKNOWN_BUILTIN_250",
               "UNKNOWN_BUILTIN_9999")
DTYPES = tuple(TENSOR_DTYPES.values())
FOREIGN_OPTIONS = (None, model_options.AddOptions(), model_options.Conv2DOptions(), model_options.Pool2DOptions())
Mutation = tuple[Model, str] | None


def mutate_input_shape(rng: np.random.Generator, model: Model) -> Mutation:
    """A graph input's dimension changed; every activation made dynamic so that the new shape flows."""
    inputs = graph_inputs(model)
    if not inputs:
        return None
    tensor = pick(rng, inputs)
    if not tensor.shape:
        return None
    shape = list(tensor.shape)
    for axis in rng.choice(len(shape), min(len(shape), pick(rng, [1, 1, 1, 2])), replace=False):
        shape[axis] = pick(rng, DIM_VALUES)
    mutated = replace_tensor(model, tensor.index, shape=tuple(shape), shape_signature=tuple(shape))
    return dynamic_signatures(mutated), f"{tensor_label(tensor)}: shape -> {shape}, activations dynamic"


def mutate_tensor_shape(rng: np.random.Generator, model: Model) -> Mutation:
    tensor = pick_tensor(rng, model, constant=False if chance(rng, 0.8) else None)
    if tensor is None:
        return None
    shape = list(tensor.shape)
    what = pick(rng, ["dim", "dim", "dim", "append", "drop", "scalar"])
    if what == "dim" and shape:
        axis = int(rng.integers(len(shape)))
        shape[axis] = pick(rng, DIM_VALUES)
    elif what == "append":
        shape.insert(int(rng.integers(len(shape) + 1)), pick(rng, [1, 1, 2, 0]))
    elif what == "drop" and shape:
        del shape[int(rng.integers(len(shape)))]
    else:
        shape = []
    signature = tuple(shape) if chance(rng, 0.7) else tensor.shape_signature
    mutated = replace_tensor(model, tensor.index, shape=tuple(shape), shape_signature=signature)
    return mutated, f"{tensor_label(tensor)}: shape -> {shape} (signature {list(signature)})"


def mutate_constant_shape(rng: np.random.Generator, model: Model) -> Mutation:
    """A constant given a new small shape and matching random data (weights with 1 channel, 3 taps...)."""
    tensor = pick_tensor(rng, model, constant=True)
    if tensor is None:
        return None
    shape = list(tensor.shape) or [1]
    shape[int(rng.integers(len(shape)))] = pick(rng, [1, 1, 2, 3, 5])
    if chance(rng, 0.2):
        shape.append(1)
    data = random_array(rng, tuple(shape), tensor.dtype)
    if tensor.dtype.kind in "iu":
        data = rng.integers(-3, 6, tuple(shape)).astype(tensor.dtype)
    data.flags.writeable = False
    mutated = replace_tensor(model, tensor.index, shape=tuple(shape), shape_signature=tuple(shape), data=data)
    return dynamic_signatures(mutated), f"{tensor_label(tensor)}: constant reshaped to {shape}, activations dynamic"


def mutate_dtype(rng: np.random.Generator, model: Model) -> Mutation:
    tensor = pick_tensor(rng, model)
    if tensor is None:
        return None
    dtype = pick(rng, DTYPES)
    data = tensor.data
    if data is not None and data.nbytes % dtype.itemsize == 0 and data.size:
        data = np.frombuffer(data.tobytes(), dtype)  # the same bytes, reinterpreted
    return replace_tensor(model, tensor.index, dtype=dtype, data=data), f"{tensor_label(tensor)}: dtype -> {dtype.name}"


def mutate_quantization(rng: np.random.Generator, model: Model) -> Mutation:
    tensor = pick_tensor(rng, model)
    if tensor is None:
        return None
    channels = min(tensor.shape[-1], MAX_QUANTIZED_CHANNELS) if tensor.shape else 1
    length = pick(rng, [1, 1, channels, channels + 1, max(0, channels - 1), 2])
    scale = np.full(length, pick(rng, [0.0, np.nan, -1.0, np.inf, 1e-45, 0.5, 1e38]), np.float32)
    zero_point = np.full(length, pick(rng, [0, 0, 300, -129, 2**40, -(2**40), 127]), np.int64)
    if chance(rng, 0.3):
        zero_point = zero_point[: max(0, length - 1)]
    dimension = pick(rng, [0, 0, len(tensor.shape) - 1, len(tensor.shape), -1, 100, 2**31 - 1])
    if chance(rng, 0.1):
        return replace_tensor(model, tensor.index, quantization=None), f"{tensor_label(tensor)}: quantization removed"
    quantization = Quantization(scale, zero_point, dimension)
    description = f"{tensor_label(tensor)}: quantization scale {scale[:2]} x{length}, zero point {zero_point[:2]}"
    return replace_tensor(model, tensor.index, quantization=quantization), f"{description}, dimension {dimension}"


def mutate_constant_values(rng: np.random.Generator, model: Model) -> Mutation:
    """Non-finite weights, or interesting integers in an index constant (axes, sizes, paddings...)."""
    tensor = pick_tensor(rng, model, constant=True)
    if tensor is None or tensor.data is None or not tensor.data.size:
        return None
    data = np.array(tensor.data, copy=True).reshape(-1)
    count = data.size if chance(rng, 0.1) else int(rng.integers(1, min(4, data.size) + 1))
    where = rng.choice(data.size, count, replace=False)
    if data.dtype.kind == "f":
        value = pick(rng, FLOAT_SPECIALS)
    elif data.dtype.kind in "iu":
        info = np.iinfo(data.dtype)
        value = int(np.clip(pick(rng, list(INT_VALUES) + input_dims(model)), info.min, info.max))
    else:
        value = 1
    with np.errstate(over="ignore", invalid="ignore"):
        data[where] = value  # 3.4e38 in a float16 constant is inf
    data = data.reshape(tensor.data.shape)
    data.flags.writeable = False
    mutated = replace_tensor(model, tensor.index, data=data)
    if chance(rng, 0.6):
        mutated = dynamic_signatures(mutated)
    return mutated, f"{tensor_label(tensor)}: {count} values -> {value}"


def mutate_op_inputs(rng: np.random.Generator, model: Model) -> Mutation:
    found = pick_op(rng, model)
    if found is None:
        return None
    position, op = found
    inputs = list(op.inputs)
    what = pick(rng, ["swap", "set", "set", "set", "drop", "append", "all-first"])
    if what == "swap" and len(inputs) > 1:
        i, j = rng.choice(len(inputs), 2, replace=False)
        inputs[i], inputs[j] = inputs[j], inputs[i]
    elif what == "set" and inputs:
        inputs[int(rng.integers(len(inputs)))] = any_tensor_index(rng, model)
    elif what == "drop" and inputs:
        inputs.pop()
    elif what == "all-first" and inputs:
        inputs = [inputs[0]] * len(inputs)
    else:
        inputs.append(any_tensor_index(rng, model))
    return replace_op(model, position, inputs=tuple(inputs)), f"{op.describe()}: inputs {list(op.inputs)} -> {inputs}"


def mutate_op_outputs(rng: np.random.Generator, model: Model) -> Mutation:
    found = pick_op(rng, model)
    if found is None:
        return None
    position, op = found
    outputs = list(op.outputs)
    what = pick(rng, ["set", "set", "own-input", "append", "empty"])
    if what == "set" and outputs:
        outputs[int(rng.integers(len(outputs)))] = any_tensor_index(rng, model)
    elif what == "own-input" and outputs and [i for i in op.inputs if i != -1]:
        outputs[0] = pick(rng, [i for i in op.inputs if i != -1])
    elif what == "empty":
        outputs = []
    else:
        outputs.append(pick(rng, outputs) if outputs and chance(rng, 0.5) else any_tensor_index(rng, model))
    description = f"{op.describe()}: outputs {list(op.outputs)} -> {outputs}"
    return replace_op(model, position, outputs=tuple(outputs)), description


def mutated_option_value(rng: np.random.Generator, name: str, value: Any, kind: str) -> Any:
    if name in model_options.ENUM_FIELDS:
        names = list(model_options.ENUM_FIELDS[name].values())
        return pick(rng, names) if chance(rng, 0.5) else f"UNKNOWN({pick(rng, [6, 7, 17, 100, 127, -1, -128])})"
    if isinstance(value, bool):
        return not value
    if isinstance(value, float):
        return float(pick(rng, FLOAT_OPTIONS))
    if isinstance(value, tuple):
        values = list(value)
        if values and chance(rng, 0.6):
            values[int(rng.integers(len(values)))] = pick(rng, OPTION_INTS)
        elif chance(rng, 0.5):
            values.append(pick(rng, [1, -1, 0, 2]))
        else:
            values = []
        return tuple(values)
    if name.endswith("_mask"):
        return pick(rng, [int(rng.integers(0, 16)), int(rng.integers(0, 256)), -1, 2**31 - 1, 1 << 30])
    return pick(rng, OPTION_INTS)


def mutate_op_options(rng: np.random.Generator, model: Model) -> Mutation:
    ops = [(p, op) for p, op in enumerate(model.main.ops) if dataclasses.is_dataclass(op.options)]
    if not ops or chance(rng, 0.1):
        found = pick_op(rng, model)
        if found is None:
            return None
        position, op = found
        options = pick(rng, FOREIGN_OPTIONS)
        return replace_op(model, position, options=options), f"{op.describe()}: options -> {options}"
    position, op = pick(rng, ops)
    changes = {}
    for _ in range(int(rng.integers(1, 3))):
        f = pick(rng, dataclasses.fields(op.options))
        changes[f.name] = mutated_option_value(rng, f.name, getattr(op.options, f.name), op.kind)
    mutated = replace_op(model, position, options=dataclasses.replace(op.options, **changes))
    if chance(rng, 0.7):
        mutated = dynamic_signatures(mutated)
    return mutated, f"{op.describe()}: options {changes}"


def mutate_op_kind(rng: np.random.Generator, model: Model) -> Mutation:
    found = pick_op(rng, model)
    if found is None:
        return None
    position, op = found
    kind = pick(rng, SUPPORTED_OPS) if chance(rng, 0.8) else pick(rng, OTHER_KINDS)
    options = op.options
    if chance(rng, 0.5):
        cls = model_options.OPTIONS_FOR_KIND.get(kind)
        options = cls() if cls is not None else None
    mutated = dynamic_signatures(replace_op(model, position, kind=kind, options=options))
    return mutated, f"{op.describe()}: kind -> {kind}, options {type(options).__name__}"


def mutate_op_order(rng: np.random.Generator, model: Model) -> Mutation:
    ops = list(model.main.ops)
    if not ops:
        return None
    what = pick(rng, ["swap", "duplicate", "delete"])
    if what == "swap" and len(ops) > 1:
        i, j = (int(v) for v in rng.choice(len(ops), 2, replace=False))
        ops[i], ops[j] = ops[j], ops[i]
        description = f"ops {i} and {j} swapped"
    elif what == "duplicate":
        i = int(rng.integers(len(ops)))
        ops.insert(i + 1, ops[i])
        description = f"op {i} duplicated"
    else:
        i = int(rng.integers(len(ops)))
        del ops[i]
        description = f"op {i} deleted"
    ops = [dataclasses.replace(op, index=k) for k, op in enumerate(ops)]
    return replace_graph(model, ops=tuple(ops)), description


def mutate_graph_io(rng: np.random.Generator, model: Model) -> Mutation:
    graph = model.main
    role = pick(rng, ["inputs", "outputs"])
    indices = list(getattr(graph, role))
    what = pick(rng, ["add", "add", "set", "remove", "empty", "duplicate"])
    if what == "set" and indices:
        indices[int(rng.integers(len(indices)))] = any_tensor_index(rng, model)
    elif what == "remove" and indices:
        del indices[int(rng.integers(len(indices)))]
    elif what == "empty":
        indices = []
    elif what == "duplicate" and indices:
        indices.append(indices[0])
    else:
        indices.append(any_tensor_index(rng, model))
    return replace_graph(model, **{role: tuple(indices)}), f"graph {role} {list(getattr(graph, role))} -> {indices}"


def mutate_signatures(rng: np.random.Generator, model: Model) -> Mutation:
    graph = model.main

    def names(indices: tuple[int, ...], prefix: str) -> dict[str, int]:
        mapping = {f"{prefix}{k}": int(i) for k, i in enumerate(indices)}
        if mapping and chance(rng, 0.7):
            mapping[pick(rng, list(mapping))] = any_tensor_index(rng, model)
        if chance(rng, 0.2):
            mapping[f"{prefix}extra"] = any_tensor_index(rng, model)
        return mapping

    subgraph = pick(rng, [0, 0, 0, 1, -1, 2**31 - 1])
    signature = SignatureDef(pick(rng, ["serving_default", "", "run"]), subgraph, names(graph.inputs, "in"),
                             names(graph.outputs, "out"))
    signatures = model.signatures + (signature,) * pick(rng, [1, 1, 2])
    description = f"signature {signature.key!r} of subgraph {subgraph}: {signature.inputs} -> {signature.outputs}"
    return dataclasses.replace(model, signatures=signatures), description


def mutate_subgraphs(rng: np.random.Generator, model: Model) -> Mutation:
    what = pick(rng, ["none", "second", "no-ops"])
    if what == "none":
        return dataclasses.replace(model, subgraphs=()), "no subgraphs"
    if what == "second":
        second = dataclasses.replace(model.main, index=len(model.subgraphs), name="second")
        return dataclasses.replace(model, subgraphs=(*model.subgraphs, second)), "a second subgraph"
    return replace_graph(model, ops=()), "subgraph 0 has no ops"


def mutate_misc(rng: np.random.Generator, model: Model) -> Mutation:
    """An op version, a variable tensor, a shape signature that disagrees with the shape."""
    what = pick(rng, ["version", "variable", "signature"])
    if what == "version":
        found = pick_op(rng, model)
        if found is None:
            return None
        version = pick(rng, [0, -1, 2**31 - 1, 99])
        return replace_op(model, found[0], version=version), f"{found[1].describe()}: version -> {version}"
    tensor = pick_tensor(rng, model)
    if tensor is None:
        return None
    if what == "variable":
        return replace_tensor(model, tensor.index, is_variable=True), f"{tensor_label(tensor)}: is_variable"
    signature = tuple(pick(rng, [-1, -1, 0, d, d + 1]) for d in tensor.shape) + ((-1,) if chance(rng, 0.2) else ())
    description = f"{tensor_label(tensor)}: signature {list(signature)}"
    return replace_tensor(model, tensor.index, shape_signature=signature), description


STRUCTURE_MUTATORS: dict[Callable[[np.random.Generator, Model], Mutation], float] = {
    mutate_input_shape: 6,
    mutate_tensor_shape: 2,
    mutate_constant_shape: 3,
    mutate_dtype: 1.5,
    mutate_quantization: 1,
    mutate_constant_values: 4,
    mutate_op_inputs: 2,
    mutate_op_outputs: 1,
    mutate_op_options: 5,
    mutate_op_kind: 2,
    mutate_op_order: 1,
    mutate_graph_io: 1,
    mutate_signatures: 1.5,
    mutate_subgraphs: 0.3,
    mutate_misc: 1,
}


def mutate_structure(rng: np.random.Generator, model: Model) -> tuple[Model, list[str]]:
    steps = []
    for _ in range(int(min(3, rng.geometric(0.6)))):
        if not model.subgraphs:
            break
        for _attempt in range(10):
            mutator = weighted(rng, STRUCTURE_MUTATORS)
            result = mutator(rng, model)
            if result is not None:
                model, description = result
                steps.append(f"structure: {mutator.__name__[len('mutate_'):]}: {description}")
                break
    return model, steps
