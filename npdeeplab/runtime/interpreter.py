"""A drop-in for LiteRT's Python Interpreter, running every op with NumPy (or Numba) kernels.

Tensor indices, detail dicts and method names are LiteRT's, so a script written for
`ai_edge_litert.interpreter.Interpreter` runs unchanged when only the import changes. Beyond
LiteRT: `ops` lists the prepared ops, `add_hook` calls back after every op with its arrays.
"""

from __future__ import annotations

import os
import threading
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from types import MappingProxyType
from typing import Any

import numpy as np

from npdeeplab.errors import InputError, ModelError, NotAllocatedError
from npdeeplab.model.ir import Model, OpNode, Subgraph, TensorInfo
from npdeeplab.model.loader import load_model
from npdeeplab.ops import PreparedOp
from npdeeplab.runtime.backends import compile_ahead, kernel_table, out_kernels, resolve_backend, slice_kernels
from npdeeplab.runtime.fold import fold_float16_weights
from npdeeplab.runtime.graph import prepare_graph
from npdeeplab.runtime.numerics import apply_numerics, numerics_kernels, resolve_numerics
from npdeeplab.runtime.plan import MemoryPlan, check_memory, in_place_concatenations, mark_in_place, plan_memory
from npdeeplab.runtime.threads import thread_limits


@dataclass(frozen=True)
class OpCall:
    """What a hook sees after an op ran: the op and its input and output arrays."""

    index: int
    kind: str
    options: Any
    inputs: tuple[np.ndarray | None, ...]
    outputs: tuple[np.ndarray, ...]
    op: OpNode


Hook = Callable[[OpCall], None]


class GraphRunner:
    """One prepared subgraph with its tensor values.

    With an arena (kernels that accept `out=`, and intermediates not preserved), every
    activation lives in a buffer shared by lifetime, allocated once: invoke allocates nothing;
    the inputs of a channel concatenation made by kernels that write slices (`writes_slices`)
    are views of its buffer, so it copies nothing (plan.in_place_concatenations). Otherwise each
    op's result is kept until its last reader has run, then dropped.
    """

    def __init__(
        self,
        graph: Subgraph,
        kernels: dict[str, Callable],
        writes_into: frozenset[str] = frozenset(),
        preserve_all_tensors: bool = False,
        max_memory: int | None = None,
        numerics: str = "reference",
        writes_slices: frozenset[str] = frozenset(),
    ) -> None:
        self.graph, self.folded_ops = fold_float16_weights(graph)
        self.numerics = numerics
        self.kernels = kernels
        self.writes_into = writes_into
        self.writes_slices = writes_slices & writes_into
        self.preserve_all_tensors = preserve_all_tensors
        self.max_memory = max_memory
        self.prepare({})

    def prepare(self, input_shapes: dict[int, tuple[int, ...]]) -> None:
        """Prepare and plan for these input shapes; on a ModelError nothing has changed."""
        steps, tensors = prepare_graph(self.graph, input_shapes)
        steps = apply_numerics(self.numerics, steps, tensors)
        aliases = {}
        if self.uses_arena:
            aliases = in_place_concatenations(self.graph, steps, tensors, lambda s: s.kernel in self.writes_slices)
            steps = mark_in_place(steps, aliases)
        memory = plan_memory(self.graph, steps, tensors, aliases)
        keep_all = self.preserve_all_tensors
        check_memory(memory, tensors, keep_all, self.max_memory)
        self.input_shapes = dict(input_shapes)
        self.steps, self.tensors, self.memory, self.aliases = steps, tensors, memory, aliases
        self.release = [[] if keep_all else memory.release_after(i) for i in range(len(steps))]
        self.values: list[np.ndarray | None] = [t.data for t in tensors]
        self.buffers: dict[int, np.ndarray] = {}
        self.allocated = False

    @property
    def uses_arena(self) -> bool:
        return bool(self.writes_into) and not self.preserve_all_tensors

    def allocate(self) -> None:
        if self.uses_arena:
            slots = [np.empty(size, dtype=np.uint8) for size in self.memory.slot_bytes]
            for index, slot in self.memory.slots.items():
                tensor = self.tensors[index]
                nbytes = tensor.size * tensor.dtype.itemsize
                self.buffers[index] = slots[slot][:nbytes].view(tensor.dtype).reshape(tensor.shape)
            for index, alias in self.aliases.items():
                width = self.tensors[index].shape[-1]
                self.buffers[index] = self.buffers[alias.concat][..., alias.start:alias.start + width]
        for index in self.graph.inputs:
            tensor = self.tensors[index]
            self.values[index] = self.buffers.get(index, np.zeros(tensor.shape, dtype=tensor.dtype))
            self.values[index][...] = 0
        self.allocated = True

    def set_input(self, index: int, value: np.ndarray) -> None:
        if index in self.buffers:
            np.copyto(self.buffers[index], value)
            self.values[index] = self.buffers[index]
        else:
            self.values[index] = value.copy()

    def run(self, hooks: Sequence[Hook] = ()) -> None:
        values, buffers = self.values, self.buffers
        for position, step in enumerate(self.steps):
            inputs = tuple(None if i == -1 else values[i] for i in step.inputs)
            target = buffers.get(step.op.outputs[0]) if len(step.op.outputs) == 1 else None
            if target is not None and step.kernel in self.writes_into:
                result = self.kernels[step.kernel](step.params, *inputs, out=target)
            else:
                result = self.kernels[step.kernel](step.params, *inputs)
            outputs = result if isinstance(result, tuple) else (result,)
            if target is not None and outputs[0] is not target:
                np.copyto(target, outputs[0])  # a view or a fresh array: into the planned buffer
                outputs = (target,)
            for index, array in zip(step.op.outputs, outputs, strict=True):
                values[index] = array
            if hooks:
                call = OpCall(step.op.index, step.op.kind, step.op.options, inputs, outputs, step.op)
                for hook in hooks:
                    hook(call)
            if not buffers:
                for index in self.release[position]:
                    values[index] = None  # dead: let its memory go


