"""Typed builtin options, decoded from the flatbuffer's options tables.

Field names are the schema's (`stride_w`, `dilation_h_factor`, `fused_activation_function`) in
snake case, so each field maps to the accessor of the same name in CamelCase. Enum fields hold
names ("SAME", "RELU6", "INT64"), not numbers, so that they read well in `inspect` and errors.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any

import tflite

PADDING_NAMES = {0: "SAME", 1: "VALID"}
ACTIVATION_NAMES = {0: "NONE", 1: "RELU", 2: "RELU_N1_TO_1", 3: "RELU6", 4: "TANH", 5: "SIGN_BIT"}
TENSOR_TYPE_NAMES = {v: k for k, v in vars(tflite.TensorType).items() if not k.startswith("_")}
WEIGHTS_FORMAT_NAMES = {0: "DEFAULT", 1: "SHUFFLED4x16INT8"}
ENUM_FIELDS = {
    "padding": PADDING_NAMES,
    "fused_activation_function": ACTIVATION_NAMES,
    "output_type": TENSOR_TYPE_NAMES,
    "weights_format": WEIGHTS_FORMAT_NAMES,
    "quantized_bias_type": TENSOR_TYPE_NAMES,
}


@dataclass(frozen=True)
class Conv2DOptions:
    padding: str = "SAME"
    stride_w: int = 1
    stride_h: int = 1
    fused_activation_function: str = "NONE"
    dilation_w_factor: int = 1
    dilation_h_factor: int = 1


@dataclass(frozen=True)
class DepthwiseConv2DOptions:
    padding: str = "SAME"
    stride_w: int = 1
    stride_h: int = 1
    depth_multiplier: int = 1
    fused_activation_function: str = "NONE"
    dilation_w_factor: int = 1
    dilation_h_factor: int = 1


@dataclass(frozen=True)
class Pool2DOptions:
    padding: str = "SAME"
    stride_w: int = 1
    stride_h: int = 1
    filter_width: int = 1
    filter_height: int = 1
    fused_activation_function: str = "NONE"


@dataclass(frozen=True)
class AddOptions:
    fused_activation_function: str = "NONE"


@dataclass(frozen=True)
class SubOptions:
    fused_activation_function: str = "NONE"


@dataclass(frozen=True)
class MulOptions:
    fused_activation_function: str = "NONE"


@dataclass(frozen=True)
class ConcatenationOptions:
    axis: int = 0
    fused_activation_function: str = "NONE"


@dataclass(frozen=True)
class ResizeBilinearOptions:
    align_corners: bool = False
    half_pixel_centers: bool = False


@dataclass(frozen=True)
class ResizeNearestNeighborOptions:
    align_corners: bool = False
    half_pixel_centers: bool = False


@dataclass(frozen=True)
class ArgMaxOptions:
    output_type: str = "INT64"


@dataclass(frozen=True)
class ArgMinOptions:
    output_type: str = "INT64"


@dataclass(frozen=True)
class ReshapeOptions:
    new_shape: tuple[int, ...] = ()


@dataclass(frozen=True)
class SqueezeOptions:
    squeeze_dims: tuple[int, ...] = ()


@dataclass(frozen=True)
class ReducerOptions:
    keep_dims: bool = False


@dataclass(frozen=True)
class StridedSliceOptions:
    begin_mask: int = 0
    end_mask: int = 0
    ellipsis_mask: int = 0
    new_axis_mask: int = 0
    shrink_axis_mask: int = 0
    offset: bool = False


@dataclass(frozen=True)
class SoftmaxOptions:
    beta: float = 1.0


@dataclass(frozen=True)
class LeakyReluOptions:
    alpha: float = 0.0


@dataclass(frozen=True)
class FullyConnectedOptions:
    fused_activation_function: str = "NONE"
    weights_format: str = "DEFAULT"
    keep_num_dims: bool = False
    asymmetric_quantize_inputs: bool = False
    quantized_bias_type: str = "FLOAT32"


@dataclass(frozen=True)
class TransposeConvOptions:
    padding: str = "SAME"
    stride_w: int = 1
    stride_h: int = 1
    fused_activation_function: str = "NONE"  # schema v4 and later
    quantized_bias_type: str = "FLOAT32"  # schema v5 and later: FLOAT32 (the default) means "not set"


OPTION_CLASSES: dict[str, type] = {
    cls.__name__: cls
    for cls in (
        LeakyReluOptions,
        Conv2DOptions, DepthwiseConv2DOptions, Pool2DOptions, AddOptions, SubOptions, MulOptions,
        ConcatenationOptions, ResizeBilinearOptions, ResizeNearestNeighborOptions, ArgMaxOptions,
        ArgMinOptions, ReshapeOptions, SqueezeOptions, ReducerOptions, StridedSliceOptions,
        SoftmaxOptions, FullyConnectedOptions, TransposeConvOptions,
    )
}
# The options table each op kind carries in the schema.
OPTIONS_FOR_KIND: dict[str, type] = {
    "CONV_2D": Conv2DOptions,
    "DEPTHWISE_CONV_2D": DepthwiseConv2DOptions,
    "AVERAGE_POOL_2D": Pool2DOptions,
    "MAX_POOL_2D": Pool2DOptions,
    "ADD": AddOptions,
    "SUB": SubOptions,
    "MUL": MulOptions,
    "CONCATENATION": ConcatenationOptions,
    "RESIZE_BILINEAR": ResizeBilinearOptions,
    "RESIZE_NEAREST_NEIGHBOR": ResizeNearestNeighborOptions,
    "ARG_MAX": ArgMaxOptions,
    "ARG_MIN": ArgMinOptions,
    "RESHAPE": ReshapeOptions,
    "SQUEEZE": SqueezeOptions,
    "MEAN": ReducerOptions,
    "SUM": ReducerOptions,
    "REDUCE_MAX": ReducerOptions,
    "REDUCE_MIN": ReducerOptions,
    "REDUCE_PROD": ReducerOptions,
    "STRIDED_SLICE": StridedSliceOptions,
    "SOFTMAX": SoftmaxOptions,
    "LEAKY_RELU": LeakyReluOptions,
    "FULLY_CONNECTED": FullyConnectedOptions,
    "TRANSPOSE_CONV": TransposeConvOptions,
}
# Kinds whose default options are not a valid op (stride 0, no window): a missing table is an error.
OPTIONS_REQUIRED = frozenset({"CONV_2D", "DEPTHWISE_CONV_2D", "AVERAGE_POOL_2D", "MAX_POOL_2D", "TRANSPOSE_CONV"})
UNION_NAMES = {v: k for k, v in vars(tflite.BuiltinOptions).items() if not k.startswith("_")}


def camel(name: str) -> str:
    return "".join(part.capitalize() for part in name.split("_"))


def decode_options(union_type: int, table: Any) -> Any:
    """Decode one operator's builtin options table into its dataclass (None if we do not model it)."""
    union_name = UNION_NAMES.get(union_type, "NONE")
    cls = OPTION_CLASSES.get(union_name)
    if cls is None or table is None:
        return cls() if cls is not None else None
    schema_cls = getattr(tflite, union_name)
    options = schema_cls()
    options.Init(table.Bytes, table.Pos)
    values = {}
    for f in dataclasses.fields(cls):
        if f.type.startswith("tuple"):
            raw = getattr(options, camel(f.name) + "AsNumpy")()
            values[f.name] = tuple(int(v) for v in raw) if not isinstance(raw, int) else ()
            continue
        raw = getattr(options, camel(f.name))()
        if f.name in ENUM_FIELDS:
            raw = ENUM_FIELDS[f.name].get(raw, f"UNKNOWN({raw})")
        elif f.type == "bool":
            raw = bool(raw)
        values[f.name] = raw
    return cls(**values)
