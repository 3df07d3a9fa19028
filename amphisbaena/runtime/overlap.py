"""Overlapping slow work with the host's: the next head call runs in a worker while the last result is
used, and the solver's imports load while the arms run."""

from __future__ import annotations

import importlib
import threading
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import ThreadPoolExecutor
from typing import TypeVar

# What the sparse assignment imports that takes long to load (scipy.sparse and csgraph: about a tenth of a
# second, docs/performance.md). Third-party modules only: they never import this package, so an import
# here and one in the main thread cannot wait on each other.
SOLVER_MODULES = ("scipy.sparse", "scipy.sparse.csgraph")

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


def import_in_background(modules: Iterable[str] = SOLVER_MODULES) -> threading.Thread:
    """Start importing MODULES in a daemon thread and return it. A later import of any of them in
    another thread waits for this one to finish it (Python's per-module import locks), so nothing
    changes but when the loading happens: here while the arms run in onnxruntime, which releases
    the GIL. An import that fails here fails again, and is reported, where the module is used."""

    def load() -> None:
        for name in modules:
            try:
                importlib.import_module(name)
            except ImportError:
                return

    thread = threading.Thread(target=load, name="amphisbaena-imports", daemon=True)
    thread.start()
    return thread
