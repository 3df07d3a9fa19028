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
- Once a phase places few rows (CROWDED_BELOW), each unmatched row starts its Dijkstra at its own offset, from a first
  Dijkstra backwards from the open columns (`residual.ResidualGraph.distances_with_offsets`): every unmatched row's
  shortest augmenting path is then tight at once, where from a common start a crowded region goes to the one row
  nearest to it, and a phase places only a few rows (docs/performance.md).
- Once only TAIL_ROWS rows are unmatched, each phase augments along the shortest paths its Dijkstra found (one per
  row, disjoint by construction) and keeps the matching, instead of matching all tight edges anew: its phases cost
  a third of an offset phase's, which pays for their placing fewer rows.

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
from scipy.sparse.csgraph import maximum_bipartite_matching

from amphisbaena.runtime.arrays import CHUNK_EDGES, edges_by_row
from amphisbaena.runtime.auction import auction_prices
from amphisbaena.runtime.residual import ResidualGraph

LIMIT_REACH = 4.0  # a phase's Dijkstra reaches this many times the typical distance to an unmatched column
TAIL_ROWS = 64  # with this few rows unmatched, a phase augments along the shortest paths it found (docs/performance.md)
# From the first phase that places less than this share of the unmatched rows, phases search with offsets: each costs
# about two plain ones, and pays only where plain phases place few rows (docs/performance.md)
CROWDED_BELOW = 0.25
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
    scores, heads, indptr = edges_by_row(rows, cols, None, n, lambda at: scores[at], 2 * n)
    every = _Edges(indptr, heads, scores[:edges], n)
    w = auction_prices(indptr, every.cols, every.scores, n) if start_col_potential is None else start_col_potential.astype(np.float64)
    u = np.maximum.reduceat(every.scores - w[every.cols], indptr[:-1])  # the least feasible u for these w
    tolerance = _tight_tolerance(every.scores)
    margin = 1e6 * tolerance  # between a working set's reach and a search's limit: rounding in the duals' updates
    work, limit, rows_limit = every, np.inf, np.inf
    reduced = work.reduced(u, w)
    right_for_left, unmatched, crowded = None, None, False
    while True:
        if unmatched is None or len(unmatched) > TAIL_ROWS:
            right_for_left = work.tight_matching(tolerance, right_for_left)
        before, unmatched = unmatched, np.flatnonzero(right_for_left < 0)
        if len(unmatched) == 0:
            return right_for_left, u, w
        crowded = crowded or (before is not None and len(unmatched) > (1 - CROWDED_BELOW) * len(before))
        np.maximum(reduced, 0.0, out=reduced)  # -rounding: lengths must not be negative
        tail = len(unmatched) <= TAIL_ROWS
        search_limit = rows_limit if tail else limit
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
            if tail:
                search = work.residual.augment_along_shortest_paths
            else:
                search = work.residual.distances_with_offsets if crowded else work.residual.distances
            found = search(right_for_left, unmatched, search_limit, work.reach - margin)
            if not isinstance(found, float):
                break
            search_limit = found  # an open column lies farther than the working set reaches
        if found is None:
            return right_for_left, u, w
        if tail:
            distance = found
        else:
            # the next limit: a few times the typical distance to an open column; for the tail's plain searches, from
            # the rows themselves (an offset search's distances from its source include the offsets)
            distance, to_open_columns, from_rows = found[0], found[1], found[-1]
            limit, rows_limit = (LIMIT_REACH * float(far[min(len(far) - 1, len(unmatched) // 2)]) + tolerance for far in (to_open_columns, from_rows))
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
        """INDPTR (N+1,), HEADS (E+2N,: N + each edge's column, then 2N slots for the residual graph), SCORES (E,);
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
        self.residual = ResidualGraph(self.indptr, self.heads, self.n)
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
        heads = np.empty(int(indptr[-1]) + 2 * self.n, dtype=self.column_nodes.dtype)
        np.compress(keep, self.column_nodes, out=heads[: indptr[-1]])
        return _Edges(indptr, heads, self.scores[keep], self.n, reach, share_reach)


def _kept_starts(keep: np.ndarray, indptr: np.ndarray) -> np.ndarray:
    """(N+1,) the row starts of the edges KEEP (E,) marks, the edges' row starts being INDPTR (N+1,). (A cumulative
    sum of the mask is several times slower: numpy sums booleans through a cast.)"""
    return np.searchsorted(np.flatnonzero(keep), indptr)
