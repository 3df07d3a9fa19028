"""The exact maximum-score perfect matching of a sparse graph, in phases that each cost one pass over it.

A primal-dual method (Hungarian, with many augmentations per phase):

- Dual potentials u (rows) and w (columns) stay feasible throughout: u_i + w_j >= s_ij on every edge.
  An edge is tight where the reduced cost r_ij = u_i + w_j - s_ij is zero (within rounding).
- Each phase takes a maximum matching of the tight edges (scipy's Hopcroft-Karp). A perfect one is
  optimal: the duals certify it.
- Otherwise one multi-source Dijkstra (scipy) from every unmatched row, over the residual graph with
  the reduced costs as lengths, gives each node its distance d. Raising u by d and lowering w by d
  keeps the duals feasible and makes every shortest path tight, so the next phase's matching
  augments along all of those that are disjoint: a few dozen phases instead of one search per row,
  as scipy's own LAPJVsp makes (each of which scans every column per distance level: about N^3 at
  scale; docs/performance.md).

The start decides the number of phases: an auction's prices (`auction`), or the optimal duals of an
earlier graph with fewer edges (a re-solve: only the rows its new edges violate become unmatched).
"""

from __future__ import annotations

import numpy as np
from scipy.sparse import csr_matrix
from scipy.sparse.csgraph import dijkstra, maximum_bipartite_matching

from amphisbaena.runtime.arrays import in_row_order
from amphisbaena.runtime.auction import auction_prices

LIMIT_REACH = 4.0  # a phase's Dijkstra reaches this many times the typical distance to an unmatched column


def _tight_tolerance(scores: np.ndarray) -> float:
    """Rounding allowed in a reduced cost of zero: the duals are sums of many float64 distances."""
    return 1e-12 * (1.0 + float(np.abs(scores).max()))


def optimal_matching(
    rows: np.ndarray, cols: np.ndarray, scores: np.ndarray, n: int, start_col_potential: np.ndarray | None = None
) -> tuple[np.ndarray, np.ndarray, np.ndarray] | None:
    """The perfect matching of N rows and N columns on the edges (ROWS, COLS) (E,) that maximises the
    total of SCORES (E,), with duals certifying it: (right_for_left (N,), u (N,), w (N,)), u_i + w_j >=
    s_ij on every edge and equal on the matching. None if the graph has no perfect matching.

    START_COL_POTENTIAL (N,): column duals to start from, such as an earlier solution's for a subgraph;
    without it an auction finds them."""
    if n == 0:
        return np.zeros(0, dtype=np.int64), np.zeros(0), np.zeros(0)
    rows, cols, scores = in_row_order(rows, cols, scores.astype(np.float64, copy=False))
    counts = np.bincount(rows, minlength=n)
    if not counts.all():
        return None
    indptr = np.concatenate([[0], np.cumsum(counts)])
    w = auction_prices(indptr, cols, scores, n) if start_col_potential is None else start_col_potential.astype(np.float64)
    u = np.maximum.reduceat(scores - w[cols], indptr[:-1])  # the least feasible u for these w
    tolerance = _tight_tolerance(scores)
    residual = _ResidualGraph(indptr, cols, n)
    limit = np.inf
    reduced = residual.row_edge_lengths  # the reduced costs live where the Dijkstra reads them
    while True:
        np.add(u[rows], w[cols], out=reduced)
        reduced -= scores
        tight = reduced <= tolerance
        tight_indptr = np.concatenate([[0], np.cumsum(np.add.reduceat(tight, indptr[:-1]))])
        tight_graph = csr_matrix((np.ones(tight_indptr[-1], dtype=np.int8), cols[tight], tight_indptr), shape=(n, n))
        right_for_left = maximum_bipartite_matching(tight_graph, perm_type="column").astype(np.int64)
        unmatched = np.flatnonzero(right_for_left < 0)
        if len(unmatched) == 0:
            return right_for_left, u, w
        np.maximum(reduced, 0.0, out=reduced)  # -rounding: lengths must not be negative
        found = residual.distances(right_for_left, unmatched, limit)
        if found is None:
            return None
        distance, to_open_columns = found
        limit = LIMIT_REACH * float(to_open_columns[min(len(to_open_columns) - 1, len(unmatched) // 2)]) + tolerance
        u += distance[:n]
        w -= distance[n:]


class _ResidualGraph:
    """The residual graph of a matching over fixed edges: nodes 0..N-1 are the rows, N..2N-1 the
    columns; every edge row -> column, and each matched column -> its row at length 0. (An edge from a
    row to its own column is harmless: the row is reached only through that column, at its distance.)"""

    def __init__(self, indptr: np.ndarray, cols: np.ndarray, n: int) -> None:
        """INDPTR (N+1,) and COLS (E,): the edges in row order. Each column has one edge out, to its
        row, or to itself while it is open (a loop that changes no distance)."""
        index_type = np.int32 if len(cols) + 2 * n < np.iinfo(np.int32).max else np.int64
        edges = len(cols)
        self.n, self.edges = n, edges
        self.graph = csr_matrix(
            (
                np.zeros(edges + n),
                np.concatenate([cols + n, np.arange(n, 2 * n)]).astype(index_type),
                np.concatenate([indptr, edges + np.arange(1, n + 1)]).astype(index_type),
            ),
            shape=(2 * n, 2 * n),
        )

    @property
    def row_edge_lengths(self) -> np.ndarray:
        """(E,) the lengths of the edges row -> column, in row order: a view to write in place."""
        return self.graph.data[: self.edges]

    def distances(self, right_for_left: np.ndarray, unmatched: np.ndarray, limit: float) -> tuple[np.ndarray, np.ndarray] | None:
        """(2N,) every node's distance from the nearest UNMATCHED row, the edges row -> column having
        `row_edge_lengths` (the reduced costs), shifted so that the farthest nodes move by 0; and the sorted
        distances to the unmatched columns reached. Nodes beyond LIMIT get the largest distance found,
        which keeps the duals feasible: anything beyond it is farther. LIMIT grows until some unmatched
        column is reached; None if none can be: the graph has no perfect matching."""
        n, edges = self.n, self.edges
        open_columns = np.ones(n, dtype=bool)
        open_columns[right_for_left[right_for_left >= 0]] = False
        matched_rows = np.flatnonzero(right_for_left >= 0)
        self.graph.indices[edges + right_for_left[matched_rows]] = matched_rows
        self.graph.indices[edges:][open_columns] = n + np.flatnonzero(open_columns)
        while True:
            distance = dijkstra(self.graph, directed=True, indices=unmatched, min_only=True, limit=limit)
            to_open = distance[n:][open_columns]
            to_open = np.sort(to_open[np.isfinite(to_open)])
            if len(to_open):
                break
            if not np.isfinite(limit):
                return None
            limit = np.inf if limit > 1e30 else max(16 * limit, 1.0)
        reached = np.isfinite(distance)
        farthest = distance[reached].max()
        distance[~reached] = farthest
        return distance - farthest, to_open
