"""Restoring unequal or incomplete sets: some halves have no partner.

The pairing is a rectangular assignment with a "no partner" option: a pair is
made only where its score beats the no-partner threshold, which export
calibrates on held-out training digits (see `runtime.calibrate`). Candidates
are the streamed top-k of every left and every right, so memory stays as in
the one-to-one path.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
from scipy.sparse import csr_matrix
from scipy.sparse.csgraph import min_weight_full_bipartite_matching

from amphisbaena.engines.base import Backend
from amphisbaena.progress import Progress
from amphisbaena.runtime.features import both_arms
from amphisbaena.runtime.memory import check_memory
from amphisbaena.runtime.results import Stopwatch, backend_line, seconds_line
from amphisbaena.runtime.scorer import PairScorer
from amphisbaena.shapes import DEFAULT_K


def precision_recall(right_for_left: np.ndarray, key: np.ndarray) -> tuple[int, int, int]:
    """(correct, made, present): right pairs made, pairs made, and true pairs present in the sets;
    -1 marks a left without a partner, both in the result and in the key."""
    made = right_for_left >= 0
    return int((made & (right_for_left == key)).sum()), int(made.sum()), int((key >= 0).sum())


@dataclass
class PartialResult:
    """right_for_left with -1 for lefts left alone, plus precision and recall when keyed."""

    right_for_left: np.ndarray
    scores: np.ndarray  # score of each made pair (nan where no partner)
    n_right: int
    no_partner_score: float
    backend: str
    precision: str
    k: int
    seconds: dict[str, float] = field(default_factory=dict)
    key: np.ndarray | None = None

    @property
    def matched(self) -> np.ndarray:
        return self.right_for_left >= 0

    @property
    def unmatched_left(self) -> np.ndarray:
        return np.flatnonzero(~self.matched)

    @property
    def unmatched_right(self) -> np.ndarray:
        used = np.zeros(self.n_right, dtype=bool)
        used[self.right_for_left[self.matched]] = True
        return np.flatnonzero(~used)

    def quality(self) -> dict | None:
        """Precision: correct pairs among those made. Recall: correct pairs among the true pairs present."""
        if self.key is None:
            return None
        correct, made, present = precision_recall(self.right_for_left, self.key)
        alone_right = (self.key < 0) & ~self.matched
        return {
            "pairs_made": made,
            "true_pairs": present,
            "correct": correct,
            "precision": correct / made if made else 1.0,
            "recall": correct / present if present else 1.0,
            "lefts_without_partner_left_alone": int(alone_right.sum()),
            "lefts_without_partner": int((self.key < 0).sum()),
        }

    def text(self, fallbacks: list[str]) -> list[str]:
        """What the CLI prints; FALLBACKS: why faster backends were skipped (in full in --json)."""
        made = f"{len(self.right_for_left)} lefts, {self.n_right} rights: made {int(self.matched.sum())} pairs"
        lines = [
            backend_line(made, self.backend, self.precision, fallbacks),
            f"no partner (score below {self.no_partner_score:.3f}): {len(self.unmatched_left)} lefts, {len(self.unmatched_right)} rights",
            seconds_line(self.seconds),
        ]
        quality = self.quality()
        if quality is not None:
            lines.append(
                f"precision {quality['precision']:.4f} ({quality['correct']}/{quality['pairs_made']} pairs made are right), "
                f"recall {quality['recall']:.4f} (of {quality['true_pairs']} true pairs)"
            )
        return lines

    def summary(self) -> dict:
        summary = {
            "lefts": len(self.right_for_left),
            "rights": self.n_right,
            "pairs_made": int(self.matched.sum()),
            "unmatched_left": self.unmatched_left.tolist()[:100],
            "unmatched_right": self.unmatched_right.tolist()[:100],
            "unmatched_counts": {"left": len(self.unmatched_left), "right": len(self.unmatched_right)},
            "no_partner_score": self.no_partner_score,
            "assignment": f"rectangular with a no-partner option, optimal on the top-{self.k} candidate graph",
            "backend": self.backend,
            "precision_of_model": self.precision,
            "seconds": {stage: round(value, 4) for stage, value in self.seconds.items()},
        }
        quality = self.quality()
        if quality is not None:
            summary["quality"] = quality
        return summary


def solve_with_no_partner(
    rows: np.ndarray, cols: np.ndarray, scores: np.ndarray, n_left: int, n_right: int, no_partner_score: float
) -> np.ndarray:
    """right_for_left (-1: no partner) maximising the total score of the pairs made plus
    NO_PARTNER_SCORE / 2 for every half left alone, on the candidate edges (ROWS, COLS, SCORES).

    So a pair is made only where it beats leaving both halves alone (s_ij > NO_PARTNER_SCORE),
    and the sets may differ in size. It is a perfect matching on an augmented graph: lefts and
    "right j alone" rows against rights and "left i alone" columns; "left i alone" meets
    "right j alone" (at 0) along the transposed candidate edges, so every solution of the
    original problem is a perfect matching there and vice versa.
    """
    alone = 0.5 * no_partner_score
    lefts, rights = np.arange(n_left), np.arange(n_right)
    all_rows = np.concatenate([rows, lefts, n_left + rights, n_left + cols])
    all_cols = np.concatenate([cols, n_right + lefts, rights, n_right + rows])
    values = np.concatenate([scores, np.full(n_left + n_right, alone), np.zeros(len(rows))])
    cost = (values.max() - values) + 1.0  # every perfect matching has n_left + n_right edges: a shift changes nothing
    size = n_left + n_right
    matrix = csr_matrix((cost, (all_rows, all_cols)), shape=(size, size))
    _, matched = min_weight_full_bipartite_matching(matrix)
    right_for_left = matched[:n_left].astype(np.int64)
    right_for_left[right_for_left >= n_right] = -1
    return right_for_left


def restore_partial(
    backend: Backend,
    left: np.ndarray,
    right: np.ndarray,
    no_partner_score: float,
    key: np.ndarray | None = None,
    k: int | None = None,
    progress: Progress | None = None,
) -> PartialResult:
    """Pair lefts with rights where the score beats NO_PARTNER_SCORE, each half at most once
    (on the top-K candidates of every half, default DEFAULT_K)."""
    k = DEFAULT_K if k is None else k
    check_memory(max(len(left), len(right)), backend.feature_size, "sparse", k, progress)
    watch = Stopwatch()
    left_features, right_features = both_arms(backend, left, right, progress)
    watch.lap("arms")
    graph = PairScorer.pruned(backend, left_features, right_features, progress=progress).candidates(k)
    watch.lap("head")
    right_for_left = solve_with_no_partner(graph.rows, graph.cols, graph.scores, len(left), len(right), no_partner_score)
    scores = np.full(len(left), np.nan)
    chosen = graph.chosen(right_for_left)
    scores[graph.rows[chosen]] = graph.scores[chosen]
    watch.lap("assignment")
    return PartialResult(
        right_for_left, scores, len(right), no_partner_score, backend.name, backend.precision, k, watch.seconds, key
    )
