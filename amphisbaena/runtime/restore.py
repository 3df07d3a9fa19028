"""restore(): halves in, one-to-one pairing out, with every number a user sees.

The path of the halves: arms (`features`) -> a `PairScorer` with its geometry pruner -> the
assignment and its proof (`assignment`) -> a `RestoreResult`.
"""

from __future__ import annotations

import numpy as np

from amphisbaena.engines.base import Backend
from amphisbaena.progress import Progress
from amphisbaena.runtime.features import both_arms
from amphisbaena.runtime.memory import check_memory
from amphisbaena.runtime.overlap import import_beside
from amphisbaena.runtime.pruning import pruning_applies
from amphisbaena.runtime.results import RestoreResult, Stopwatch
from amphisbaena.runtime.scorer import PairScorer
from amphisbaena.shapes import DEFAULT_K, LARGE_K, LARGE_N

ASSIGNMENT = "amphisbaena.runtime.assignment"  # with the matcher, duals and regrets: every module that needs scipy


def restore(
    backend: Backend,
    left: np.ndarray,
    right: np.ndarray,
    key: np.ndarray | None = None,
    method: str = "sparse",
    k: int | None = None,
    prune: bool = True,
    progress: Progress | None = None,
) -> RestoreResult:
    """Pair every left half with one right half so that the total score is maximal. PRUNE: never
    score the pairs the geometry bound rules out (sparse only; the result is the same). K:
    candidates kept per left and per right (default: LARGE_K for more than LARGE_N halves where
    pruning applies, else DEFAULT_K). PROGRESS hears the arms, the head and the proof rounds."""
    if k is None:
        k = LARGE_K if prune and pruning_applies(backend) and len(left) > LARGE_N else DEFAULT_K
    check_memory(len(left), backend.feature_size, method, k, progress)
    watch = Stopwatch()
    import_beside(ASSIGNMENT)  # scipy's import, a few tenths of a second, runs while the arms do
    left_features, right_features = both_arms(backend, left, right, progress)
    watch.lap("arms")
    from amphisbaena.runtime.assignment import assign_dense, assign_sparse
    if method == "dense":
        right_for_left, confidence, report = assign_dense(PairScorer(backend, left_features, right_features, progress=progress), watch)
    else:
        scorer = PairScorer.pruned(backend, left_features, right_features, prune, progress)
        right_for_left, confidence, report = assign_sparse(scorer, max(k, 2), watch)
    result = RestoreResult(
        right_for_left, confidence, backend.name, backend.precision, report, watch.seconds, features=(left_features, right_features)
    )
    if key is not None:
        result.correct = right_for_left == key
    return result
