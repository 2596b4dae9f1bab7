"""The execution plan's memory side: when each activation is born and dies, and how little memory
the activations need when buffers are shared by tensors whose lifetimes do not overlap (what
TFLite's arena planner does)."""

from __future__ import annotations

from dataclasses import dataclass

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


def plan_memory(graph: Subgraph, steps: list[PreparedOp], tensors: list[TensorInfo]) -> MemoryPlan:
    """Greedy best-fit assignment of activations to shared slots, in execution order."""
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
    produced = [(position, index) for position, step in enumerate(steps) for index in step.op.outputs]
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
