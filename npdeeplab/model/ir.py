"""The model IR: frozen records decoded once from the flatbuffer.

Tensor indices are the file's own, so everything here lines up with LiteRT's tensor details.
Constant data are read-only NumPy views into the (memory-mapped) file: nothing is copied.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

import numpy as np


@dataclass(frozen=True)
class Quantization:
    """Affine quantization: real = scale * (q - zero_point), per tensor or per channel."""

    scale: np.ndarray  # float32, one entry per tensor or per channel
    zero_point: np.ndarray  # int64, same length as scale
    quantized_dimension: int = 0

    @property
    def per_channel(self) -> bool:
        return self.scale.size > 1


@dataclass(frozen=True)
class TensorInfo:
    index: int
    name: str
    shape: tuple[int, ...]
    shape_signature: tuple[int, ...]  # -1 marks a dynamic dimension
    dtype: np.dtype
    quantization: Quantization | None = None
    data: np.ndarray | None = field(default=None, repr=False)  # constants only
    buffer: int = 0
    is_variable: bool = False

    @property
    def is_constant(self) -> bool:
        return self.data is not None

    @property
    def size(self) -> int:
        return math.prod(self.shape)  # a Python int: never wraps, however large the shape


@dataclass(frozen=True)
class OpNode:
    index: int
    kind: str  # the BuiltinOperator name, e.g. "DEPTHWISE_CONV_2D", or "CUSTOM:<code>"
    version: int
    inputs: tuple[int, ...]  # -1 marks an omitted optional input
    outputs: tuple[int, ...]
    options: Any = None  # a typed dataclass from npdeeplab.model.options, or None
    custom_options: bytes = b""  # a custom op's options, as the file stores them (opaque to the loader)

    def describe(self) -> str:
        return f"op {self.index} ({self.kind})"


@dataclass(frozen=True)
class Subgraph:
    index: int
    name: str
    tensors: tuple[TensorInfo, ...]
    ops: tuple[OpNode, ...]
    inputs: tuple[int, ...]
    outputs: tuple[int, ...]


@dataclass(frozen=True)
class SignatureDef:
    key: str
    subgraph_index: int
    inputs: dict[str, int]  # signature name -> tensor index
    outputs: dict[str, int]


@dataclass(frozen=True)
class Model:
    version: int
    description: str
    subgraphs: tuple[Subgraph, ...]
    metadata: dict[str, bytes]
    signatures: tuple[SignatureDef, ...]
    source: str = "<bytes>"  # the file path, or "<bytes>"

    @property
    def main(self) -> Subgraph:
        """Subgraph 0, the one the interpreter runs."""
        return self.subgraphs[0]
