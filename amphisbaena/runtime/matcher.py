"""The exact maximum-score perfect matching of a sparse graph, in phases that each cost one pass over a working set of
its edges.

A primal-dual method (Hungarian, with many augmentations per phase):

- Dual potentials u (rows) and w (columns) stay feasible throughout: u_i + w_j >= s_ij on every edge. An edge is
  tight where the reduced cost r_ij = u_i + w_j - s_ij is zero (within rounding).
- Each phase takes a maximum matching of the tight edges (scipy's Hopcroft-Karp). A perfect one is optimal: the
  duals certify it.
- Otherwise one multi-source Dijkstra (scipy) from every unmatched row, over the residual graph with the reduced
  costs as lengths, gives each node its distance d. Raising u by d and lowering w by d keeps the duals feasible and
  makes every shortest path tight, so the next phase's matching augments along all of those that are disjoint: a few
  dozen phases instead of one search per row, as scipy's own LAPJVsp makes (each of which scans every column per
  distance level: about N^3 at scale; docs/performance.md).
- Once only TAIL_ROWS rows are unmatched, each phase augments along the shortest paths its Dijkstra found (one per
  row, disjoint by construction) and keeps the matching, instead of matching all tight edges anew: those rows'
  searches cross one crowded region, so each phase places only a few of them.

- Phases after the first search a working set (`_Edges.within`): the edges whose reduced cost is within a few limits
  of the search's. A phase moves no dual by more than its limit, so while the set's reach stays above the limit, no
  edge left out could be crossed, and the result is bit for bit the whole graph's. Late phases move the duals
  little; at a million pairs they then touch a few percent of the edges.
- Each maximum matching of the tight edges starts from the last phase's (its edges stay tight): Hopcroft-Karp's
  greedy start takes it nearly whole.

The start decides the number of phases: an auction's prices (`auction`), or the optimal duals of an earlier graph
with fewer edges (a re-solve: only the rows its new edges violate become unmatched).
"""

from __future__ import annotations

import numpy as np
from scipy.sparse import csr_matrix
from scipy.sparse.csgraph import dijkstra, maximum_bipartite_matching

from amphisbaena.runtime.arrays import CHUNK_EDGES, edges_by_row
from amphisbaena.runtime.auction import auction_prices

LIMIT_REACH = 4.0  # a phase's Dijkstra reaches this many times the typical distance to an unmatched column
# With this few rows unmatched, a phase augments along the shortest paths it found instead of taking a maximum
# matching of all tight edges: the paths of the last few rows cross the same crowded region (docs/performance.md)
TAIL_ROWS = 64
# A working set (`_Edges.within`) holds every edge within this many times its search's limit (the duals move at most
# the limit in a phase), and at least this share of the edges, those of least reduced cost: taking one costs a pass
# over every edge, so it should last a few phases, but each phase costs what its working set holds
LIMITS_AHEAD, WORKING_SHARE = 3.0, 0.04
SHRINK = 4.0  # a working set reaching this many times what would be taken now is taken anew
WHOLE_SHARE = 0.5  # a working set of more than this share of the edges is all of them, searched in place: no copy


def _tight_tolerance(scores: np.ndarray) -> float:
    """Rounding allowed in a reduced cost of zero: the duals are sums of many float64 distances."""
    return 1e-12 * (1.0 + float(np.abs(scores).max()))


