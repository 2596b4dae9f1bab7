"""Cases: deterministic functions of (seed, case number), mixed by STRATEGY_WEIGHTS from

  - seeds as they are: a builder-made single-op model (a differential test of the op);
  - byte mutations (mutate_bytes.py) of a builder-made model, of the float DeepLab model or of
    another shared model, and splices of two files;
  - structure mutations (mutate_structure.py) of the same seeds. When the writer refuses a mutated
    IR, the case falls back to a byte mutation of the unmutated seed and its description says so
    ("writer refused ...").
"""

from __future__ import annotations

import traceback
from collections import Counter
from dataclasses import dataclass, field

import numpy as np

from npdeeplab.model.ir import Model
from npdeeplab.model.writer import write_model

from .helpers import normalise_message, pick, weighted
from .mutate_bytes import mutate_bytes, splice
from .mutate_structure import mutate_structure
from .seeds import FLOAT_SEED, SeedFile, build_single_op_model, builder_kinds, describe_model

STRATEGY_WEIGHTS = {
    "builder": 10,  # a builder-made single-op model, unmutated: a differential test of the op
    "builder+structure": 40,
    "builder+bytes": 25,
    "seed+structure": 7,  # the float DeepLab model: 0.1-1 s a case when it runs, so a minority
    "seed+bytes": 6,
    "shared+structure": 3,  # the quantized and the selfie model: refused at load, but loader inputs
    "shared+bytes": 4,
    "splice": 5,
}


@dataclass
class Case:
    seed: int
    number: int
    strategy: str
    data: bytes
    input_seed: int
    description: list[str] = field(default_factory=list)
    skipped: str = ""  # why no model was made (a generator error)

    @property
    def source(self) -> str:
        """The seed it was made from: "builder CONV_2D", "shared model <file>"."""
        return self.description[0].split(": ")[1] if self.description else ""

    @property
    def name(self) -> str:
        return f"{self.seed}-{self.number:06d}"


class CaseGenerator:
    """Makes case `number` of a run with `seed`, the same every time."""

    def __init__(self, seeds: dict[str, SeedFile], seed: int) -> None:
        self.seeds = seeds
        self.seed = seed
        self.kinds = builder_kinds()
        self.builder_notes: Counter = Counter()  # engine errors met while building seeds
        self.writer_refusals: Counter = Counter()  # structure mutations the writer would not write

    def make(self, number: int) -> Case:
        rng = np.random.default_rng([self.seed, number])
        strategy = weighted(rng, STRATEGY_WEIGHTS)
        case = Case(self.seed, number, strategy, b"", int(rng.integers(2**31)))
        try:
            case.data = self.generate(rng, case)
        except Exception as error:  # noqa: BLE001 - reported as a skipped case, with the reason
            case.skipped = f"{type(error).__name__}: {error}\n{traceback.format_exc()}"
        return case

    def generate(self, rng: np.random.Generator, case: Case) -> bytes:
        family, _, mutation = case.strategy.partition("+")
        if family == "splice":
            first, first_label = self.source(rng, "builder")
            second, second_label = self.source(rng, pick(rng, ["builder", "builder", "seed", "shared"]))
            data, description = splice(rng, first[0], second[0])
            case.description += [f"seed: {first_label}", f"second: {second_label}", description]
            return data
        (data, model), label = self.source(rng, family)
        case.description.append(f"seed: {label}")
        if mutation == "structure":
            return self.structure_case(rng, model, data, case)
        if mutation == "bytes":
            data, steps = mutate_bytes(rng, data)
            case.description += steps
        return data

    def source(self, rng: np.random.Generator, family: str) -> tuple[tuple[bytes, Model], str]:
        """(bytes, IR) of a seed model of this family, and its description."""
        if family == "builder":
            kind = pick(rng, self.kinds)
            model = build_single_op_model(rng, kind, self.builder_notes)
            return (write_model(model), model), f"builder {kind}: {describe_model(model)}"
        others = [seed for name, seed in self.seeds.items() if name != FLOAT_SEED] or [self.seeds[FLOAT_SEED]]
        seed = self.seeds[FLOAT_SEED] if family == "seed" else pick(rng, others)
        return (seed.data, seed.model), f"shared model {seed.name}"

    def structure_case(self, rng: np.random.Generator, model: Model, data: bytes, case: Case) -> bytes:
        mutated, steps = mutate_structure(rng, model)
        case.description += steps
        try:
            return write_model(mutated)
        except Exception as error:  # noqa: BLE001 - the writer's refusals are counted, then bytes mutated
            refusal = f"{type(error).__name__}: {normalise_message(str(error))}"
            self.writer_refusals[refusal] += 1
            case.description.append(f"writer refused ({type(error).__name__}: {error}); byte mutation instead")
            data, steps = mutate_bytes(rng, data)
            case.description += steps
            return data
