"""Overlapping the head with the host's work: the next call runs in a worker while the last result is used."""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import ThreadPoolExecutor
from typing import TypeVar

T = TypeVar("T")


def one_ahead(calls: Iterable[Callable[[], T]], threaded: bool = True) -> Iterator[T]:
    """The results of CALLS in order, each computed in a worker thread while the caller digests the
    one before (THREADED; else simply in turn). The head runs in onnxruntime and the digesting in
    large numpy operations, both of which release the GIL, so neither waits for the other."""
    if not threaded:
        yield from (call() for call in calls)
        return
    with ThreadPoolExecutor(max_workers=1) as worker:
        pending = None
        for call in calls:
            future = worker.submit(call)
            if pending is not None:
                yield pending.result()
            pending = future
        if pending is not None:
            yield pending.result()
