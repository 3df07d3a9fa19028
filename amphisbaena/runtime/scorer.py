"""PairScorer: everything that scores pairs of one restore, held once.

The backend, both sides' features, the tile plan and the geometry pruner travel together through
every stage that runs the head: streaming candidates, scoring blocks and strips, and the proof's
checks. Memory stays bounded by a tile: the head's hidden tensor is at most rows x cols x H,
never N x N x H.
"""

from __future__ import annotations

from collections.abc import Iterator

import numpy as np

from amphisbaena.engines.base import Backend
from amphisbaena.progress import Progress
from amphisbaena.runtime import candidates
from amphisbaena.runtime.graph import CandidateGraph
from amphisbaena.runtime.pruning import GeometryPruner, pruner_for
from amphisbaena.shapes import TilePlan


class PairScorer:
    """Scores (left, right) pairs of one restore with BACKEND.

    left, right: (Nl, D) and (Nr, D) float32 arm features. pruner: the geometry bounds
    (`pruning.GeometryPruner`), or None to score every pair."""

    def __init__(
        self,
        backend: Backend,
        left: np.ndarray,
        right: np.ndarray,
        pruner: GeometryPruner | None = None,
        tiles: TilePlan | None = None,
        progress: Progress | None = None,
    ) -> None:
        self.backend = backend
        self.progress = progress or Progress()
        self.left = left
        self.right = right
        self.pruner = pruner
        self.tiles = tiles or TilePlan()

    @classmethod
    def pruned(cls, backend: Backend, left: np.ndarray, right: np.ndarray, prune: bool = True, progress: Progress | None = None) -> PairScorer:
        """A scorer with the geometry pruner where the head has a penalty to prune with (and PRUNE)."""
        return cls(backend, left, right, pruner_for(backend, left, right) if prune else None, progress=progress)

    @property
    def size(self) -> tuple[int, int]:
        return len(self.left), len(self.right)

    def candidates(self, k: int) -> CandidateGraph:
        """The candidate graph of every left's and right's best k (`candidates.stream`)."""
        return candidates.stream(self, k)

    def strips(self) -> Iterator[tuple[int, np.ndarray]]:
        """(first_row, scores (rows, Nr)) strip by strip, each strip filled tile by tile; the strip's
        buffer is reused, so a caller keeps a copy of what it needs."""
        rows_per_strip, cols_per_tile = self.tiles.rows, self.tiles.cols
        strip = np.empty((rows_per_strip, len(self.right)), dtype=np.float32)
        for r0 in range(0, len(self.left), rows_per_strip):
            rows = self.left[r0 : r0 + rows_per_strip]
            for c0 in range(0, len(self.right), cols_per_tile):
                strip[: len(rows), c0 : c0 + cols_per_tile] = self.backend.head(rows, self.right[c0 : c0 + cols_per_tile])
            yield r0, strip[: len(rows)]

    def all(self) -> np.ndarray:
        """The dense (Nl, Nr) score matrix; only for N small enough to hold it."""
        scores = np.empty(self.size, dtype=np.float32)
        for r0, strip in self.strips():
            scores[r0 : r0 + len(strip)] = strip
        return scores

    def rows(self, rows: np.ndarray) -> np.ndarray:
        """Exact scores (len(ROWS), Nr) of the given lefts against every right."""
        return PairScorer(self.backend, self.left[rows], self.right, tiles=self.tiles).all()

    def columns(self, lefts: np.ndarray, cols: np.ndarray, beside_host: bool = False) -> np.ndarray:
        """Exact scores (len(LEFTS), len(COLS)) of the lefts LEFTS against the rights COLS, in tiles.
        BESIDE_HOST: called from a worker while the host digests the last block (`Backend.head`)."""
        left_rows = self.left[lefts]
        scores = np.empty((len(lefts), len(cols)), dtype=np.float32)
        rows, width = self.tiles.rows, self.tiles.cols
        for c0 in range(0, len(cols), width):
            right_rows = self.right[cols[c0 : c0 + width]]
            for r0 in range(0, len(lefts), rows):
                scores[r0 : r0 + rows, c0 : c0 + width] = self.backend.head(left_rows[r0 : r0 + rows], right_rows, beside_host=beside_host)
        return scores

    def block(self, lefts: np.ndarray, cols: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """(LEFTS, COLS, their scores): one block of the pruned stream, computed in a worker thread."""
        return lefts, cols, self.columns(lefts, cols, beside_host=True)
