"""Isolation: each case runs in a child forked from this process, under RLIMIT_AS and a wall-clock
timeout, with faulthandler on so that a crash or a hang leaves the Python stack it happened in.

This process never runs a kernel. By default (prepare_to_fork("forksafe")) it loads the compiled
Numba kernels from Numba's on-disk cache with Numba's fork-safe threading layer ("workqueue",
which restarts its threads in a child), so a child starts with every kernel ready (~20 ms) instead
of loading them itself (~200 ms). ``--threading-layer default`` keeps Numba's default layer
(OpenMP here; it cannot be used across a fork) and lets every child load the kernels itself.
"""

from __future__ import annotations

import faulthandler
import json
import os
import re
import resource
import select
import signal
import subprocess
import sys
import time
import traceback
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import npdeeplab
import npdeeplab.kernels

DEFAULT_TIMEOUT = 30.0
DEFAULT_MEMORY_LIMIT = 4 * 2**30  # RLIMIT_AS; a child starts at ~0.4 GiB of address space
ENGINE_MAX_MEMORY = "268435456"  # NPDEEPLAB_MAX_MEMORY in every child: planned activations
REPO = Path(npdeeplab.__file__).resolve().parent.parent
PROJECT_DIRS = (Path(npdeeplab.__file__).resolve().parent, Path(npdeeplab.kernels.__file__).resolve().parent)


WorkFunction = Callable[[Callable[[dict], None]], dict]
STDERR_TAIL = 20_000
MEMORY_SIGNS = ("MemoryError", "std::bad_alloc", "Cannot allocate memory", "out of memory")
FRAME = re.compile(r'File "([^"]+)", line (\d+) in (\S+)')


def project_frame(frames: Iterable[tuple[str, int, str]]) -> str:
    """The innermost npdeeplab (or kernels) frame of a stack given outermost first, as path:line (function)."""
    found = ""
    for filename, line, function in frames:
        path = Path(filename).resolve()
        if any(path.is_relative_to(d) for d in PROJECT_DIRS):
            found = f"{path.relative_to(REPO)}:{line} ({function})"
    return found


def exception_result(error: BaseException, backend: str = "") -> dict[str, Any]:
    frames = [(f.filename, f.lineno, f.name) for f in traceback.extract_tb(error.__traceback__)]
    return {
        "backend": backend,
        "outcome": "memory" if isinstance(error, MemoryError) else "exception",
        "type": type(error).__name__,
        "message": str(error)[:2000],
        "traceback": "".join(traceback.format_exception(type(error), error, error.__traceback__))[-STDERR_TAIL:],
        "where": project_frame(frames),
    }


def stack_in_dump(stderr: str) -> str:
    """The innermost project frame of the current thread in a faulthandler dump (innermost first)."""
    block = stderr.split("Current thread", 1)[1] if "Current thread" in stderr else stderr
    block = block.split("\n\n", 1)[0] if "Current thread" in stderr else block
    frames = [(m.group(1), int(m.group(2)), m.group(3)) for m in FRAME.finditer(block)]
    return project_frame(reversed(frames))


def write_all(fd: int, data: bytes) -> None:
    while data:
        data = data[os.write(fd, data) :]


def child_main(work: WorkFunction, result_fd: int, timeout: float, memory_limit: int | None) -> None:
    """Runs in the forked child; never returns."""
    try:
        os.dup2(sys.stderr.fileno(), sys.stdout.fileno())
        if memory_limit:
            resource.setrlimit(resource.RLIMIT_AS, (memory_limit, memory_limit))
        resource.setrlimit(resource.RLIMIT_CORE, (0, 0))
        os.environ["NPDEEPLAB_MAX_MEMORY"] = ENGINE_MAX_MEMORY
        faulthandler.enable(all_threads=True)
        faulthandler.dump_traceback_later(max(0.5, timeout - 1.5), exit=False)

        def report(message: dict) -> None:
            write_all(result_fd, (json.dumps(message, default=str) + "\n").encode())

        try:
            result = work(report)
        except BaseException as error:  # noqa: BLE001 - everything is an outcome here
            result = exception_result(error)
        report({"final": result})
    finally:
        os._exit(0)


@dataclass
class Child:
    pid: int
    key: Any
    started: float
    deadline: float
    fds: dict[int, list[bytes]]  # result pipe and stderr pipe -> chunks read so far
    open: set[int]
    result_fd: int
    timed_out: bool = False


def fork_child(key: Any, work: WorkFunction, timeout: float, memory_limit: int | None) -> Child:
    result_read, result_write = os.pipe()
    error_read, error_write = os.pipe()
    sys.stdout.flush()
    sys.stderr.flush()
    pid = os.fork()
    if pid == 0:
        os.close(result_read)
        os.close(error_read)
        os.dup2(error_write, 2)
        child_main(work, result_write, timeout, memory_limit)
    os.close(result_write)
    os.close(error_write)
    now = time.monotonic()
    fds = {result_read: [], error_read: []}
    return Child(pid, key, now, now + timeout, fds, set(fds), result_read)


