"""restore(): halves in, one-to-one pairing out, with every number a user sees."""

from __future__ import annotations

import os
import time
from dataclasses import asdict, dataclass, field
from functools import partial

import numpy as np

from amphisbaena.data import InputError
from amphisbaena.engines.base import Backend
from amphisbaena.runtime.assignment import (
    confidence_margins,
    dense_candidates,
    rows_needing_rescore,
    solve_dense,
    solve_sparse,
)
from amphisbaena.runtime.pruning import pruner_for, pruning_applies
from amphisbaena.runtime.scoring import TILE_ROWS, both_arms, one_ahead, rescore_rows, score_all, stream_candidates

DEFAULT_K = 32  # head_topk.onnx returns k + 1 = 33 per row and column of a tile
LARGE_K = 64  # from LARGE_N halves with pruning: more candidates spare proof rounds (20k: 12.8 s -> 11.5 s, 60k: 131 s -> 114 s)
LARGE_N = 10_000  # up to here k = 32 settles in one round (10k: 3.8 s against 4.3 s with k = 64)
MAX_ROUNDS = 8
DENSE_LIMIT = 20_000  # beyond this the dense fallback's N x N matrix would not be reasonable to hold


@dataclass
class AssignmentReport:
    """How the assignment was found and, for the sparse path, the optimality certificate."""

    method: str  # "sparse" (proven optimal for the full matrix) or "dense"
    k: int | None = None
    candidate_edges: int | None = None
    rounds: int = 0
    rescored_rows: int = 0
    added_edges: int = 0
    scored_pairs: int | None = None  # pairs the head scored; the rest were ruled out by their bounds
    proof: str = ""
    fallback_reason: str = ""
    total_score: float = 0.0


@dataclass
class RestoreResult:
    """The pairing plus what it cost; printed as text or JSON by the CLI."""

    right_for_left: np.ndarray
    confidence: np.ndarray  # per left: chosen score minus the best alternative for its row or column
    backend: str
    precision: str
    assignment: AssignmentReport
    seconds: dict[str, float] = field(default_factory=dict)
    correct: np.ndarray | None = None  # per left, when a key was given
    features: tuple[np.ndarray, np.ndarray] | None = field(default=None, repr=False)  # (left, right), for the report

    @property
    def count(self) -> int:
        return len(self.right_for_left)

    @property
    def accuracy(self) -> float | None:
        return None if self.correct is None else float(self.correct.mean())

    def least_confident(self, count: int = 10) -> list[dict]:
        order = np.argsort(self.confidence, kind="stable")[:count]
        return [{"left": int(i), "right": int(self.right_for_left[i]), "margin": round(float(self.confidence[i]), 4)} for i in order]

    def accuracy_by_coverage(self, coverages: tuple[float, ...] = (1.0, 0.99, 0.98, 0.95, 0.9, 0.8)) -> list[dict]:
        """Accuracy of the most confident fraction of matches: which matches are worth checking by hand."""
        if self.correct is None:
            return []
        order = np.argsort(-self.confidence, kind="stable")
        rows = []
        for coverage in coverages:
            kept = order[: max(1, round(coverage * self.count))]
            rows.append({"coverage": coverage, "accuracy": float(self.correct[kept].mean()), "min_margin": float(self.confidence[kept[-1]])})
        return rows

    def summary(self) -> dict:
        summary = {
            "count": self.count,
            "backend": self.backend,
            "precision": self.precision,
            "assignment": {key: value for key, value in asdict(self.assignment).items() if value not in (None, "")},
            "seconds": {stage: round(value, 4) for stage, value in self.seconds.items()},
        }
        summary["least_confident"] = self.least_confident()
        if self.correct is not None:
            summary["accuracy"] = self.accuracy
            summary["accuracy_by_coverage"] = self.accuracy_by_coverage()
        return summary


class Stopwatch:
    """Accumulates wall time per named stage."""

    def __init__(self) -> None:
        self.seconds: dict[str, float] = {}
        self._last = time.perf_counter()

    def lap(self, stage: str) -> None:
        now = time.perf_counter()
        self.seconds[stage] = self.seconds.get(stage, 0.0) + now - self._last
        self._last = now


def assign_dense(
    backend: Backend, left_features: np.ndarray, right_features: np.ndarray, watch: Stopwatch, reason: str = ""
) -> tuple[np.ndarray, np.ndarray, AssignmentReport]:
    scores = score_all(backend, left_features, right_features)
    watch.lap("head")
    right_for_left = solve_dense(scores)
    watch.lap("assignment")
    total = float(scores[np.arange(len(scores)), right_for_left].astype(np.float64).sum())
    margins = confidence_margins(dense_candidates(scores, right_for_left), right_for_left)
    return right_for_left, margins, AssignmentReport("dense", fallback_reason=reason, total_score=total)


