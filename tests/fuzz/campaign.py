"""Running a campaign and reporting it: cases made, run in forked children, their outcomes counted,
failures grouped (by outcome, exception type and innermost npdeeplab frame) and saved with a
description of how each model was made."""

from __future__ import annotations

import re
import sys
import time
from collections import Counter
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .cases import Case, CaseGenerator
from .check import FAILURES, check_model
from .helpers import normalise_message
from .isolation import DEFAULT_MEMORY_LIMIT, DEFAULT_TIMEOUT, run_pool
from .seeds import SeedFile

# A refusal that quotes a Python exception, e.g. "(error: unpack_from ...)" or ", TypeError: bad number ...".
WRAPPED_ERROR = re.compile(r"(?<!\w)(error|[A-Z]\w*(Error|Exception)): ")


@dataclass
class Campaign:
    """The results of a run: counts, and one group per kind of failure with its saved examples."""

    out: Path
    outcomes: Counter = field(default_factory=Counter)
    strategies: Counter = field(default_factory=Counter)
    refused: Counter = field(default_factory=Counter)
    groups: dict[tuple[str, ...], dict[str, Any]] = field(default_factory=dict)
    skipped: list[str] = field(default_factory=list)
    child_seconds: Counter = field(default_factory=Counter)  # strategy -> seconds spent in children
    sources: Counter = field(default_factory=Counter)  # seed model -> cases made from it
    wrapped_refusals: int = 0  # refusals whose message quotes a Python exception (a loader catch-all)
    seconds: float = 0.0

    def record(self, case: Case, result: dict[str, Any] | None) -> None:
        if result is None:
            self.outcomes["skipped"] += 1
            self.skipped.append(f"case {case.name}: {case.skipped.splitlines()[0]}")
            return
        outcome = result["outcome"]
        self.outcomes[outcome] += 1
        self.sources[case.source] += 1
        self.child_seconds[case.strategy] += result["seconds"]
        self.strategies[(case.strategy, outcome if outcome in ("ok", "refused") else "failure")] += 1
        if outcome == "refused":
            self.refused[f"{result['type']}: {normalise_message(result['message'])}"] += 1
            self.wrapped_refusals += bool(WRAPPED_ERROR.search(result["message"]))
        elif outcome in FAILURES:
            path = save_failure(self.out, case, result)
            keys = {group_key(result): result}
            for other in result.get("also", []):  # the other backend failed differently on the same model
                keys.setdefault(group_key(other), other)
            for key, failure in keys.items():
                group = self.groups.setdefault(key, {"count": 0, "examples": [], "result": failure})
                group["count"] += 1
                group["examples"].append(str(path))

    def failures(self) -> list[dict[str, Any]]:
        rows = []
        for key, group in sorted(self.groups.items(), key=lambda item: -item[1]["count"]):
            result = group["result"]
            rows.append({
                "outcome": key[0], "type": result.get("type", ""), "where": result.get("where", ""),
                "stage": result.get("stage", ""), "message": result.get("message", "")[:300],
                "count": group["count"], "example": group["examples"][0], "files": group["examples"][:20],
            })
        return rows


def group_key(result: dict[str, Any]) -> tuple[str, ...]:
    """Failures group by outcome, exception type and innermost npdeeplab frame (or message shape)."""
    outcome, error, where = result["outcome"], result.get("type", ""), result.get("where", "")
    if outcome == "mismatch":  # by the kind of the first op that differs, and what differs
        return outcome, re.sub(r"op \d+ ", "", where), normalise_message(result.get("message", ""), 60)
    if where:
        return outcome, error, where
    if outcome in ("crash", "hang"):
        return outcome, error, result.get("stage", "")
    return outcome, error, normalise_message(result.get("message", ""), 80)


def save_failure(out: Path, case: Case, result: dict[str, Any]) -> Path:
    path = out / f"{result['outcome']}-{case.name}.tflite"
    path.write_bytes(case.data)
    lines = [
        f"outcome: {result['outcome']} ({result.get('type', '')})",
        f"message: {result.get('message', '')}",
        f"where: {result.get('where', '') or '(no npdeeplab frame)'}",
        f"last stage: {result.get('stage', '')}",
        f"case: seed {case.seed}, number {case.number}, strategy {case.strategy}, input seed {case.input_seed}",
        f"replay: python tests/fuzz --replay {path} --input-seed {case.input_seed}",
        "mutations:",
        *(f"  - {step}" for step in case.description),
        "",
        "traceback:",
        result.get("traceback", "") or "(none)",
    ]
    for other in result.get("also", []):
        where = f"{other['outcome']} {other.get('type', '')} at {other.get('where')}"
        lines += [f"also, on {other.get('backend', '?')}: {where}", other.get("traceback", "")]
    lines += ["stderr:", result.get("stderr", "") or "(none)"]
    path.with_suffix(".txt").write_text("\n".join(lines))
    return path


REFRESH_EVERY = 500


