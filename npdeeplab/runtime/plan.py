"""The execution plan's memory side: when each activation is born and dies, how little memory
the activations need when buffers are shared by tensors whose lifetimes do not overlap (what
TFLite's arena planner does), and the limit that refuses, at load, a plan this machine cannot
hold. Sizes are Python ints, so a shape of 60000 x 60000 x 64 cannot wrap around.

A concatenation along the channels whose inputs come from kernels that write a slice of a larger
buffer (the GEMM's convolutions: ASPP's branches) becomes free: those inputs live in their slices of
the concatenation's buffer, which is born when the first of them is made."""

from __future__ import annotations

import math
import os
from collections import Counter
from collections.abc import Callable, Mapping
from dataclasses import dataclass, replace

from npdeeplab.errors import InputError, ModelError
from npdeeplab.model.ir import Subgraph, TensorInfo
from npdeeplab.ops import PreparedOp


@dataclass(frozen=True)
class MemoryPlan:
    last_use: dict[int, int]  # tensor index -> index in the step list of its last reader
    slots: dict[int, int]  # tensor index -> shared buffer slot
    slot_bytes: tuple[int, ...]
    all_activation_bytes: int  # every activation kept, as with experimental_preserve_all_tensors

    @property
    def peak_bytes(self) -> int:
        """Activation memory with buffers shared by lifetime."""
        return sum(self.slot_bytes)

    def release_after(self, step: int) -> list[int]:
        """Tensors nobody reads after step `step`."""
        return [t for t, last in self.last_use.items() if last == step]


@dataclass(frozen=True)
class InPlace:
    """A concatenation's input that lives in its slice of the concatenation's output."""

    concat: int  # the concatenation's output tensor
    start: int  # where the slice starts along the last axis


def in_place_concatenations(graph: Subgraph, steps: list[PreparedOp], tensors: list[TensorInfo],
                            writes_slices: Callable[[PreparedOp], bool]) -> dict[int, InPlace]:
    """The inputs of channel concatenations (kernel "concatenation", last axis) that their
    producers can write straight into the concatenation's buffer: an activation made alone by a
    step that `writes_slices`, read by nothing but this concatenation (once), and neither a graph
    input nor a graph output (the concatenation's output may be one)."""
    readers = Counter(i for step in steps for i in step.op.inputs if i != -1)
    producers = {step.op.outputs[0]: step for step in steps if len(step.op.outputs) == 1}
    kept = set(graph.inputs) | set(graph.outputs)
    aliases: dict[int, InPlace] = {}
    for step in steps:
        if step.kernel != "concatenation" or step.params.axis != len(tensors[step.op.outputs[0]].shape) - 1:
            continue
        output = step.op.outputs[0]
        start = 0
        for index in step.inputs:
            producer = producers.get(index)
            if (producer is not None and index not in kept and readers[index] == 1 and step.inputs.count(index) == 1
                    and writes_slices(producer)):
                aliases[index] = InPlace(output, start)
            start += tensors[index].shape[-1]
    return aliases


def mark_in_place(steps: list[PreparedOp], aliases: Mapping[int, InPlace]) -> list[PreparedOp]:
    """The steps with each concatenation told which of its inputs are in place already."""
    marked = []
    for step in steps:
        in_place = tuple(index in aliases for index in step.inputs) if step.kernel == "concatenation" else ()
        marked.append(replace(step, params=replace(step.params, in_place=in_place)) if any(in_place) else step)
    return marked


