"""The residual graph the matcher's phases search, and its two ways of moving the duals.

Nodes 0..N-1 are the rows, N..2N-1 the columns, and node 2N a source that reaches chosen rows at chosen lengths.
Every edge goes row -> column at its reduced cost, and each matched column -> its row at length 0.

- `distances`: one Dijkstra from every unmatched row at once. Each node moves by its distance from the nearest of
  them, which makes tight every edge of the shortest-path forest. Where many rows must cross one crowded region,
  that region belongs to the tree of the one row nearest to it, and a phase places only a few rows.
- `augment_along_shortest_paths`: the same search for the last few rows, augmenting along each row's own path.
- `distances_with_offsets`: first a Dijkstra backwards from every open column gives each unmatched row i its
  distance D_i to the nearest open column. Then one Dijkstra from the source, which reaches row i at length
  max(D) - D_i. Under the duals moved by those distances, every unmatched row's shortest augmenting path is
  tight at once (the path's reduced costs sum to zero, and none is negative), and so is each open column's path
  from whichever row it lies best for; a phase then places as many rows as disjoint tight paths allow.

Any offsets keep the duals feasible: no edge enters an unmatched row, so a Dijkstra from the source still gives
d(b) <= d(a) + length(a, b) on every edge, and each matched pair, reached only through its column, stays tight.
"""

from __future__ import annotations

import numpy as np
from scipy.sparse import csr_matrix
from scipy.sparse.csgraph import dijkstra


