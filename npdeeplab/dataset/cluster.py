"""The same tasks on a Dask cluster: `local:N` (N worker processes on this machine, loopback only)
or a running scheduler's address. Each worker process sets its task up once (a per-process cache
keyed by the task, which holds the model and its options); at most `window` images are in flight,
and results are handed back in the images' order."""

from __future__ import annotations

import logging
import threading
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any

from npdeeplab.dataset.pool import ONE_THREAD
from npdeeplab.dataset.runner import Task
from npdeeplab.errors import InputError

if TYPE_CHECKING:
    from distributed import Client

INSTALL = "pip install 'npdeeplab[dask]'"

_ready: dict[Any, Task] = {}  # on each worker: the tasks set up in this process
_ready_lock = threading.Lock()


def import_distributed() -> Any:
    try:
        import distributed
    except ImportError:
        raise InputError(f"--dask needs Dask's distributed scheduler, which is not installed: {INSTALL}") from None
    return distributed


@contextmanager
def dask_client(address: str) -> Iterator[Client]:
    """A client of the scheduler at address, or with `local:N` of a new local cluster of N processes
    with one thread each, listening on 127.0.0.1 only; closed (and the cluster stopped) afterwards."""
    distributed = import_distributed()
    if address.startswith("local:"):
        count = address.removeprefix("local:")
        if not count.isdigit() or int(count) < 1:
            raise InputError(f"--dask local:N takes a number of worker processes, 1 or more; got {address!r}")
        cluster = distributed.LocalCluster(
            n_workers=int(count), threads_per_worker=1, processes=True, host="127.0.0.1",
            dashboard_address="127.0.0.1:0", silence_logs=logging.ERROR, env=dict(ONE_THREAD))
        try:
            with distributed.Client(cluster) as client:
                yield client
        finally:
            cluster.close()
        return
    try:
        client = distributed.Client(address, timeout="20s")
    except (OSError, TimeoutError, ValueError) as error:
        raise InputError(f"cannot reach the Dask scheduler at {address!r}: {error}") from None
    with client:
        yield client


def run_on_dask(client: Client, task: Task, items: Iterable[Any], window: int | None = None) -> Iterator[Any]:
    """task(item) for each item, in order, on the client's workers, at most `window` at a time
    (default: twice the workers' threads)."""
    from distributed import as_completed

    window = window or max(2, 2 * sum(client.nthreads().values()))
    shared = client.scatter(task, broadcast=True, hash=False)  # sent once to each worker, not with every image
    pending = iter(enumerate(items))
    running = as_completed()
    order: dict[str, int] = {}

    def submit() -> None:
        for index, item in pending:
            future = client.submit(_run, shared, item, pure=False)
            order[future.key] = index
            running.add(future)
            return

    for _ in range(window):
        submit()
    done: dict[int, Any] = {}
    upcoming = 0
    try:
        for future in running:
            done[order.pop(future.key)] = future.result()  # a worker's exception is raised here
            future.release()
            submit()
            while upcoming in done:
                yield done.pop(upcoming)
                upcoming += 1
    finally:
        for future in running.futures:
            future.cancel()
        shared.release()


def _run(task: Task, item: Any) -> Any:
    key = (type(task), task)
    with _ready_lock:  # a worker with several threads sets each task up once
        if key not in _ready:
            task.setup()
            _ready[key] = task
        ready = _ready[key]
    return ready(item)
