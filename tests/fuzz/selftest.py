"""The harness's own checks: probes that crash, abort, hang, run out of memory, raise or exit,
run through the same fork-per-case machinery as the cases."""

from __future__ import annotations

import ctypes
import os
import time
from collections.abc import Callable
from typing import Any

from .isolation import DEFAULT_MEMORY_LIMIT, run_pool


def probe_crash(report: Callable[[dict], None]) -> dict:
    ctypes.string_at(0)  # reads address 0: SIGSEGV
    return {"outcome": "ok"}


def probe_abort(report: Callable[[dict], None]) -> dict:
    os.abort()


def probe_hang(report: Callable[[dict], None]) -> dict:
    time.sleep(3600)
    return {"outcome": "ok"}


def probe_memory(report: Callable[[dict], None]) -> dict:
    return {"outcome": "ok", "size": len(bytearray(64 * 2**30))}


def probe_exception(report: Callable[[dict], None]) -> dict:
    return {"outcome": "ok", "value": {}["missing"]}


def probe_exit(report: Callable[[dict], None]) -> dict:
    os._exit(3)


def probe_ok(report: Callable[[dict], None]) -> dict:
    return {"outcome": "ok", "message": "fine"}


PROBES = {
    "crash": (probe_crash, "crash"),
    "abort": (probe_abort, "crash"),
    "hang": (probe_hang, "hang"),
    "memory": (probe_memory, "memory"),
    "exception": (probe_exception, "exception"),
    "exit": (probe_exit, "crash"),
    "ok": (probe_ok, "ok"),
}


def self_test(timeout: float = 3.0) -> dict[str, dict[str, Any]]:
    """Each probe through the same machinery as the cases: what the harness made of it."""
    jobs = [(name, function) for name, (function, _) in PROBES.items()]
    results = {}
    for name, result in run_pool(jobs, workers=len(jobs), timeout=timeout, memory_limit=DEFAULT_MEMORY_LIMIT):
        results[name] = {k: result.get(k, "") for k in ("outcome", "type", "message", "where")}
        results[name]["expected"] = PROBES[name][1]
        results[name]["stack_in_dump"] = "probe_" in result.get("stderr", "")
    return results