def assign_sparse(
    backend: Backend, left_features: np.ndarray, right_features: np.ndarray, k: int, watch: Stopwatch, prune: bool = True
) -> tuple[np.ndarray, np.ndarray, AssignmentReport]:
    """Optimal assignment on a top-k candidate graph, proven optimal for the full score matrix.

    Widens k when the candidate graph has no perfect matching; rescores rows whose
    bound check fails and adds any violating pair; falls back to dense only if
    that does not settle within MAX_ROUNDS.
    """
    n = len(left_features)
    pruner = pruner_for(backend, left_features, right_features) if prune else None
    graph = stream_candidates(backend, left_features, right_features, k, pruner=pruner)
    watch.lap("head")
    report = AssignmentReport("sparse", k=k)
    previous = None  # the last round's solution, while the graph has only gained edges since
    for round_number in range(1, MAX_ROUNDS + 1):
        report.rounds = round_number
        solution = solve_sparse(graph, previous)
        if solution is None:
            if k >= n:
                break
            k, previous = min(2 * k, n), None
            report.k = k
            watch.lap("assignment")
            graph = stream_candidates(backend, left_features, right_features, k, pruner=pruner)
            watch.lap("head")
            continue
        suspects = rows_needing_rescore(graph, solution)
        if pruner is not None:  # rows of one group share the rights their bounds cannot rule out
            suspects = suspects[np.argsort(pruner.group_of[suspects], kind="stable")]
        watch.lap("assignment")
        if len(suspects):
            chunks = np.array_split(suspects, range(TILE_ROWS, len(suspects), TILE_ROWS))
            strips = one_ahead(  # a strip at a time (and the next one scoring): memory stays O(TILE_ROWS * N)
                (partial(rescore_rows, backend, left_features, right_features, chunk, solution, pruner) for chunk in chunks),
                backend.any_thread,
            )
            graph, added = graph.absorb_rows(suspects, strips, solution)
            watch.lap("head")
            report.rescored_rows += len(suspects)
            report.added_edges += added
            if added:
                previous = solution
                continue
        right_for_left = solution.right_for_left
        report.candidate_edges = len(graph.rows)
        report.scored_pairs = graph.scored_pairs
        report.total_score = float(graph.scores[graph.chosen(right_for_left)].sum())
        report.proof = (
            "dual potentials u, w with u_i + w_j = s_ij on all chosen pairs and u_i + w_j >= s_ij on every pair: "
            f"on {len(graph.rows)} candidate edges exactly, on excluded pairs by top-{report.k} score bounds"
            + (" and geometry bounds on the pairs never scored" if graph.scored_pairs is not None else "")
            + (f" or exact rescoring of {report.rescored_rows} rows" if report.rescored_rows else "")
        )
        margins = confidence_margins(graph, right_for_left)
        watch.lap("assignment")
        return right_for_left, margins, report
    if n > DENSE_LIMIT:
        raise RuntimeError(f"sparse assignment did not settle after {report.rounds} rounds and N={n} is too large for the dense fallback")
    return assign_dense(backend, left_features, right_features, watch, reason=f"sparse path unsettled after {report.rounds} rounds (k={k})")


def available_memory_bytes() -> int:
    """MemAvailable from /proc/meminfo, else total physical memory."""
    try:
        with open("/proc/meminfo") as meminfo:
            for line in meminfo:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    return os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")


def estimate_peak_bytes(n: int, feature_size: int, method: str, k: int = DEFAULT_K) -> int:
    """Upper estimate of what restore() allocates beyond the halves themselves."""
    features = 2 * n * feature_size * 4
    if method == "dense":
        return features + n * n * (4 + 8)  # float32 scores + scipy's float64 copy
    strip = TILE_ROWS * n * 32  # a strip of scores with its masks and gathers, or of rescored rows
    candidates = 2 * n * (k + 1) * (4 + 8) * 3  # best-per-item arrays, merges, the sparse graph
    return features + strip + candidates


def check_memory(n: int, feature_size: int, method: str, k: int = DEFAULT_K) -> None:
    """Refuse before any heavy work when the run would not fit in the memory available now."""
    needed, available = estimate_peak_bytes(n, feature_size, method, k), available_memory_bytes()
    if needed > 0.8 * available:
        hint = "; use --assignment sparse, which streams" if method == "dense" else ""
        raise InputError(
            f"restoring {n} pairs with {method} assignment needs about {needed / 2**30:.1f} GiB, "
            f"only {available / 2**30:.1f} GiB available{hint}"
        )


def restore(
    backend: Backend,
    left: np.ndarray,
    right: np.ndarray,
    key: np.ndarray | None = None,
    method: str = "sparse",
    k: int | None = None,
    prune: bool = True,
) -> RestoreResult:
    """Pair every left half with one right half so that the total score is maximal. PRUNE: never
    score the pairs the geometry bound rules out (sparse only; the result is the same). K:
    candidates kept per left and per right (default: LARGE_K for more than LARGE_N halves where
    pruning applies, else DEFAULT_K)."""
    if k is None:
        k = LARGE_K if prune and pruning_applies(backend) and len(left) > LARGE_N else DEFAULT_K
    check_memory(len(left), backend.feature_size, method, k)
    watch = Stopwatch()
    left_features, right_features = both_arms(backend, left, right)
    watch.lap("arms")
    if method == "dense":
        right_for_left, margins, report = assign_dense(backend, left_features, right_features, watch)
    else:
        right_for_left, margins, report = assign_sparse(backend, left_features, right_features, max(k, 2), watch, prune)
    result = RestoreResult(
        right_for_left, margins, backend.name, backend.precision, report, watch.seconds, features=(left_features, right_features)
    )
    if key is not None:
        result.correct = right_for_left == key
    return result