def optimal_matching(
    rows: np.ndarray, cols: np.ndarray, scores: np.ndarray, n: int, start_col_potential: np.ndarray | None = None
) -> tuple[np.ndarray, np.ndarray, np.ndarray] | None:
    """The perfect matching of N rows and N columns on the edges (ROWS, COLS) (E,) that maximises the
    total of SCORES (E,), with duals certifying it: (right_for_left (N,), u (N,), w (N,)), u_i + w_j >=
    s_ij on every edge and equal on the matching. Where the graph has no perfect matching, the maximum
    matching the phases reached (right_for_left -1 on its unmatched rows: no augmenting path is left) with
    its feasible duals, from which a re-solve of the graph with edges added starts; None where a row has no edge.

    START_COL_POTENTIAL (N,): column duals to start from, such as an earlier solution's for a subgraph;
    without it an auction finds them."""
    if n == 0:
        return np.zeros(0, dtype=np.int64), np.zeros(0), np.zeros(0)
    counts = np.bincount(rows, minlength=n)
    if not counts.all():
        return None
    # The edges in row order, laid out in place a chunk at a time: the residual graph's heads (N + each edge's column)
    # and the scores; the rows and columns then as small integers
    edges = len(rows)
    scores, heads, indptr = edges_by_row(rows, cols, None, n, lambda at: scores[at], n)
    every = _Edges(indptr, heads, scores[:edges], n)
    w = auction_prices(indptr, every.cols, every.scores, n) if start_col_potential is None else start_col_potential.astype(np.float64)
    u = np.maximum.reduceat(every.scores - w[every.cols], indptr[:-1])  # the least feasible u for these w
    tolerance = _tight_tolerance(every.scores)
    margin = 1e6 * tolerance  # between a working set's reach and a search's limit: rounding in the duals' updates
    work, limit = every, np.inf
    reduced = work.reduced(u, w)
    right_for_left, unmatched = None, None
    while True:
        if unmatched is None or len(unmatched) > TAIL_ROWS:
            right_for_left = work.tight_matching(tolerance, right_for_left)
        unmatched = np.flatnonzero(right_for_left < 0)
        if len(unmatched) == 0:
            return right_for_left, u, w
        np.maximum(reduced, 0.0, out=reduced)  # -rounding: lengths must not be negative
        search_limit = limit
        while True:  # the search, on a working set that holds every edge it could cross
            # a working set is taken anew when the limit passes what it still reaches, or when it reaches far more
            # than one taken now would (after a search's limit grew). A limit grown for one search needs no phases ahead
            least = (LIMITS_AHEAD if search_limit == limit else 1.0) * search_limit + 2 * margin
            if np.isfinite(search_limit):
                retake = search_limit >= work.reach - margin or work.reach > SHRINK * max(least, work.share_reach)
            else:
                retake = np.isfinite(work.reach)
            if retake:
                work = reduced = None  # the last set's arrays go before the next one's are made
                work = every.within(u, w, least)
                reduced = np.maximum(work.reduced(u, w), 0.0, out=work.residual.row_edge_lengths)
            tail = len(unmatched) <= TAIL_ROWS
            search = work.residual.augment_along_shortest_paths if tail else work.residual.distances
            found = search(right_for_left, unmatched, search_limit, work.reach - margin)
            if not isinstance(found, float):
                break
            search_limit = found  # an open column lies farther than the working set reaches
        if found is None:
            return right_for_left, u, w
        if tail:
            distance = found
        else:
            distance, to_open_columns = found
            limit = LIMIT_REACH * float(to_open_columns[min(len(to_open_columns) - 1, len(unmatched) // 2)]) + tolerance
        u += distance[:n]
        w -= distance[n:]
        work.reach += float(distance.min())  # no edge's reduced cost fell by more than the farthest node moved
        reduced = work.reduced(u, w)


class _Edges:
    """Edges in row order, and the residual graph the phases search on them: the whole graph's (reach inf), or
    a working set, the edges whose reduced cost was at most REACH when it was taken (`within`). REACH then falls
    by however far the duals move, so a search whose limit stays under it crosses exactly the edges it would
    cross on the whole graph: any other edge is longer than the limit. Phases late in a solve move the duals
    little, so most of them run on a small share of the edges."""

    def __init__(self, indptr: np.ndarray, heads: np.ndarray, scores: np.ndarray, n: int, reach: float = np.inf, share_reach: float = 0.0) -> None:
        """INDPTR (N+1,), HEADS (E+N,: N + each edge's column, then N slots for the residual graph), SCORES (E,);
        a working set's REACH and SHARE_REACH (`within`)."""
        edges = len(scores)
        self.n, self.indptr, self.scores, self.reach, self.share_reach = n, indptr, scores, reach, share_reach
        self.column_nodes = heads[:edges]
        self.cols = np.subtract(self.column_nodes, n, dtype=heads.dtype)
        # consecutive ranges of rows (first, stop) of about CHUNK_EDGES edges each: the phases work a span at a time
        bounds = np.unique(np.r_[0, np.searchsorted(indptr, np.arange(CHUNK_EDGES, indptr[-1], CHUNK_EDGES)), n])
        self.spans = list(zip(bounds[:-1].tolist(), bounds[1:].tolist()))
        self.heads = heads
        self.search_buffers()

    def search_buffers(self) -> None:
        """Make the residual graph and the phases' buffers. Each phase's edge-sized arrays live in buffers made once:
        fresh memory of that size costs more in page faults than the arithmetic on it (docs/performance.md)."""
        edges = len(self.scores)
        self.residual = _ResidualGraph(self.indptr, self.heads, self.n)
        longest = max((self.indptr[stop] - self.indptr[first] for first, stop in self.spans), default=0)
        self.gathered, self.tight, self.tight_cols = np.empty(longest), np.empty(edges, dtype=bool), np.empty(edges, dtype=self.heads.dtype)

    def reduced_in(self, u: np.ndarray, w: np.ndarray, first: int, stop: int, gathered: np.ndarray | None = None) -> np.ndarray:
        """The reduced costs of the edges of rows FIRST..STOP-1 (each row's u repeated: no row array), in a new array;
        the columns' duals are gathered into GATHERED (at least the span's size) where it is given."""
        at = slice(self.indptr[first], self.indptr[stop])
        reduced = np.repeat(u[first:stop], np.diff(self.indptr[first : stop + 1]))
        reduced += np.take(w, self.cols[at], out=None if gathered is None else gathered[: len(reduced)], mode="clip")  # "clip": no bounds check
        reduced -= self.scores[at]
        return reduced

    def reduced(self, u: np.ndarray, w: np.ndarray) -> np.ndarray:
        """(E,) the reduced costs u_i + w_j - s_ij, written a span at a time where the Dijkstra reads its lengths."""
        lengths = self.residual.row_edge_lengths
        for first, stop in self.spans:
            lengths[self.indptr[first] : self.indptr[stop]] = self.reduced_in(u, w, first, stop, self.gathered)
        return lengths

    def tight_matching(self, tolerance: float, matched: np.ndarray | None) -> np.ndarray:
        """(N,) a maximum matching of the edges whose reduced cost (`reduced`, last computed) is at most TOLERANCE.
        MATCHED (N,), the last phase's matching (-1 where unmatched), whose edges stay tight, goes first in each
        row: Hopcroft-Karp's greedy start then takes it nearly whole and leaves few rows to augment."""
        np.less_equal(self.residual.row_edge_lengths, tolerance, out=self.tight)
        kept = _kept_starts(self.tight, self.indptr).astype(self.cols.dtype)
        found_cols = np.subtract(np.compress(self.tight, self.column_nodes, out=self.tight_cols[: kept[-1]]), self.n, out=self.tight_cols[: kept[-1]])
        if matched is not None:
            held = np.flatnonzero(found_cols == np.repeat(matched, np.diff(kept)))  # at most one per row
            firsts = kept[:-1][np.repeat(np.arange(self.n), np.diff(kept))[held]]
            found_cols[held], found_cols[firsts] = found_cols[firsts], found_cols[held]
        tight_graph = csr_matrix((np.ones(kept[-1], dtype=np.int8), found_cols, kept), shape=(self.n, self.n))
        return maximum_bipartite_matching(tight_graph, perm_type="column").astype(np.int64)

    def within(self, u: np.ndarray, w: np.ndarray, least: float) -> _Edges:
        """The working set of these edges whose reduced cost under U, W is at most its reach: LEAST, or more where
        fewer than WORKING_SHARE of the edges are within LEAST (the share's reach estimated from every 64th
        edge). Worked out a chunk at a time. Past WHOLE_SHARE of the edges, these edges themselves, which reach
        without limit; otherwise a copy, and these edges drop their residual graph and buffers meanwhile."""
        sample = np.arange(0, len(self.scores), 64)
        sample_rows = np.searchsorted(self.indptr, sample, side="right") - 1
        share_reach = float(np.quantile(u[sample_rows] + w[self.cols[sample]] - self.scores[sample], WORKING_SHARE))
        reach = max(least, share_reach)
        keep = np.empty(len(self.scores), dtype=bool)
        for first, stop in self.spans:
            np.less_equal(self.reduced_in(u, w, first, stop), reach, out=keep[self.indptr[first] : self.indptr[stop]])
        if np.count_nonzero(keep) > WHOLE_SHARE * len(keep):  # search these edges themselves rather than a copy
            if self.residual is None:
                self.search_buffers()
            return self
        self.residual = self.gathered = self.tight = self.tight_cols = None  # the copy is searched instead
        indptr = _kept_starts(keep, self.indptr)
        heads = np.empty(int(indptr[-1]) + self.n, dtype=self.column_nodes.dtype)
        np.compress(keep, self.column_nodes, out=heads[: indptr[-1]])
        return _Edges(indptr, heads, self.scores[keep], self.n, reach, share_reach)


def _kept_starts(keep: np.ndarray, indptr: np.ndarray) -> np.ndarray:
    """(N+1,) the row starts of the edges KEEP (E,) marks, the edges' row starts being INDPTR (N+1,). (A cumulative
    sum of the mask is several times slower: numpy sums booleans through a cast.)"""
    return np.searchsorted(np.flatnonzero(keep), indptr)


class _ResidualGraph:
    """The residual graph of a matching over fixed edges: nodes 0..N-1 are the rows, N..2N-1 the
    columns; every edge row -> column, and each matched column -> its row at length 0. (An edge from a
    row to its own column is harmless: the row is reached only through that column, at its distance.)"""

    def __init__(self, indptr: np.ndarray, heads: np.ndarray, n: int) -> None:
        """INDPTR (N+1,) and HEADS (E+N,): the edges in row order, their heads N + column, then N slots for the
        columns' own edges, filled here. Each column has one edge out, to its row, or to itself while it is open
        (a loop that changes no distance)."""
        edges = len(heads) - n
        self.n, self.edges = n, edges
        heads[edges:] = np.arange(n, 2 * n)
        self.graph = csr_matrix(
            (np.zeros(edges + n), heads, np.concatenate([indptr, edges + np.arange(1, n + 1)]).astype(heads.dtype)), shape=(2 * n, 2 * n)
        )

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

    def _search(self, right_for_left: np.ndarray, unmatched: np.ndarray, limit: float, reach: float, with_paths: bool) -> tuple | float | None:
        """One multi-source Dijkstra from UNMATCHED over the residual graph of RIGHT_FOR_LEFT, LIMIT growing until an
        open column is reached: (distance, predecessor, source, open columns reached); None if none can be; the
        grown limit where it reaches REACH."""
        n, edges = self.n, self.edges
        open_columns = np.ones(n, dtype=bool)
        open_columns[right_for_left[right_for_left >= 0]] = False
        matched_rows = np.flatnonzero(right_for_left >= 0)
        self.graph.indices[edges + right_for_left[matched_rows]] = matched_rows
        self.graph.indices[edges:][open_columns] = n + np.flatnonzero(open_columns)
        predecessor = source = None
        while True:
            if with_paths:
                distance, predecessor, source = dijkstra(
                    self.graph, directed=True, indices=unmatched, min_only=True, limit=limit, return_predecessors=True
                )
            else:
                distance = dijkstra(self.graph, directed=True, indices=unmatched, min_only=True, limit=limit)
            open_reached = np.flatnonzero(open_columns & np.isfinite(distance[n:]))
            if len(open_reached):
                return distance, predecessor, source, open_reached
            if not np.isfinite(limit):
                return None
            limit = np.inf if limit > 1e30 else max(16 * limit, 1.0)
            if limit >= reach:
                return float(limit)

    @staticmethod
    def _shifted(distance: np.ndarray) -> np.ndarray:
        """DISTANCE with the nodes not reached at the largest distance found, all shifted so that it is 0."""
        reached = np.isfinite(distance)
        farthest = distance[reached].max()
        distance[~reached] = farthest
        return distance - farthest