def plan_memory(graph: Subgraph, steps: list[PreparedOp], tensors: list[TensorInfo],
                aliases: Mapping[int, InPlace] | None = None) -> MemoryPlan:
    """Greedy best-fit assignment of activations to shared slots, in execution order. `aliases`
    (in_place_concatenations) get no slot of their own: they live in their concatenation's, which
    is then born with the first of them."""
    aliases = aliases or {}
    end = len(steps)
    last_use: dict[int, int] = {}
    for position, step in enumerate(steps):
        for index in step.op.inputs:
            if index != -1 and not tensors[index].is_constant:
                last_use[index] = position
    for index in graph.outputs:
        last_use[index] = end  # outputs live on after invoke
    for index in graph.inputs:
        last_use[index] = end  # inputs are set by the user and kept, as LiteRT keeps them
    slot_bytes: list[int] = []
    slot_free_at: list[int] = []  # step after which the slot's current tenant is dead
    slots: dict[int, int] = {}
    born = {index: position for position, step in enumerate(steps) for index in step.op.outputs}
    for index, alias in aliases.items():
        born[alias.concat] = min(born[alias.concat], born.pop(index))
    produced = sorted(((position, index) for index, position in born.items()), key=lambda entry: entry[0])
    for position, index in [(-1, i) for i in graph.inputs] + produced:
        size = tensors[index].size * tensors[index].dtype.itemsize
        free = [s for s in range(len(slot_bytes)) if slot_free_at[s] < position]
        fitting = [s for s in free if slot_bytes[s] >= size]
        if fitting:
            slot = min(fitting, key=lambda s: slot_bytes[s])
        elif free:
            slot = max(free, key=lambda s: slot_bytes[s])
            slot_bytes[slot] = size
        else:
            slot = len(slot_bytes)
            slot_bytes.append(size)
            slot_free_at.append(0)
        slots[index] = slot
        slot_free_at[slot] = last_use.get(index, position)
    everything = sum(tensors[i].size * tensors[i].dtype.itemsize for i in slots)
    return MemoryPlan(last_use, slots, tuple(slot_bytes), everything)


MEMORY_ENV = "NPDEEPLAB_MAX_MEMORY"
RAM_SHARE = 0.5  # the default limit: half of physical memory
UNKNOWN_RAM_LIMIT = 2 << 30  # where physical memory cannot be read (e.g. WebAssembly)
_SUFFIXES = {"K": 1 << 10, "M": 1 << 20, "G": 1 << 30, "T": 1 << 40}


def physical_memory() -> int | None:
    """Bytes of RAM, where the OS says (POSIX sysconf), else None."""
    try:
        return os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    except (AttributeError, ValueError, OSError):
        return None


def memory_limit(explicit: int | None = None) -> tuple[int | None, str]:
    """The activation memory a model may plan, and where that limit comes from.

    explicit (Interpreter's max_memory=), else $NPDEEPLAB_MAX_MEMORY (bytes, or with a K/M/G/T
    suffix: "512M"), else half of physical RAM. 0 means no limit.
    """
    if explicit is not None:
        return (explicit or None), "max_memory="
    text = os.environ.get(MEMORY_ENV, "").strip()
    if text:
        return (parse_bytes(text) or None), MEMORY_ENV
    ram = physical_memory()
    if ram is None:
        return UNKNOWN_RAM_LIMIT, "npdeeplab's default where physical memory is unknown"
    return int(ram * RAM_SHARE), f"half of this machine's {format_bytes(ram)} of RAM"


def parse_bytes(text: str) -> int:
    """"268435456", "256M", "1.5G" -> bytes; InputError for anything else."""
    scale = _SUFFIXES.get(text[-1:].upper(), 0)
    number = text[:-1] if scale else text
    try:
        value = float(number) * (scale or 1)
    except ValueError:
        value = -1.0
    if not math.isfinite(value) or value < 0:
        raise InputError(f"{MEMORY_ENV}={text!r} is not a size: give bytes, or a number with K, M, G or T")
    return int(value)


def format_bytes(count: int) -> str:
    for unit, size in (("TB", 1e12), ("GB", 1e9), ("MB", 1e6), ("kB", 1e3)):
        if count >= size:
            return f"{count / size:.1f} {unit}"
    return f"{count} bytes"


def check_memory(plan: MemoryPlan, tensors: list[TensorInfo], keep_all: bool, explicit: int | None) -> None:
    """ModelError when the plan needs more activation memory than the limit allows."""
    limit, source = memory_limit(explicit)
    needed = plan.all_activation_bytes if keep_all else plan.peak_bytes
    if limit is None or needed <= limit:
        return
    largest = max(plan.slots, key=lambda i: tensors[i].size * tensors[i].dtype.itemsize)
    big = tensors[largest]
    how = "every tensor kept (experimental_preserve_all_tensors)" if keep_all else "buffers shared by lifetime"
    raise ModelError(
        f"the model needs {format_bytes(needed)} of activation memory ({how}), over the limit of "
        f"{format_bytes(limit)} ({source}); the largest tensor is {big.index} {big.name!r} {list(big.shape)} "
        f"{big.dtype.name} ({format_bytes(big.size * big.dtype.itemsize)}). Set {MEMORY_ENV} or "
        "Interpreter(max_memory=) to allow more"
    )
