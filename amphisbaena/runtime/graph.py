"""The candidate graph: the pairs the head scored and kept, and bounds on every pair it left out.

Rule of the proof held here: every pair (i, j) that is not an edge scores at most
min(row_bound[i], col_bound[j]). Streaming (`candidates`) sets the bounds from each row's and
column's (k+1)-th best score and from the geometry bounds of pairs never scored; rescoring a row
(`absorb_rows`, every pair of it scored or bounded under the duals) replaces its bound with its
largest score still left out.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

import numpy as np

from amphisbaena.runtime.arrays import nonzero_2d


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
    # absorb_rows, whose graphs are always re-solved from the previous round's duals, which need no core
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

    def absorb_rows(self, rows: np.ndarray, strips: Iterable[RescoredStrip], solution: SparseSolution) -> tuple[CandidateGraph, int]:
        """Fold rescored ROWS back in: every pair the duals do not cover becomes an edge, and each row's
        bound tightens to the largest score still excluded.

        STRIPS cover consecutive slices of ROWS, one at a time, so memory stays at one strip; the graph
        is rebuilt once. Returns it and the edges it gained."""
        n, tol = self.size, self.tolerance
        position = np.full(n, -1)
        position[rows] = np.arange(len(rows))
        on_rows = position[self.rows] >= 0
        held_position, held_col = position[self.rows[on_rows]], self.cols[on_rows]
        order = np.argsort(held_position, kind="stable")
        held_position, held_col = held_position[order], held_col[order]
        column_in_block = np.full(n, -1)
        row_bound = self.row_bound.copy()
        new_rows, new_cols, new_scores, scored_total, start = [], [], [], 0, 0
        for strip in strips:
            stop = start + strip.length
            lo, hi = np.searchsorted(held_position, [start, stop])
            strip_held_row, strip_held_col = held_position[lo:hi] - start, held_col[lo:hi]
            for block in strip.blocks:
                chunk = rows[start + block.positions]
                row_in_block = np.full(strip.length, -1)
                row_in_block[block.positions] = np.arange(len(block.positions))
                column_in_block[block.cols] = np.arange(len(block.cols))
                held_r, held_c = row_in_block[strip_held_row], column_in_block[strip_held_col]
                held = (held_r >= 0) & (held_c >= 0)
                column_in_block[block.cols] = -1
                excluded = np.ones(block.scores.shape, dtype=bool)
                excluded[held_r[held], held_c[held]] = False
                covered = block.scores <= solution.row_potential[chunk, None] + solution.col_potential[None, block.cols] + tol
                new_r, new_c = nonzero_2d(excluded & ~covered)
                excluded[new_r, new_c] = False
                largest = np.where(excluded, block.scores, -np.inf).max(axis=1, initial=-np.inf)
                row_bound[chunk] = np.maximum(largest, block.unscored_bound)
                new_rows.append(chunk[new_r])
                new_cols.append(block.cols[new_c])
                new_scores.append(block.scores[new_r, new_c].astype(np.float64))
            scored_total += strip.scored
            start = stop
        gained = sum(len(part) for part in new_rows)
        graph = CandidateGraph(
            np.concatenate([self.rows, *new_rows]),
            np.concatenate([self.cols, *new_cols]),
            np.concatenate([self.scores, *new_scores]),
            row_bound,
            self.col_bound,
            None if self.scored_pairs is None else self.scored_pairs + scored_total,
        )
        return graph, gained


@dataclass(frozen=True)
class RescoredBlock:
    """Exact scores of some rows of a rescored strip against some columns; each of those rows scores
    at most UNSCORED_BOUND on every other column, a bound the duals already cover."""

    positions: np.ndarray  # (R,) the rows, as positions in the strip
    cols: np.ndarray  # (C,) the columns scored
    scores: np.ndarray  # (R, C) their exact scores
    unscored_bound: np.ndarray | float  # (R,) or one for all: bound on every column not in COLS (-inf: none)


@dataclass(frozen=True)
class RescoredStrip:
    """A slice of the rows sent back for the proof: LENGTH rows, covered by BLOCKS, and how many
    pairs the head scored for it."""

    length: int
    blocks: list[RescoredBlock]
    scored: int

    @classmethod
    def dense(cls, scores: np.ndarray) -> RescoredStrip:
        """Whole rows: SCORES (R, N), every pair scored."""
        every = RescoredBlock(np.arange(len(scores)), np.arange(scores.shape[1]), scores, -np.inf)
        return cls(len(scores), [every], scores.size)


@dataclass
class SparseSolution:
    right_for_left: np.ndarray
    row_potential: np.ndarray
    col_potential: np.ndarray
