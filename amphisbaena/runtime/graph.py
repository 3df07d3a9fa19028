"""The candidate graph: the pairs the head scored and kept, and bounds on every pair it left out.

Rule of the proof held here: every pair (i, j) that is not an edge scores at most
min(row_bound[i], col_bound[j]). Streaming (`candidates`) sets the bounds from each row's and
column's (k+1)-th best score and from the geometry bounds of pairs never scored. The proof adds the
pairs whose bounds it cannot use as exact edges (`with_edges`); the bounds never change.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


@dataclass
class CandidateGraph:
    """Candidate pairs with their exact scores, plus upper bounds on every excluded pair's score."""

    rows: np.ndarray  # int64 (E,)
    cols: np.ndarray  # int64 (E,)
    scores: np.ndarray  # float64 (E,)
    row_bound: np.ndarray  # (N,) every excluded score in row i is <= row_bound[i] (-inf: none excluded)
    col_bound: np.ndarray  # (N,) every excluded score in column j is <= col_bound[j]
    scored_pairs: int | None = None  # pairs the head scored to build it; None: every pair
    # bool (E,): each row's and column's best few edges (`potentials`); None where not known, as after
    # with_edges, whose graphs are always re-solved from the previous round's duals, which need no core
    core: np.ndarray | None = None

    @property
    def size(self) -> int:
        return len(self.row_bound)

    def transposed(self) -> CandidateGraph:
        """The same graph with the rights as rows (for bounds by column)."""
        return CandidateGraph(self.cols, self.rows, self.scores, self.col_bound, self.row_bound, self.scored_pairs)

    @property
    def tolerance(self) -> float:
        """Slack allowed for float32 rounding of the scores, relative to their typical magnitude
        (not the largest: a few heavily penalised candidates must not loosen the proof)."""
        return 1e-5 * (1.0 + float(np.median(np.abs(self.scores))))

    def chosen(self, right_for_left: np.ndarray) -> np.ndarray:
        """Mask of the edges a matching uses (every chosen pair is a candidate edge)."""
        return right_for_left[self.rows] == self.cols

    def with_edges(self, rows: np.ndarray, cols: np.ndarray, scores: np.ndarray, scored: int) -> CandidateGraph:
        """The graph with the pairs (ROWS, COLS) (P,), none of them an edge yet, added with their exact SCORES;
        SCORED: the pairs the head scored to find them. The bounds stand: a pair that was under them still is."""
        return CandidateGraph(
            np.concatenate([self.rows, rows]),
            np.concatenate([self.cols, cols]),
            np.concatenate([self.scores, scores.astype(np.float64)]),
            self.row_bound,
            self.col_bound,
            None if self.scored_pairs is None else self.scored_pairs + scored,
        )


@dataclass(frozen=True)
class SparseSolution:
    """An optimal matching of a candidate graph and its duals: right_for_left, u (row_potential) and w
    (col_potential), each (N,). EXCLUDED_FLOOR: every pair outside the graph has slack u_i + w_j - s_ij at
    least this (-inf: only what the graph's bounds show), because the pairs whose bounds allowed less were
    scored and added (`proof.check`)."""

    right_for_left: np.ndarray
    row_potential: np.ndarray
    col_potential: np.ndarray
    excluded_floor: float = -np.inf

    @property
    def perfect(self) -> bool:
        """False for a maximum matching of a graph without a perfect one: right_for_left -1 on its unmatched rows,
        with feasible duals (`duals.solve_sparse`)."""
        return bool((self.right_for_left >= 0).all())