class Interpreter:
    """LiteRT's Interpreter API over npdeeplab's kernels.

    One interpreter holds one set of tensors: its methods take `lock` (a re-entrant lock), so
    threads sharing it are served one call at a time. Hold `lock` yourself around set_tensor ->
    invoke -> get_tensor when threads share an interpreter; for parallel work give each thread
    its own Interpreter (they share nothing and give identical results).

    numerics: "reference" (LiteRT's reference kernels, the default), "xnnpack" (what LiteRT's
    default interpreter computes with XNNPACK on) or "optimized" (LiteRT's optimized builtin kernels,
    no delegate), for uint8/int8 models; float models keep reference numerics: see
    npdeeplab.runtime.numerics.
    """

    def __init__(
        self,
        model_path: str | os.PathLike | None = None,
        model_content: bytes | None = None,
        experimental_delegates: Any = None,
        num_threads: int | None = None,
        experimental_op_resolver_type: Any = None,
        experimental_preserve_all_tensors: bool = False,
        experimental_disable_delegate_clustering: bool = False,
        experimental_default_delegate_latest_features: bool = False,
        *,
        backend: str | None = None,
        model: Model | None = None,
        max_memory: int | None = None,
        numerics: str = "reference",
    ) -> None:
        sources = [s for s in (model_path, model_content, model) if s is not None]
        if len(sources) != 1:
            raise InputError("give exactly one of model_path, model_content or model")
        if model_content is not None and not isinstance(model_content, (bytes, bytearray, memoryview)):
            raise ModelError(
                f"model_content must be bytes, bytearray or memoryview, got {type(model_content).__name__}"
            )
        if model_path is not None and not isinstance(model_path, (str, os.PathLike)):
            raise ModelError(f"model_path must be a str or os.PathLike, got {type(model_path).__name__}")
        if model is not None and not isinstance(model, Model):
            raise ModelError(f"model must be an npdeeplab.model.ir.Model, got {type(model).__name__}")
        self.model = model if model is not None else load_model(sources[0])
        self.backend = resolve_backend(backend)
        self.num_threads = num_threads
        self.preserve_all_tensors = experimental_preserve_all_tensors
        self.numerics = resolve_numerics(numerics)
        self._kernels = {**kernel_table(self.backend), **numerics_kernels(self.numerics)}
        self._runner = GraphRunner(
            self.model.main, self._kernels, out_kernels(self.backend), experimental_preserve_all_tensors, max_memory,
            self.numerics, slice_kernels(self.backend, self._kernels),
        )
        self._compile_ahead()
        self._hooks: list[Hook] = []
        self.lock = threading.RLock()

    def _compile_ahead(self) -> None:
        compile_ahead(self.backend, self._kernels, self._runner.steps, self._runner.tensors)

    # --- LiteRT's API -------------------------------------------------------------------------

    def allocate_tensors(self) -> None:
        with self.lock:
            self._runner.allocate()

    def invoke(self) -> None:
        with self.lock:
            if not self._runner.allocated:
                raise NotAllocatedError("Invoke called on model that is not ready: call allocate_tensors() first")
            # Overflow to Inf and NaN from Inf - Inf are results, as in TFLite's C++, not warnings;
            # `trace` counts them per op.
            with thread_limits(self.backend, self.num_threads), np.errstate(all="ignore"):
                self._runner.run(self._hooks)

    def get_input_details(self) -> list[dict[str, Any]]:
        return [self._tensor_details(i) for i in self._runner.graph.inputs]

    def get_output_details(self) -> list[dict[str, Any]]:
        return [self._tensor_details(i) for i in self._runner.graph.outputs]

    def get_tensor_details(self, subgraph_index: int = 0) -> list[dict[str, Any]]:
        if subgraph_index != 0:
            graph = self._subgraph(subgraph_index)
            return [tensor_details(t) for t in graph.tensors]
        return [self._tensor_details(i) for i in range(len(self._runner.tensors))]

    def _get_ops_details(self) -> list[dict[str, Any]]:
        tensors = self._runner.tensors
        return [
            {
                "index": op.index,
                "op_name": op.kind,
                "inputs": np.array(op.inputs, dtype=np.int32),
                "outputs": np.array(op.outputs, dtype=np.int32),
                "operand_types": [tensors[i].dtype.type for i in op.inputs if i != -1],
                "result_types": [tensors[i].dtype.type for i in op.outputs if i != -1],
            }
            for op in self.model.main.ops  # all of them, those folded at load included, as LiteRT lists them
        ]

    def set_tensor(self, tensor_index: int, value: Any) -> None:
        tensor = self._tensor(tensor_index)
        if tensor.is_constant:
            raise InputError(f"tensor {tensor_index} {tensor.name!r} is a constant and cannot be set")
        value = np.asarray(value)
        if value.dtype != tensor.dtype:
            raise InputError(
                f"cannot set tensor {tensor_index} {tensor.name!r}: "
                f"got {value.dtype.name}, expected {tensor.dtype.name}"
            )
        if value.shape != tensor.shape:
            raise InputError(
                f"cannot set tensor {tensor_index} {tensor.name!r}: got shape {list(value.shape)}, "
                f"expected {list(tensor.shape)}"
            )
        with self.lock:
            if not self._runner.allocated:
                raise InputError("Cannot set tensor: Tensor is unallocated. Try calling allocate_tensors() first")
            self._runner.set_input(tensor_index, value)

    def get_tensor(self, tensor_index: int, subgraph_index: int = 0) -> np.ndarray:
        self._subgraph(subgraph_index)
        with self.lock:
            return self._value(tensor_index).copy()

    def tensor(self, tensor_index: int) -> Callable[[], np.ndarray]:
        """A function returning a view of the tensor's current value (LiteRT's zero-copy access)."""
        self._tensor(tensor_index)
        return lambda: self._value(tensor_index)

    def resize_tensor_input(self, input_index: int, tensor_size: Sequence[int], strict: bool = False) -> None:
        tensor = self._tensor(input_index)
        if input_index not in self._runner.graph.inputs:
            raise InputError(f"tensor {input_index} {tensor.name!r} is not a graph input")
        size = tuple(int(d) for d in tensor_size)
        if strict:
            for axis, (old, new, signature) in enumerate(zip(tensor.shape, size, tensor.shape_signature, strict=False)):
                if signature != -1 and old != new:
                    raise InputError(f"dimension {axis} of tensor {input_index} {tensor.name!r} is not dynamic")
        if len(size) != len(tensor.shape):
            raise InputError(
                f"cannot resize tensor {input_index} {tensor.name!r} from rank {len(tensor.shape)} to rank {len(size)}"
            )
        with self.lock:
            # Re-infers every shape: a shape the graph cannot take, or that needs more memory than
            # the limit, fails here and leaves the interpreter as it was.
            self._runner.prepare({**self._runner.input_shapes, input_index: size})
            self._compile_ahead()

    def get_signature_list(self) -> dict[str, dict[str, list[str]]]:
        return {
            s.key: {"inputs": sorted(s.inputs), "outputs": sorted(s.outputs)} for s in self.model.signatures
        }

    def get_signature_runner(self, signature_key: str | None = None) -> SignatureRunner:
        signatures = {s.key: s for s in self.model.signatures}
        if not signatures:
            raise ValueError("the model has no signatures")
        if signature_key is None:
            if len(signatures) > 1:
                raise ValueError(f"the model has several signatures; name one of {sorted(signatures)}")
            signature_key = next(iter(signatures))
        if signature_key not in signatures:
            raise ValueError(f"no signature {signature_key!r}; the model has {sorted(signatures)}")
        return SignatureRunner(self, signatures[signature_key])

    def num_subgraphs(self) -> int:
        return len(self.model.subgraphs)

    def reset_all_variables(self) -> None:
        """Nothing to reset: npdeeplab supports no variable tensors."""

    # --- beyond LiteRT --------------------------------------------------------------------------

    @property
    def allocated(self) -> bool:
        """Whether allocate_tensors() has run since the interpreter was made or last resized."""
        return self._runner.allocated

    @property
    def folded_ops(self) -> tuple[int, ...]:
        """Indices of the ops done once at load (DEQUANTIZE of float16 weights), not at invoke."""
        return self._runner.folded_ops

    @property
    def ops(self) -> tuple[PreparedOp, ...]:
        """The prepared ops in execution order: kind, options, kernel params, shapes, MACs."""
        return tuple(self._runner.steps)

    @property
    def kernels(self) -> Mapping[str, Callable]:
        """This interpreter's kernel table (backend and numerics): `kernels[step.kernel](step.params,
        *arrays)` runs one prepared op alone, as compare --isolate does."""
        return MappingProxyType(self._kernels)

    @property
    def memory_plan(self) -> MemoryPlan:
        """Activation lifetimes and the peak activation memory with buffers shared by lifetime."""
        return self._runner.memory

    @property
    def tensors(self) -> tuple[TensorInfo, ...]:
        """Tensor records with their current (possibly resized) shapes."""
        return tuple(self._runner.tensors)

    def trace(self, inputs: Any, stop_after: int | None = None, keep_arrays: bool = False) -> Any:
        """Run once and record every op's output statistics and time; see npdeeplab.runtime.trace."""
        from npdeeplab.runtime.trace import trace

        return trace(self, inputs, stop_after=stop_after, keep_arrays=keep_arrays)

    def explain(self, op: int, index: Sequence[int], inputs: Any = None) -> Any:
        """The arithmetic behind op `op`'s output element `index`, step by step (inputs None: run on
        the inputs already set); see npdeeplab.tools.explain."""
        from npdeeplab.tools.explain import explain

        return explain(self, op, index, inputs)

    def add_hook(self, hook: Hook) -> Callable[[], None]:
        """Call hook(OpCall) after every op of every invoke; returns a function that removes it."""
        self._hooks.append(hook)
        return lambda: self._hooks.remove(hook) if hook in self._hooks else None

    # --- internals -------------------------------------------------------------------------------

    def _tensor(self, index: int) -> TensorInfo:
        if not isinstance(index, (int, np.integer)) or not 0 <= index < len(self._runner.tensors):
            raise InputError(f"tensor index {index!r} is out of range 0..{len(self._runner.tensors) - 1}")
        return self._runner.tensors[int(index)]

    def _value(self, index: int) -> np.ndarray:
        tensor = self._tensor(index)
        if not tensor.is_constant and not self._runner.allocated:
            raise InputError("Tensor data is null. Run allocate_tensors() first")
        value = self._runner.values[index]
        if value is None:
            # Not computed yet (LiteRT would hand back uninitialised memory): zeros of the right shape.
            return np.zeros(tensor.shape, dtype=tensor.dtype)
        return value

    def _tensor_details(self, index: int) -> dict[str, Any]:
        return tensor_details(self._runner.tensors[index])

    def _subgraph(self, index: int) -> Subgraph:
        if not 0 <= index < len(self.model.subgraphs):
            raise ValueError(f"subgraph_index is out of range: {index} for the model, which has "
                             f"{len(self.model.subgraphs)} subgraphs.")
        return self.model.subgraphs[index]


