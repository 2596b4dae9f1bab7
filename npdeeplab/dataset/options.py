"""The options that say where a dataset runs (--workers, --dask, --send-bytes), shared by
`segment` and `evaluate`, and the client or pool size they give."""

from __future__ import annotations

import argparse
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

from npdeeplab.dataset.runner import MANY_IMAGES, cores, default_workers
from npdeeplab.errors import InputError


def add_scale_options(parser: argparse.ArgumentParser) -> None:
    group = parser.add_argument_group("whole datasets: where the images run")
    group.add_argument("--workers", type=int, metavar="N",
                       help="worker processes, each loading the model once and running on one thread (default: one "
                            f"per core, {cores()} here, for more than {MANY_IMAGES} images; else 1); outputs are "
                            "identical")
    group.add_argument("--dask", metavar="ADDRESS|local:N",
                       help="run on a Dask cluster: a scheduler's address, or local:N for N local worker processes "
                            "(needs pip install 'npdeeplab[dask]')")
    group.add_argument("--send-bytes", action="store_true",
                       help="--dask: send the images' (and model's) bytes, for workers that do not share this "
                            "filesystem (default: paths)")


@dataclass(frozen=True)
class Where:
    workers: int
    client: Any  # a distributed.Client, or None

    def describe(self) -> str:
        if self.client is not None:
            return f"on Dask ({sum(self.client.nthreads().values())} worker threads)"
        return "in this process" if self.workers == 1 else f"on {self.workers} worker processes"


@contextmanager
def where_to_run(args: argparse.Namespace, images: int) -> Iterator[Where]:
    """The pool size or Dask client the options ask for; a local cluster is stopped afterwards."""
    if args.workers is not None and args.workers < 1:
        raise InputError(f"--workers must be 1 or more, got {args.workers}")
    if args.dask is not None and args.workers is not None:
        raise InputError("--workers and --dask exclude each other: a Dask cluster has its own workers")
    if args.send_bytes and args.dask is None:
        raise InputError("--send-bytes applies to --dask: pool workers share this filesystem")
    if args.dask is None:
        workers = args.workers if args.workers is not None else default_workers(images)
        yield Where(max(1, min(workers, images)), None)
        return
    from npdeeplab.dataset.cluster import dask_client

    with dask_client(args.dask) as client:
        yield Where(1, client)
