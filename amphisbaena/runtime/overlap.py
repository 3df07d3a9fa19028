"""Overlapping the head with the host's work: the next calls run in workers while the last result is used."""

from __future__ import annotations

from collections import deque
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from typing import TypeVar

T = TypeVar("T")


def one_ahead(calls: Iterable[Callable[[], T]], threaded: bool = True, in_flight: int = 1) -> Iterator[T]:
    """The results of CALLS in order, each computed in a worker thread while the caller digests the
    one before (THREADED; else simply in turn). The head runs in onnxruntime and the digesting in
    large numpy operations, both of which release the GIL, so neither waits for the other.
    IN_FLIGHT calls run at once, each in its own worker, while the caller digests: more than one
    where the head, not the digesting, is the slower side."""
    if not threaded:
        yield from (call() for call in calls)
        return
    with ThreadPoolExecutor(max_workers=in_flight) as workers:
        pending: deque[Future[T]] = deque()
        for call in calls:
            pending.append(workers.submit(call))
            if len(pending) > in_flight:
                yield pending.popleft().result()
        while pending:
            yield pending.popleft().result()
