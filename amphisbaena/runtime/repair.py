"""The repair of a candidate graph without a perfect matching, and the optimum it then has, without a re-solve.

A maximum matching M of the graph G leaves rows U and columns C unmatched, as many of each. The repair adds
every pair of U x C, scored exactly (`with_a_perfect_matching`). Where M is the matcher's, its duals (u, w)
are feasible on G and tight on M, and the optimum of G + U x C follows from M directly (`completed`):

- Every node that an alternating path from U reaches in G is matched, and its edges lead only to such nodes;
  otherwise M would not be maximum. So the pairs U x C are the only way from U to C, and every augmenting path
  that a re-solve from (M, u, w) would take runs inside U x C. The optimum is M plus the optimal assignment of
  U to C, which the small dense block alone decides.
- Its duals: the block's own (the matcher's, on the block's reduced scores), shifted as far as the edges into
  C allow. Where U's edges in G are then broken, one Dijkstra raises the columns those edges reach, along the
  alternating paths from them, as a phase of the matcher would.

The duals are checked on every edge before use; a violation falls back to a re-solve from M's duals.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy.sparse import csr_matrix
from scipy.sparse.csgraph import dijkstra, maximum_bipartite_matching

from amphisbaena.runtime.arrays import minimum_by_group
from amphisbaena.runtime.duals import potentials, residual_with_source
from amphisbaena.runtime.graph import CandidateGraph, SparseSolution
from amphisbaena.runtime.matcher import optimal_matching
from amphisbaena.runtime.scorer import PairScorer

REPAIR_LIMIT = 4_096  # unmatched rows whose pairs with the unmatched columns are scored, rather than streaming again at 2k


@dataclass(frozen=True)
class Repaired:
    """A graph with a perfect matching made from one without (`with_a_perfect_matching`).

    graph: the repaired graph; k: the candidates per row and column it was streamed with; rows: the rows whose
    pairs with the unmatched columns were added (0 where it was streamed again); solution: its optimal matching
    with central duals where `completed` found it, else None; start: the solution a re-solve starts from, or None.
    """

    graph: CandidateGraph
    k: int
    rows: int
    solution: SparseSolution | None = None
    start: SparseSolution | None = None


def unmatched(graph: CandidateGraph, maximum: SparseSolution | None = None) -> tuple[np.ndarray, np.ndarray]:
    """The rows and the columns (as many of each) that a maximum matching of GRAPH's edges leaves unmatched:
    none where the graph has a perfect matching. MAXIMUM: such a matching, found already (the matcher's);
    else scipy's Hopcroft-Karp finds one."""
    n = graph.size
    if maximum is None:  # only scipy's solver, on graphs under duals.PHASES_FROM pairs, ends without one
        edges = csr_matrix((np.ones(len(graph.rows), dtype=np.int8), (graph.rows, graph.cols)), shape=(n, n))
        right_for_left = maximum_bipartite_matching(edges, perm_type="column")
    else:
        right_for_left = maximum.right_for_left
    return np.flatnonzero(right_for_left < 0), np.setdiff1d(np.arange(n), right_for_left[right_for_left >= 0])


def with_a_perfect_matching(scorer: PairScorer, graph: CandidateGraph, k: int, maximum: SparseSolution | None = None) -> Repaired:
    """GRAPH, which has no perfect matching, plus every pair of a row and a column that a maximum matching of it
    (MAXIMUM, where the matcher found it) leaves unmatched (`unmatched`), scored exactly. That graph has a perfect
    matching (the maximum one and those pairs); with the matcher's MAXIMUM, its optimum too (`completed`), and the
    proof's rounds add whatever else the optimum of every pair needs. Where more than REPAIR_LIMIT rows are
    unmatched (their pairs would cost more than a wider stream), the candidates are streamed again at 2K
    instead, until a graph has a perfect matching. The bounds stand: only exact edges are added."""
    while True:
        rows, cols = unmatched(graph, maximum)
        if len(rows) == 0:
            return Repaired(graph, k, 0)
        if len(rows) <= REPAIR_LIMIT:
            block = scorer.columns(rows, cols)  # none of these pairs is an edge: the matching would have taken it
            repaired = graph.with_edges(np.repeat(rows, len(cols)), np.tile(cols, len(rows)), block.ravel(), block.size)
            solution = None if maximum is None else completed(graph, repaired, maximum, rows, cols, block.astype(np.float64))
            return Repaired(repaired, k, len(rows), solution, None if solution is not None else maximum)
        maximum = None  # it belongs to the first graph only
        k = min(2 * k, scorer.size[0])  # at k = N every pair is an edge: a perfect matching exists
        graph = scorer.candidates(k)


def completed(
    graph: CandidateGraph, repaired: CandidateGraph, maximum: SparseSolution, rows: np.ndarray, cols: np.ndarray, block: np.ndarray
) -> SparseSolution | None:
    """The optimal matching of REPAIRED (GRAPH plus the pairs ROWS x COLS), with central duals: MAXIMUM (the matcher's
    maximum matching of GRAPH, its unmatched rows (U,) and columns (U,), with duals feasible there and tight on it)
    plus the optimal assignment of ROWS to COLS by their scores BLOCK (U, U). None where the duals built for it
    fail on an edge, which only a MAXIMUM that is not maximum could cause."""
    u, w = maximum.row_potential.copy(), maximum.col_potential.copy()
    m = len(rows)
    reduced = block - u[rows, None] - w[None, cols]
    found = optimal_matching(np.repeat(np.arange(m), m), np.tile(np.arange(m), m), reduced.ravel(), m)
    assert found is not None  # every row of a dense block has edges, and it has a perfect matching
    taken, row_shift, col_shift = found
    right_for_left = maximum.right_for_left.copy()
    right_for_left[rows] = cols[taken]

    slack = u[graph.rows] + w[graph.cols] - graph.scores
    from_unmatched = np.isin(graph.rows, rows)
    # The shift moves slack between the block's rows and columns: their edges in G want the rows' duals high, the
    # edges into its columns want the columns' high; no edge of G joins the two (M would not be maximum)
    row_room = minimum_by_group(np.full(graph.size, np.inf), graph.rows[from_unmatched], slack[from_unmatched])[rows]
    into_open = np.isin(graph.cols, cols)
    col_room = minimum_by_group(np.full(graph.size, np.inf), graph.cols[into_open], slack[into_open])[cols]
    wanted, allowed = float(np.max(-row_room - row_shift)), float(np.min(col_shift + col_room))
    if wanted > allowed:  # the rows' edges in G break: `_raise_reach` mends them
        shift = allowed
    else:
        shift = wanted if np.isfinite(wanted) else allowed if np.isfinite(allowed) else 0.0
    u[rows] += row_shift + shift
    w[cols] += col_shift - shift
    moved = from_unmatched | into_open
    slack[moved] = u[graph.rows[moved]] + w[graph.cols[moved]] - graph.scores[moved]
    del into_open, moved
    broken = from_unmatched & (slack < 0)
    del from_unmatched
    if broken.any():
        _raise_reach(u, w, graph.rows, graph.cols, slack, right_for_left, graph.cols[broken], -slack[broken])
    del slack, broken
    slack = u[repaired.rows] + w[repaired.cols] - repaired.scores
    tolerance = 1e-9 * (1.0 + float(np.abs(repaired.scores).max()))
    if slack.min() < -tolerance or np.abs(slack[repaired.chosen(right_for_left)]).max() > tolerance:
        return None
    return SparseSolution(right_for_left, *potentials(repaired, right_for_left, feasible=(u, w)))


def _raise_reach(
    u: np.ndarray, w: np.ndarray, rows: np.ndarray, cols: np.ndarray, slack: np.ndarray, right_for_left: np.ndarray,
    short_cols: np.ndarray, shortfall: np.ndarray,
) -> None:
    """Raise w on SHORT_COLS by their largest SHORTFALL, and on every column an alternating path reaches from them by
    what is left of it after the path's slack; lower u on the rows matched to the raised columns by the same amount,
    in place. One Dijkstra over the residual graph of the edges (ROWS, COLS) (E,) with their SLACK u_i + w_j - s_ij
    as lengths (negative on the short edges, which no path uses: their rows are reached through the block only),
    each column leading to its matched row at length 0, and a source leading to each short column at the largest
    shortfall less its own. A node at distance d within that largest shortfall D is raised by D - d."""
    n = len(u)
    need = minimum_by_group(np.zeros(n), short_cols, -shortfall)  # minus the largest shortfall per column
    targets = np.flatnonzero(need < 0)
    top = -float(need.min())
    left_for_right = np.empty(n, dtype=np.int64)
    left_for_right[right_for_left] = np.arange(n)
    graph = residual_with_source(rows, cols, None, n, lambda at: slack[at], left_for_right, 0.0, n + targets, top + need[targets])
    distance = dijkstra(graph, directed=True, indices=2 * n, limit=top)[: 2 * n]
    raised = np.where(np.isfinite(distance), np.maximum(top - distance, 0.0), 0.0)
    w += raised[n:]
    u -= raised[:n]
