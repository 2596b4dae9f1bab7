"""Map a task over items in order: here (one process), in a process pool, or on a Dask cluster.

A task is a picklable object with setup() (load the model: once per process) and __call__(item).
Results come back in the items' order whatever order the workers finish in, so the caller writes
them exactly as a serial run would.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from typing import TYPE_CHECKING, Any, Protocol

from npdeeplab.runtime.threads import default_threads as cores

if TYPE_CHECKING:
    from distributed import Client

MANY_IMAGES = 100  # more than this, and a run uses every core by default (a pool takes ~1 s to start)


class Task(Protocol):
    def setup(self) -> None: ...

    def __call__(self, item: Any) -> Any: ...


def default_workers(images: int) -> int:
    """One worker per core when there are many images, else one (a pool's start costs seconds)."""
    return cores() if images > MANY_IMAGES and cores() > 1 else 1


def run_ordered(
    task: Task, items: Iterable[Any], *, workers: int = 1, client: Client | None = None, window: int | None = None
) -> Iterator[Any]:
    """task(item) for each item, in order: on the Dask client if given, else in a pool of `workers`
    processes (each with one Numba and BLAS thread), else here."""
    if client is not None:
        from npdeeplab.dataset.cluster import run_on_dask

        yield from run_on_dask(client, task, items, window=window)
    elif workers > 1:
        from npdeeplab.dataset.pool import run_in_pool

        yield from run_in_pool(task, items, workers)
    else:
        task.setup()
        for item in items:
            yield task(item)
