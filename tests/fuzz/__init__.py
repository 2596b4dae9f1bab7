"""Fuzz npdeeplab's loader and runtime with malformed and unusual models.

The contract under test (check.py): a model given to ``npdeeplab.Interpreter(model_content=...)``
either ends in one allowed error (ModelError, InputError or ImageError), or it loads, allocates,
takes a random input of its declared shape and dtype, runs on both backends ("numpy" and "numba")
and gives the same outputs on both. Anything else is a failure: another exception type
("exception"), backends that disagree ("mismatch"), a child killed by a signal ("crash"), a child
over its timeout ("hang"), or a MemoryError / the memory limit ("memory").

The stages, one module each:
  seeds.py             the shared models, and builder-made single-op models of every supported kind
  quantized_seeds.py   builders of quantized single-op models, one per quantized kind ("q:CONV_2D")
  fields.py            the flatbuffer's fields (byte offsets of real fields, walked with the schema)
  mutate_bytes.py      byte-level mutations and splices
  ir_edits.py          small edits of the IR used by
  mutate_structure.py  structure-aware mutations of the IR, written back with write_model
  cases.py             case `number` of a run with `seed`, the same every time (STRATEGY_WEIGHTS)
  check.py             what a child runs: both backends, judged together
  isolation.py         forked children with a memory limit and a timeout; preparing this process to fork
  campaign.py          running a campaign, grouping and saving failures, the summary
  selftest.py          probes: the harness detects a crash, a hang, a MemoryError...
  cli.py               the command line (run with ``python tests/fuzz``)

Usage, from the repository root:
    python tests/fuzz --cases 2000 --seed 0 --out /tmp/fuzz [--workers 2] [--progress 1000]
    NPDEEPLAB_FUZZ_CASES=50000 python tests/fuzz --out /tmp/fuzz
    python tests/fuzz --replay /tmp/fuzz/crash-0-000123.tflite --input-seed 42
    python tests/fuzz --self-test     # the harness detects a crash, a hang, a MemoryError...
(or ``python -m fuzz ...`` from tests/).
"""
