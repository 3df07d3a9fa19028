"""Overlapping the head with the host's work: the next calls run in workers while the last result is used."""

from __future__ import annotations

import threading
from collections import deque
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor, TimeoutError
from importlib import import_module
from typing import TypeVar

T = TypeVar("T")
WAKE_SECONDS = 0.2  # how often a wait for a worker comes back to Python code


def one_ahead(calls: Iterable[Callable[[], T]], threaded: bool = True, in_flight: int = 1) -> Iterator[T]:
    """The results of CALLS in order, each computed in a worker thread while the caller digests the
    one before (THREADED; else simply in turn). The head runs in onnxruntime and the digesting in
    large numpy operations, both of which release the GIL, so neither waits for the other.
    IN_FLIGHT calls run at once, each in its own worker, while the caller digests: more than one
    where the head, not the digesting, is the slower side."""
    if not threaded:
        yield from (call() for call in calls)
        return
    workers = ThreadPoolExecutor(max_workers=in_flight)
    pending: deque[Future[T]] = deque()
    try:
        for call in calls:
            pending.append(workers.submit(call))
            if len(pending) > in_flight:
                yield _result(pending.popleft())
        while pending:
            yield _result(pending.popleft())
    finally:  # an interrupt or error: drop the calls not started, wait for none of those running
        workers.shutdown(wait=not pending, cancel_futures=True)


def _result(future: Future[T]) -> T:
    """FUTURE's result, waited for in short slices: a signal (Ctrl-C) that lands on a worker thread
    reaches the main thread only when it runs Python code, which a plain wait would delay until the
    call is done."""
    while True:
        try:
            return future.result(timeout=WAKE_SECONDS)
        except TimeoutError:
            continue


def import_beside(module: str) -> threading.Thread:
    """Start importing MODULE in a worker thread, so that a long import (scipy's) runs while the caller
    waits in native code that releases the GIL (the arms). The caller's own import of MODULE later waits
    for this one to finish; where it failed, that import raises the error itself, so none is lost here."""
    worker = threading.Thread(target=_import_quietly, args=(module,), name=f"import {module}", daemon=True)
    worker.start()
    return worker


def _import_quietly(module: str) -> None:
    try:
        import_module(module)
    except Exception:  # noqa: BLE001  (the caller's own import of MODULE raises it, with its traceback)
        return