class SignatureRunner:
    """LiteRT's SignatureRunner: call with keyword inputs, get a dict of outputs."""

    def __init__(self, interpreter: Interpreter, signature: Any) -> None:
        if signature.subgraph_index != 0:
            raise ModelError(
                f"signature {signature.key!r} runs subgraph {signature.subgraph_index}; npdeeplab runs subgraph 0 only"
            )
        self._interpreter = interpreter
        self._signature = signature

    def get_input_details(self) -> dict[str, dict[str, Any]]:
        return {name: self._interpreter._tensor_details(i) for name, i in self._signature.inputs.items()}

    def get_output_details(self) -> dict[str, dict[str, Any]]:
        return {name: self._interpreter._tensor_details(i) for name, i in self._signature.outputs.items()}

    def __call__(self, **inputs: Any) -> dict[str, np.ndarray]:
        expected = set(self._signature.inputs)
        if set(inputs) != expected:
            raise InputError(f"signature {self._signature.key!r} takes inputs {sorted(expected)}, got {sorted(inputs)}")
        interpreter = self._interpreter
        with interpreter.lock:  # one call, one run: no other thread's inputs in between
            if not interpreter.allocated:
                interpreter.allocate_tensors()  # LiteRT's runner allocates by itself too
            for name, value in inputs.items():
                interpreter.set_tensor(self._signature.inputs[name], value)
            interpreter.invoke()
            return {name: interpreter.get_tensor(i) for name, i in self._signature.outputs.items()}


def tensor_details(tensor: TensorInfo) -> dict[str, Any]:
    """LiteRT's detail dict for one tensor."""
    q = tensor.quantization
    if q is None:
        scales, zero_points, dimension = np.array([], np.float32), np.array([], np.int32), 0
    else:
        scales, zero_points = q.scale.astype(np.float32), q.zero_point.astype(np.int32)
        dimension = q.quantized_dimension
    legacy = (float(scales[0]), int(zero_points[0])) if scales.size == 1 else (0.0, 0)
    return {
        "name": tensor.name,
        "index": tensor.index,
        "shape": np.array(tensor.shape, dtype=np.int32),
        "shape_signature": np.array(tensor.shape_signature, dtype=np.int32),
        "dtype": tensor.dtype.type,
        "quantization": legacy,
        "quantization_parameters": {
            "scales": scales,
            "zero_points": zero_points,
            "quantized_dimension": dimension,
            "block_size": 0,
        },
        "sparsity_parameters": {},
    }