class ResidualGraph:
    """The residual graph of a matching over fixed edges (see the module's docstring); an edge from a row to its own
    column is harmless: the row is reached only through that column, at its distance."""

    def __init__(self, indptr: np.ndarray, heads: np.ndarray, n: int) -> None:
        """INDPTR (N+1,) and HEADS (E+2N,): the edges in row order, their heads N + column, then N slots for the
        columns' own edges and N for the source's, filled here. Each column has one edge out, to its row, or to
        itself while it is open; the source's slots are loops until a search fills them (loops change no distance)."""
        edges = len(heads) - 2 * n
        self.n, self.edges = n, edges
        heads[edges : edges + n] = np.arange(n, 2 * n)
        heads[edges + n :] = 2 * n
        indptr = np.concatenate([indptr, edges + np.arange(1, n + 1), [edges + 2 * n]]).astype(heads.dtype)
        self.graph = csr_matrix((np.zeros(edges + 2 * n), heads, indptr), shape=(2 * n + 1, 2 * n + 1))
        self.reverse: csr_matrix | None = None  # the edges backwards, made by the first search with offsets
        self.reverse_order: np.ndarray | None = None  # (E,) the forward position of each backward edge

    @property
    def row_edge_lengths(self) -> np.ndarray:
        """(E,) the lengths of the edges row -> column, in row order: a view to write in place."""
        return self.graph.data[: self.edges]

    def distances(self, right_for_left: np.ndarray, unmatched: np.ndarray, limit: float, reach: float) -> tuple[np.ndarray, np.ndarray] | float | None:
        """(2N,) every node's distance from the nearest UNMATCHED row, the edges row -> column having
        `row_edge_lengths` (the reduced costs), shifted so that the farthest nodes move by 0; and the sorted
        distances to the unmatched columns reached. Nodes beyond LIMIT get the largest distance found,
        which keeps the duals feasible: anything beyond it is farther. LIMIT grows until some unmatched
        column is reached; None if none can be: the graph has no perfect matching. If LIMIT must grow to REACH or
        beyond, the limit needed instead: the caller's edges are trusted only below REACH."""
        found = self._search(right_for_left, unmatched, limit, reach, with_paths=False)
        if not isinstance(found, tuple):
            return found
        distance, _, _, open_reached = found
        return self._shifted(distance), np.sort(distance[self.n + open_reached])

    def augment_along_shortest_paths(self, right_for_left: np.ndarray, unmatched: np.ndarray, limit: float, reach: float) -> np.ndarray | float | None:
        """`distances` for a few UNMATCHED rows, and RIGHT_FOR_LEFT augmented in place along each one's shortest path to
        its nearest open column, where one is in its own shortest-path tree. The trees share no node, so the paths
        are disjoint, and the duals moved by these distances make every edge on them tight: no maximum matching of
        the tight edges is needed. None where no open column can be reached; the limit needed where it passes REACH."""
        found = self._search(right_for_left, unmatched, limit, reach, with_paths=True)
        if not isinstance(found, tuple):
            return found
        distance, predecessor, source, open_reached = found
        n = self.n
        by_source = open_reached[np.lexsort((distance[n + open_reached], source[n + open_reached]))]
        nearest = by_source[np.r_[True, source[n + by_source[1:]] != source[n + by_source[:-1]]]]
        for column in nearest:
            node, start = n + column, source[n + column]
            while True:  # back along the path: each column's predecessor is the row that takes it
                row = predecessor[node]
                right_for_left[row] = node - n
                if row == start:
                    break
                node = predecessor[row]  # the column the row held
        return self._shifted(distance)

    def distances_with_offsets(
        self, right_for_left: np.ndarray, unmatched: np.ndarray, limit: float, reach: float
    ) -> tuple[np.ndarray, np.ndarray, np.ndarray] | float | None:
        """`distances`, with each UNMATCHED row starting at its own offset (see the module's docstring): max(D) - D_i,
        D_i its distance to the nearest open column, found by a Dijkstra backwards within LIMIT. Rows with no open
        column within LIMIT stay out (they move as far as the farthest node). Then, sorted: the distances of the open
        columns reached, from the source, and the rows' D."""
        n, edges = self.n, self.edges
        open_columns = self._link(right_for_left)
        reverse = self._reversed(right_for_left)
        while True:
            to_open = dijkstra(reverse, directed=True, indices=n + np.flatnonzero(open_columns), min_only=True, limit=limit)[unmatched]
            starting = np.isfinite(to_open)
            if starting.any():
                break
            limit = _grown(limit)
            if limit is None or limit >= reach:
                return limit
        count, top = int(starting.sum()), float(to_open[starting].max())
        slots = slice(edges + n, edges + 2 * n)
        self.graph.indices[slots], self.graph.data[slots] = 2 * n, 0.0
        self.graph.indices[edges + n : edges + n + count] = unmatched[starting]
        self.graph.data[edges + n : edges + n + count] = top - to_open[starting]
        # the nearest open columns lie at top from the source, at most LIMIT: a hair more against rounding
        distance = dijkstra(self.graph, directed=True, indices=2 * n, limit=limit * (1 + 1e-9))[: 2 * n]
        open_reached = np.flatnonzero(open_columns & np.isfinite(distance[n:]))
        return self._shifted(distance), np.sort(distance[n + open_reached]), np.sort(to_open[starting])

    def _search(self, right_for_left: np.ndarray, unmatched: np.ndarray, limit: float, reach: float, with_paths: bool) -> tuple | float | None:
        """One multi-source Dijkstra from UNMATCHED over the residual graph of RIGHT_FOR_LEFT, LIMIT growing until an
        open column is reached: (distance (2N,), predecessor, source, open columns reached); None if none can be; the
        grown limit where it reaches REACH."""
        open_columns = self._link(right_for_left)
        predecessor = source = None
        while True:
            if with_paths:
                distance, predecessor, source = dijkstra(
                    self.graph, directed=True, indices=unmatched, min_only=True, limit=limit, return_predecessors=True
                )
            else:
                distance = dijkstra(self.graph, directed=True, indices=unmatched, min_only=True, limit=limit)
            distance = distance[: 2 * self.n]
            open_reached = np.flatnonzero(open_columns & np.isfinite(distance[self.n :]))
            if len(open_reached):
                return distance, predecessor, source, open_reached
            limit = _grown(limit)
            if limit is None or limit >= reach:
                return limit

    def _link(self, right_for_left: np.ndarray) -> np.ndarray:
        """Point each column's edge at its row (at itself while open) for RIGHT_FOR_LEFT (N,); (N,) the open columns."""
        n, edges = self.n, self.edges
        open_columns = np.ones(n, dtype=bool)
        open_columns[right_for_left[right_for_left >= 0]] = False
        matched_rows = np.flatnonzero(right_for_left >= 0)
        self.graph.indices[edges + right_for_left[matched_rows]] = matched_rows
        self.graph.indices[edges : edges + n][open_columns] = n + np.flatnonzero(open_columns)
        return open_columns

    def _reversed(self, right_for_left: np.ndarray) -> csr_matrix:
        """The residual graph backwards (2N nodes), with this phase's lengths: each column -> the rows of its edges,
        each matched row -> its column at length 0 (an unmatched row: a loop). Its layout is made once, by one
        transpose that carries each edge's forward position; a phase then gathers the lengths."""
        n, edges = self.n, self.edges
        if self.reverse is None:
            index_type = self.graph.indices.dtype  # 32 bits where the graph allows, for the positions too
            forward = csr_matrix((np.arange(edges, dtype=index_type), self.graph.indices[:edges] - n, self.graph.indptr[: n + 1]), shape=(n, n))
            backward = forward.T.tocsr()  # scipy's counting transpose: O(E + N)
            del forward
            self.reverse_order = backward.data
            indices = np.concatenate([np.arange(n), backward.indices]).astype(index_type)
            indptr = np.concatenate([np.arange(n + 1), n + backward.indptr[1:]]).astype(index_type)
            self.reverse = csr_matrix((np.zeros(n + edges), indices, indptr), shape=(2 * n, 2 * n))
        np.take(self.graph.data[:edges], self.reverse_order, out=self.reverse.data[n:], mode="clip")
        self.reverse.indices[:n] = np.where(right_for_left >= 0, n + right_for_left, np.arange(n))
        return self.reverse

    @staticmethod
    def _shifted(distance: np.ndarray) -> np.ndarray:
        """DISTANCE with the nodes not reached at the largest distance found, all shifted so that it is 0."""
        reached = np.isfinite(distance)
        farthest = distance[reached].max()
        distance[~reached] = farthest
        return distance - farthest


def _grown(limit: float) -> float | None:
    """A search's next LIMIT when it reached no open column: None where it had none (no perfect matching)."""
    if not np.isfinite(limit):
        return None
    return np.inf if limit > 1e30 else max(16 * limit, 1.0)