def child_result(child: Child, status: int) -> dict[str, Any]:
    """What happened to a finished child: its final report, or the timeout or signal that ended it."""
    for fd in child.fds:
        os.close(fd)
    lines = b"".join(child.fds[child.result_fd]).decode("utf-8", "replace").splitlines()
    messages = [json.loads(line) for line in lines if line.startswith("{")]
    stderr = b"".join(b for fd, chunks in child.fds.items() if fd != child.result_fd for b in chunks)
    stderr_text = stderr.decode("utf-8", "replace")[-STDERR_TAIL:]
    stages = [m["stage"] for m in messages if "stage" in m]
    final = next((m["final"] for m in messages if "final" in m), None)
    result: dict[str, Any] = {
        "stage": stages[-1] if stages else "",
        "stderr": stderr_text,
        "also": [m["failure"] for m in messages if "failure" in m],  # a backend's failure before the end
        "seconds": round(time.monotonic() - child.started, 3),
    }
    if child.timed_out:
        result.update(outcome="hang", type="timeout", message=f"no result after {child.deadline - child.started:g} s")
    elif final is not None:
        result.update(final)
    elif os.WIFSIGNALED(status):
        name = signal.Signals(os.WTERMSIG(status)).name
        memory = any(sign in stderr_text for sign in MEMORY_SIGNS)
        result.update(outcome="memory" if memory else "crash", type=name, message=f"killed by {name}")
    else:
        code = os.WEXITSTATUS(status)
        result.update(outcome="crash", type=f"exit {code}", message=f"exited with code {code} and no result")
    if final is None:
        result["where"] = stack_in_dump(stderr_text)
    return result


def read_ready(children: list[Child], wait: float) -> None:
    """Read whatever the children have written, waiting at most `wait` seconds for anything."""
    by_fd = {fd: child for child in children for fd in child.open}
    if not by_fd:
        time.sleep(min(wait, 0.01))
        return
    ready, _, _ = select.select(list(by_fd), [], [], max(0.0, wait))
    for fd in ready:
        chunk = os.read(fd, 1 << 16)
        child = by_fd[fd]
        if chunk:
            child.fds[fd].append(chunk)
        else:
            child.open.discard(fd)


def reap(children: list[Child]) -> list[tuple[Child, dict[str, Any]]]:
    """Children that are done (both pipes closed, or past their deadline and killed)."""
    done = []
    now = time.monotonic()
    for child in children:
        if child.open and now > child.deadline:
            child.timed_out = True
            os.kill(child.pid, signal.SIGKILL)
        if child.open and not child.timed_out:
            continue
        _, status = os.waitpid(child.pid, 0)
        done.append((child, child_result(child, status)))
    return done


def run_pool(
    jobs: Iterable[tuple[Any, WorkFunction | None]],
    workers: int,
    timeout: float = DEFAULT_TIMEOUT,
    memory_limit: int | None = DEFAULT_MEMORY_LIMIT,
) -> Iterator[tuple[Any, dict[str, Any] | None]]:
    """Run each job's work in its own forked child, `workers` at a time; yield (key, result) as they
    finish (not in order). A job without work (a skipped case) is yielded at once with None."""
    pending = iter(jobs)
    running: list[Child] = []
    exhausted = False
    try:
        while running or not exhausted:
            while not exhausted and len(running) < workers:
                job = next(pending, None)
                if job is None:
                    exhausted = True
                elif job[1] is None:
                    yield job[0], None
                else:
                    running.append(fork_child(job[0], job[1], timeout, memory_limit))
            if running:
                read_ready(running, min(c.deadline for c in running) - time.monotonic())
                for child, result in reap(running):
                    running.remove(child)
                    yield child.key, result
    finally:  # interrupted, or the caller stopped early: leave no child behind
        for child in running:
            os.kill(child.pid, signal.SIGKILL)
            os.waitpid(child.pid, 0)
            for fd in child.fds:
                os.close(fd)


def run_isolated(
    work: WorkFunction, timeout: float = DEFAULT_TIMEOUT, memory_limit: int | None = DEFAULT_MEMORY_LIMIT
) -> dict[str, Any]:
    """One piece of work in a forked child; its result (outcome, type, message, where, stage, stderr...)."""
    for _, result in run_pool([(None, work)], 1, timeout, memory_limit):
        return result
    raise AssertionError("run_pool yielded nothing")


# --- preparing this process to fork -----------------------------------------------------------------


def warm_numba_cache() -> None:
    """Compile the Numba kernels into the on-disk cache, in a subprocess: this process must not run them."""
    from npdeeplab.kernels.fast import needs_compiling

    if needs_compiling():
        print("fuzz: compiling the Numba kernels once, in a subprocess...", file=sys.stderr)
        code = "from npdeeplab.kernels.fast import warm_up; warm_up()"
        subprocess.run([sys.executable, "-c", code], check=True)


def preload_numba_kernels() -> int:
    """Load every cached signature of every kernel into this process, without running any, with the
    fork-safe threading layer; children then start with the kernels ready. Returns how many."""
    import numba

    from npdeeplab.kernels.fast import jitted_functions

    numba.config.THREADING_LAYER = "forksafe"
    loaded = 0
    for function in jitted_functions():
        try:
            index = function._cache._cache_file._load_index()  # Numba's cache index: signature -> file
        except Exception:  # noqa: BLE001 - private API; without it the children load kernels themselves
            continue
        for key in index:
            if key[0] not in function.overloads:
                function.compile(key[0])
                loaded += 1
    return loaded


def prepare_to_fork(threading_layer: str) -> None:
    """Before the first child: the engine's memory cap, the Numba cache filled, and (forksafe) the kernels loaded."""
    os.environ["NPDEEPLAB_MAX_MEMORY"] = ENGINE_MAX_MEMORY
    warm_numba_cache()
    if threading_layer == "forksafe":
        preload_numba_kernels()
