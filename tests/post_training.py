"""Post-training int8 quantization of a float graph, the way TFLite's converter lays it out, for tests.

Weights of convolutions, fully connected layers and transposed convolutions are int8 per output
channel (symmetric, zero point 0), biases int32 with scale s_input * s_weight[c]; activations are
int8 per tensor, asymmetric, from the ranges a float run on calibration inputs saw. Tensors LiteRT
requires to share quantization (a resize's or a pool's input and output, every input of a
concatenation and its output, a reshape's two sides) get one set of parameters, from the union of
their ranges; where LiteRT fixes an output's parameters (an int8 LOGISTIC's: scale 1/256, zero
point -128), its group takes those. With io="float" the graph takes and gives float32 through
QUANTIZE and DEQUANTIZE ops, as the converter's default output does; with io="int8" its input and
output are int8.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from npdeeplab import Interpreter
from npdeeplab.model.builder import GraphBuilder
from npdeeplab.model.ir import Model, Quantization

SHARED_QUANTIZATION = {"RESIZE_BILINEAR", "RESIZE_NEAREST_NEIGHBOR", "AVERAGE_POOL_2D", "MAX_POOL_2D", "CONCATENATION",
                       "RESHAPE", "SQUEEZE", "PAD"}
# kind -> (input, weights, bias, the weights' output-channel axis): the positions of the operands
WEIGHTED = {"CONV_2D": (0, 1, 2, 0), "DEPTHWISE_CONV_2D": (0, 1, 2, 3), "FULLY_CONNECTED": (0, 1, 2, 0),
            "TRANSPOSE_CONV": (2, 1, 3, 0)}
FIXED_OUTPUT = {"LOGISTIC": (1 / 256, -128)}  # int8 (scale, zero point) LiteRT requires of the output


def activation_ranges(model: Model, calibration: Sequence[np.ndarray]) -> dict[int, tuple[float, float]]:
    """(min, max) of every activation tensor over the calibration inputs, zero always included."""
    interpreter = Interpreter(model=model, backend="numpy")
    interpreter.allocate_tensors()
    seen: dict[int, tuple[float, float]] = {}

    def widen(index: int, value: np.ndarray) -> None:
        low, high = seen.get(index, (0.0, 0.0))
        seen[index] = (min(low, float(value.min())), max(high, float(value.max())))

    interpreter.add_hook(lambda call: [widen(i, v) for i, v in zip(call.op.outputs, call.outputs, strict=True)])
    for x in calibration:
        index = interpreter.get_input_details()[0]["index"]
        interpreter.set_tensor(index, x)
        widen(index, x)
        interpreter.invoke()
    return seen


def sharing_groups(model: Model) -> dict[int, int]:
    """Tensor index -> a representative of the tensors that must share quantization (union-find)."""
    parent: dict[int, int] = {}

    def find(t: int) -> int:
        while parent.get(t, t) != t:
            t = parent[t]
        return t

    for op in model.main.ops:
        if op.kind in SHARED_QUANTIZATION:
            members = [op.inputs[0]] if op.kind != "CONCATENATION" else list(op.inputs)
            for t in [*members, op.outputs[0]]:
                parent[find(t)] = find(op.outputs[0])
    return {t: find(t) for t in range(len(model.main.tensors))}


def int8_parameters(low: float, high: float) -> tuple[float, int]:
    """Asymmetric int8 (scale, zero point) covering [low, high] (which holds 0)."""
    scale = max(high - low, 1e-8) / 255.0
    zero_point = int(np.clip(np.round(-128 - low / scale), -128, 127))
    return float(np.float32(scale)), zero_point


def quantize_graph(model: Model, calibration: Sequence[np.ndarray], io: str = "float") -> GraphBuilder:
    """The int8 twin of a float graph (one image input, one output) as a GraphBuilder."""
    graph = model.main
    ranges = activation_ranges(model, calibration)
    groups = sharing_groups(model)
    group_range: dict[int, tuple[float, float]] = {}
    for index, (low, high) in ranges.items():
        g = groups[index]
        old = group_range.get(g, (0.0, 0.0))
        group_range[g] = (min(old[0], low), max(old[1], high))
    params = {index: int8_parameters(*group_range[groups[index]]) for index in ranges}
    fixed = {groups[op.outputs[0]]: FIXED_OUTPUT[op.kind] for op in graph.ops if op.kind in FIXED_OUTPUT}
    params.update({index: fixed[groups[index]] for index in params if groups[index] in fixed})

    b = GraphBuilder(description=f"post-training int8 ({io} io) of {model.description}")
    new: dict[int, int] = {}
    source = graph.inputs[0]
    if io == "float":
        x = b.add_input("input_float", graph.tensors[source].shape)
        new[source] = b.add_op("QUANTIZE", [x], output_dtype=np.int8, output_shape=graph.tensors[source].shape,
                               output_quantization=params[source])
    else:
        new[source] = b.add_input("input_int8", graph.tensors[source].shape, np.int8, quantization=params[source])
    for op in graph.ops:
        inputs = [_operand(b, graph, op, position, t, new, params) for position, t in enumerate(op.inputs)]
        options = {f: getattr(op.options, f) for f in op.options.__dataclass_fields__} if op.options else {}
        out = op.outputs[0]
        new[out] = b.add_op(op.kind, inputs, output_quantization=params[out], output_dtype=np.int8,
                            output_shape=graph.tensors[out].shape, **options)
    result = new[graph.outputs[0]]
    if io == "float":
        shape = graph.tensors[graph.outputs[0]].shape
        result = b.add_op("DEQUANTIZE", [result], output_dtype=np.float32, output_shape=shape)
    b.mark_outputs(result)
    return b


def _operand(b: GraphBuilder, graph: object, op: object, position: int, index: int, new: dict[int, int],
             params: dict[int, tuple[float, int]]) -> int | None:
    if index == -1:
        return None
    if index in new:
        return new[index]
    tensor = graph.tensors[index]
    if tensor.dtype.kind in "iu":  # shapes, axes, sizes: as they are
        return b.add_constant(tensor.name, tensor.data)
    if op.kind in WEIGHTED:
        source, weights, bias, axis = WEIGHTED[op.kind]
        if position == weights:
            return _per_channel_weights(b, tensor.name, tensor.data, axis)
        if position == bias:
            input_scale = params[op.inputs[source]][0]
            return _bias(b, tensor.name, tensor.data, input_scale, graph.tensors[op.inputs[weights]].data, axis)
    low, high = min(0.0, float(tensor.data.min())), max(0.0, float(tensor.data.max()))  # a float constant operand
    scale, zero_point = int8_parameters(low, high)
    values = np.clip(np.round(tensor.data / scale) + zero_point, -128, 127).astype(np.int8)
    return b.add_constant(tensor.name, values, quantization=(scale, zero_point))


def weight_scales(weights: np.ndarray, axis: int) -> np.ndarray:
    others = tuple(a for a in range(weights.ndim) if a != axis)
    return np.maximum(np.abs(weights).max(axis=others), 1e-8).astype(np.float32) / np.float32(127)


def _per_channel_weights(b: GraphBuilder, name: str, weights: np.ndarray, axis: int) -> int:
    scales = weight_scales(weights, axis)
    shape = [1] * weights.ndim
    shape[axis] = -1
    values = np.clip(np.round(weights / scales.reshape(shape)), -127, 127).astype(np.int8)
    quantization = Quantization(scales, np.zeros(scales.size, np.int64), axis)
    return b.add_constant(name, values, quantization=quantization)


def _bias(b: GraphBuilder, name: str, bias: np.ndarray, input_scale: float, weights: np.ndarray, axis: int) -> int:
    scales = (np.float32(input_scale) * weight_scales(weights, axis)).astype(np.float32)
    values = np.round(bias / scales).astype(np.int32)
    quantization = Quantization(scales, np.zeros(scales.size, np.int64), 0)
    return b.add_constant(name, values, quantization=quantization)