def case_jobs(generator: CaseGenerator, numbers: Iterable[int], cases: dict[int, Case]) -> Iterator[tuple[int, Any]]:
    for number in numbers:
        case = generator.make(number)
        cases[number] = case
        if case.skipped:
            yield number, None
        else:
            yield number, (lambda report, c=case: check_model(c.data, c.input_seed, report))


def run_campaign(
    seeds: dict[str, SeedFile],
    seed: int,
    numbers: range,
    out: Path,
    workers: int,
    timeout: float = DEFAULT_TIMEOUT,
    memory_limit: int | None = DEFAULT_MEMORY_LIMIT,
    progress: int = 0,
    refresh: Callable[[], Any] | None = None,
) -> tuple[Campaign, CaseGenerator]:
    """Run cases `numbers`; `refresh` is called every REFRESH_EVERY cases (to load kernels that
    children compiled for new argument types since, so that later children need not)."""
    out.mkdir(parents=True, exist_ok=True)
    generator = CaseGenerator(seeds, seed)
    campaign = Campaign(out)
    cases: dict[int, Case] = {}
    started = time.monotonic()
    results = run_pool(case_jobs(generator, numbers, cases), workers, timeout, memory_limit)
    for done, (number, result) in enumerate(results, 1):
        campaign.record(cases.pop(number), result)
        if refresh is not None and done % REFRESH_EVERY == 0:
            refresh()
        if progress and done % progress == 0:
            rate = done / (time.monotonic() - started)
            counts = ", ".join(f"{k} {v}" for k, v in campaign.outcomes.most_common())
            print(f"fuzz: {done}/{len(numbers)} cases, {rate:.1f}/s: {counts}", file=sys.stderr, flush=True)
    campaign.seconds = time.monotonic() - started
    return campaign, generator




def strategy_table(campaign: Campaign) -> dict[str, dict[str, Any]]:
    table: dict[str, dict[str, Any]] = {}
    for (strategy, bucket), count in sorted(campaign.strategies.items()):
        row = table.setdefault(strategy, {"cases": 0, "ok": 0, "refused": 0, "failure": 0})
        row[bucket] += count
        row["cases"] += count
    for strategy, row in table.items():
        row["child_seconds_mean"] = round(campaign.child_seconds[strategy] / row["cases"], 3)
    return table


def summary(campaign: Campaign, generator: CaseGenerator, cases: int, seed: int, workers: int) -> dict[str, Any]:
    return {
        "cases": cases,
        "seed": seed,
        "workers": workers,
        "seconds": round(campaign.seconds, 1),
        "cases_per_second": round(cases / campaign.seconds, 2) if campaign.seconds else None,
        "outcomes": dict(campaign.outcomes.most_common()),
        "strategies": strategy_table(campaign),
        "sources": dict(campaign.sources.most_common()),
        "refused": dict(campaign.refused.most_common()),
        "refused_wrapping_an_internal_error": campaign.wrapped_refusals,
        "failures": campaign.failures(),
        "writer_refusals": dict(generator.writer_refusals.most_common()),
        "builder_notes": dict(generator.builder_notes.most_common()),
        "skipped": campaign.skipped[:50],
    }


def print_counts(title: str, counts: dict[str, int], top: int) -> None:
    if counts:
        print(f"{title} (top {min(top, len(counts))} of {len(counts)}):")
        for message, count in list(counts.items())[:top]:
            print(f"  {count:6d}  {message}")


def print_summary(report: dict[str, Any], top: int = 25) -> None:
    print(f"npdeeplab fuzz: {report['cases']} cases (seed {report['seed']}), {report['workers']} workers, "
          f"{report['seconds']} s, {report['cases_per_second']} cases/s")
    print("outcomes: " + ", ".join(f"{k} {v}" for k, v in report["outcomes"].items()))
    print("by strategy:       cases      ok  refused  failure  s/case (in the child)")
    for name, row in report["strategies"].items():
        print(f"  {name:17s} {row['cases']:6d}  {row['ok']:6d}  {row['refused']:7d}  {row['failure']:7d}  "
              f"{row['child_seconds_mean']:.3f}")
    sources = ", ".join(f"{name.split(' ')[-1]} {count}" for name, count in report["sources"].items())
    print(f"seeds ({len(report['sources'])}): {sources}")
    print_counts("refused, by message shape", report["refused"], top)
    wrapped = report["refused_wrapping_an_internal_error"]
    print(f"  ({wrapped} refusals quote a Python exception, e.g. 'TypeError: ...')")
    print_counts("writer refusals (became byte mutations)", report["writer_refusals"], top)
    print_counts("engine errors met while building seeds", report["builder_notes"], top)
    for line in report["skipped"][:top]:
        print(f"skipped: {line}")
    failures = report["failures"]
    print(f"failures: {sum(f['count'] for f in failures)} cases in {len(failures)} groups")
    for f in failures:
        print(f"  [{f['outcome']}] {f['count']}x {f['type']} at {f['where'] or f['stage'] or '?'}")
        print(f"        {f['message'][:200]}")
        print(f"        e.g. {f['example']}")
