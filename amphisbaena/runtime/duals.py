"""The sparse solver and its certificate: the optimal matching of a candidate graph and its duals.

`solve_sparse`
solves on a candidate graph (top-k per row and per column), then *proves* the
result is also optimal for the full matrix with LP duality:

    potentials u (rows) and w (columns) with u_i + w_j >= s_ij for every pair,
    and u_i + w_j == s_ij on the chosen pairs, certify a maximum-score matching.

On the candidate edges the potentials come from shortest paths in the residual
graph of the optimal sparse matching. For an excluded pair (i, j), s_ij is at
most min(row_bound_i, col_bound_j), the (k+1)-th best score of row i and of
column j; where even that bound could exceed u_i + w_j, the caller scores the pair
exactly (`proof`), and any true violation becomes a new candidate edge.
"""

from __future__ import annotations

from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from functools import partial

import numpy as np
from scipy.sparse import csr_matrix
from scipy.sparse.csgraph import dijkstra, min_weight_full_bipartite_matching

from amphisbaena.runtime.arrays import edges_by_row, runs, stable_order
from amphisbaena.runtime.graph import CandidateGraph, SparseSolution
from amphisbaena.runtime.matcher import optimal_matching

# From this many pairs the matcher's phases beat scipy's LAPJVsp, whose searches each scan every column
# per distance level (benchmarks/results/matcher-scaling.md: 0.9x at 20,000 pairs, 1.4x at 40,000)
PHASES_FROM = 30_000
# A re-solve from the last round's duals frees the rows its added edges break; past this share of the rows the
# auction's fresh start is cheaper (docs/performance.md)
WARM_START_SHARE = 1e-3
# ... and past this many rows: at a million pairs, a re-solve freeing 1,307 rows ran 85 min without finishing,
# where the auction's start takes about 10 (docs/performance.md)
WARM_START_ROWS = 200
# Up to this many edges the two extremes of `potentials` are built side by side; beyond, in turn, since each
# holds its own residual graph of the whole candidate graph, and scipy's Dijkstra holds the GIL anyway
SIDE_BY_SIDE_EDGES = 1 << 25


def _matching(rows: np.ndarray, cols: np.ndarray, costs: np.ndarray, n: int) -> np.ndarray | None:
    """Minimum-cost perfect matching of N rows and N columns on the edges (ROWS, COLS) with COSTS,
    or None if none exists (scipy's LAPJVsp: the fastest on small graphs)."""
    # Costs must be strictly positive: csgraph treats stored zeros as missing edges.
    matrix = csr_matrix((costs - costs.min() + 1.0, (rows, cols)), shape=(n, n))
    try:
        _, right_for_left = min_weight_full_bipartite_matching(matrix)
    except ValueError:
        return None
    return right_for_left.astype(np.int64)


def _potentials_by_shortest_paths(
    rows: np.ndarray, cols: np.ndarray, scores: np.ndarray, right_for_left: np.ndarray, start: np.ndarray | None = None
) -> tuple[np.ndarray, np.ndarray]:
    """Dual potentials (u, w) with u_i + w_j >= s_ij on every edge and equality on the matching.

    Shortest paths from a virtual source to every node of the residual graph
    (row -> column along unmatched edges with cost -s, column -> row along
    matched edges with cost +s); optimality means it has no negative cycle, so a
    vectorised Bellman-Ford converges. Each sweep relaxes only the edges leaving
    nodes whose distance changed in the sweep before, so late sweeps, which touch
    a few long paths, cost little. These are the extreme duals that load
    everything onto the columns.

    START (column potentials w of an earlier, nearly feasible solution) replaces the
    virtual source: label correcting from any start converges to *some* feasible
    potentials when there is no negative cycle, and from nearly feasible ones in a
    few cheap sweeps.
    """
    n = len(right_for_left)
    matched = right_for_left[rows] == cols
    # Nodes 0..n-1 are rows, n..2n-1 are columns; edges sorted by tail, so a node's edges are one run. Node
    # numbers in 32 bits where they fit: two of these passes run at once, each holding several edge arrays.
    node_type = np.int32 if 2 * n < np.iinfo(np.int32).max else np.int64
    tails = np.where(matched, cols + n, rows).astype(node_type)
    order = stable_order(tails)
    tails, heads = tails[order], np.where(matched, rows, cols + n).astype(node_type)[order]
    weights = np.where(matched, scores, -scores)[order]
    del order
    nodes = np.arange(2 * n)
    first, last = np.searchsorted(tails, nodes, side="left"), np.searchsorted(tails, nodes, side="right")
    matched_score = np.empty(n)
    matched_score[rows[matched]] = scores[matched]
    distance = np.zeros(2 * n)
    active = nodes
    if start is not None:
        distance[n:] = -start
        distance[:n] = -start[right_for_left] + matched_score  # matched edges tight from the start
        # Only the tails of edges the start violates can improve anything at first; any other
        # edge becomes violated only once its tail's distance drops, which makes the tail active.
        active = np.unique(tails[distance[tails] + weights < distance[heads] - 1e-12])
    touched = np.zeros(2 * n, dtype=bool)  # the nodes a sweep improved, marked instead of sorted out
    for _ in range(2 * n + 1):
        edges, counts = runs(first[active], last[active])
        relaxed = np.repeat(distance[active], counts) + weights[edges]  # an active node's edges all leave it
        improved_heads = heads[edges]
        improved = relaxed < distance[improved_heads] - 1e-12
        if not improved.any():
            break
        improved_heads = improved_heads[improved]
        np.minimum.at(distance, improved_heads, relaxed[improved])
        touched[improved_heads] = True
        active = np.flatnonzero(touched)
        touched[active] = False
    else:
        raise RuntimeError("residual graph has a negative cycle: the sparse matching is not optimal")
    w = -distance[n:]
    return matched_score - w[right_for_left], w  # u tight on the matching


def residual_with_source(
    rows: np.ndarray, cols: np.ndarray, keep: np.ndarray | None, n: int, length_of: Callable[[np.ndarray], np.ndarray],
    column_heads: np.ndarray, column_lengths: np.ndarray | float, source_heads: np.ndarray, source_lengths: np.ndarray,
) -> csr_matrix:
    """A graph for one Dijkstra from node 2N: the kept edges (ROWS, COLS, KEEP; `arrays.edges_by_row`) from row i to
    node N + j with lengths LENGTH_OF(their positions), then one edge from each column to COLUMN_HEADS (N,) with
    COLUMN_LENGTHS, then the source's edges to SOURCE_HEADS with SOURCE_LENGTHS. Lengths are clipped at 0 (rounding)
    and raised by the smallest positive float: csgraph drops stored zeros, and a tight edge must stay."""
    spare = n + len(source_heads)
    lengths, heads, starts = edges_by_row(rows, cols, keep, n, length_of, spare)
    edges = len(lengths) - spare
    lengths[edges : edges + n] = column_lengths
    lengths[edges + n :] = source_lengths
    heads[edges : edges + n] = column_heads
    heads[edges + n :] = source_heads
    np.maximum(lengths, 0.0, out=lengths)
    lengths += np.finfo(np.float64).tiny
    indptr = np.concatenate([starts, edges + np.arange(1, n + 1), [len(lengths)]]).astype(heads.dtype)
    return csr_matrix((lengths, heads, indptr), shape=(2 * n + 1, 2 * n + 1))


def _extreme_by_dijkstra(
    rows: np.ndarray,
    cols: np.ndarray,
    scores: np.ndarray,
    right_for_left: np.ndarray,
    left_for_right: np.ndarray,
    feasible: tuple[np.ndarray, np.ndarray],
) -> tuple[np.ndarray, np.ndarray]:
    """The column-heavy extreme of `_potentials_by_shortest_paths` (from the virtual source), by one Dijkstra.

    FEASIBLE duals (u, w) give every node a potential h (u_i for row i, -w_j for column j) under which each
    residual edge a -> b of length c has c + h(a) - h(b) >= 0 (the reduced cost; rounding clipped). A source
    joined to every node v by length max(h) - h(v) stands for the virtual source; a distance d' then gives
    d = d' - max(h) + h(v). The graph is laid out node by node directly: rows, then columns (one matched edge
    each), then the source."""
    n = len(right_for_left)
    u, w = feasible
    chosen = right_for_left[rows] == cols
    matched_score = np.empty(n)
    matched_score[rows[chosen]] = scores[chosen]
    potential = np.concatenate([u, -w])
    top = float(potential.max())
    graph = residual_with_source(
        rows, cols, ~chosen, n, lambda at: u[rows[at]] + w[cols[at]] - scores[at],
        left_for_right, matched_score[left_for_right] - w - u[left_for_right], np.arange(2 * n), top - potential,
    )
    distance = dijkstra(graph, directed=True, indices=2 * n)[: 2 * n] - top + potential
    w_extreme = -distance[n:]
    return matched_score - w_extreme[right_for_left], w_extreme


def potentials(
    graph: CandidateGraph, right_for_left: np.ndarray, start: SparseSolution | None = None, feasible: tuple[np.ndarray, np.ndarray] | None = None
) -> tuple[np.ndarray, np.ndarray]:
    """Central optimal duals: the mean of the column-heavy and the row-heavy extremes.

    Any convex combination of optimal duals is optimal. The extremes put all the
    slack on one side, so excluded pairs fail the bound check there; the mean
    keeps both u and w comfortable, which is what certifies excluded pairs.
    From START (an earlier round's central duals) both passes only correct what
    changed, so their mean stays near the earlier centre. The two passes run in two
    threads: their large array operations release the GIL.

    Without START, a graph that marks its core (each row's and column's best few edges)
    gets its duals there first, where the shortest paths take an eighth of the edges
    (k = 64), and then only corrected on the whole graph, where few edges are violated
    (docs/performance.md).

    FEASIBLE, optimal duals (u, w) of this graph and matching (the matcher's), turns every
    residual length non-negative (Johnson's reweighting), so each extreme is one Dijkstra
    (`_extreme_by_dijkstra`) instead of hundreds of Bellman-Ford sweeps through the crowded part.
    """
    left_for_right = np.empty_like(right_for_left)
    left_for_right[right_for_left] = np.arange(len(right_for_left))
    if feasible is not None:
        column_heavy = partial(_extreme_by_dijkstra, graph.rows, graph.cols, graph.scores, right_for_left, left_for_right, feasible)
        row_heavy = partial(_extreme_by_dijkstra, graph.cols, graph.rows, graph.scores, left_for_right, right_for_left, feasible[::-1])
    else:
        core = None if start is not None or graph.core is None else graph.core | (right_for_left[graph.rows] == graph.cols)
        if core is not None and not core.all():
            inner = CandidateGraph(graph.rows[core], graph.cols[core], graph.scores[core], graph.row_bound, graph.col_bound)
            start = SparseSolution(right_for_left, *potentials(inner, right_for_left))
        scores = graph.scores.astype(np.float64)
        start_w, start_u = (None, None) if start is None else (start.col_potential, start.row_potential)
        column_heavy = partial(_potentials_by_shortest_paths, graph.rows, graph.cols, scores, right_for_left, start_w)
        row_heavy = partial(_potentials_by_shortest_paths, graph.cols, graph.rows, scores, left_for_right, start_u)
    if len(graph.rows) > SIDE_BY_SIDE_EDGES:
        (u_cols, w_cols), (w_rows, u_rows) = column_heavy(), row_heavy()
    else:
        with ThreadPoolExecutor(max_workers=1) as worker:
            from_rows = worker.submit(row_heavy)
            u_cols, w_cols = column_heavy()
            w_rows, u_rows = from_rows.result()
    return (u_cols + u_rows) / 2, (w_cols + w_rows) / 2


def solve_sparse(graph: CandidateGraph, previous: SparseSolution | None = None) -> SparseSolution | None:
    """Optimal matching on the candidate graph with its central dual potentials. Where the graph has no
    perfect matching: the matcher's maximum matching with its feasible duals (not `perfect`), from which a
    re-solve with more edges starts; or None, from scipy's solver on small graphs.

    PREVIOUS, an optimal solution of a graph with the same nodes and a subset of these edges,
    makes a re-solve cheap (the matching starts from its duals, and the potentials are corrected
    from them)."""
    found = _optimal_matching(graph, previous)
    if found is None:
        return None
    right_for_left, feasible = found
    if feasible is not None and not (maximum := SparseSolution(right_for_left, *feasible)).perfect:
        return maximum
    u, w = potentials(graph, right_for_left, previous, feasible)
    return SparseSolution(right_for_left, u, w)


def _optimal_matching(graph: CandidateGraph, previous: SparseSolution | None) -> tuple[np.ndarray, tuple[np.ndarray, np.ndarray] | None] | None:
    """The graph's optimal matching, with optimal duals where the solver gives them: scipy's on small graphs
    (no duals), the matcher's phases from PHASES_FROM pairs. A re-solve starts from PREVIOUS's column duals
    while few rows have an added edge that breaks them (only those rows are then unmatched); past
    WARM_START_SHARE of the rows, the auction's start is cheaper. Where the graph has no perfect matching,
    the matcher's maximum matching, or None from scipy's."""
    if graph.size < PHASES_FROM:
        found = _matching(graph.rows, graph.cols, -graph.scores, graph.size) if previous is None or not previous.perfect else _matching_near(graph, previous)
        return None if found is None else (found, None)
    start = None
    if previous is not None:
        slack = previous.row_potential[graph.rows] + previous.col_potential[graph.cols] - graph.scores
        # A maximum matching's added edges break only its unmatched rows' duals: its start is always the nearer
        if not previous.perfect or len(np.unique(graph.rows[slack < -graph.tolerance])) <= min(WARM_START_SHARE * graph.size, WARM_START_ROWS):
            start = previous.col_potential
    found = optimal_matching(graph.rows, graph.cols, graph.scores, graph.size, start)
    return None if found is None else (found[0], found[1:])


def _matching_near(graph: CandidateGraph, previous: SparseSolution) -> np.ndarray | None:
    """The optimal matching of GRAPH, given PREVIOUS, optimal for a subgraph of it (edges added since).

    Under PREVIOUS's duals every old edge has slack u_i + w_j - s_ij >= 0, zero on its matching,
    and the added edges that matter have negative slack; let D be the sum of those. An optimal
    matching differs from the previous one by alternating cycles, each gaining minus the sum of
    the slacks of its unmatched edges, which is >= 0, so no edge on them has slack above D.
    Solving on the edges with slack <= D (the previous matching among them) is therefore exact.
    The slacks themselves are the costs: they differ from the scores by row and column constants,
    and the solver's initial reductions then find the previous matching almost whole, leaving
    only the few rows the added edges touch to augment.
    """
    slack = previous.row_potential[graph.rows] + previous.col_potential[graph.cols] - graph.scores
    allowed = np.maximum(-slack, 0.0).sum() + 2 * graph.tolerance
    near = (slack <= allowed) | (previous.right_for_left[graph.rows] == graph.cols)
    return _matching(graph.rows[near], graph.cols[near], slack[near], graph.size)


def excluded_slack(graph: CandidateGraph, solution: SparseSolution) -> np.ndarray:
    """(N,) per row i, a lower bound on u_i + w_j - s_ij over every pair (i, j) left out of the graph.

    Uses s_ij <= min(row_bound_i, col_bound_j) and covers all N^2 pairs in O(N log N): for each
    row, the worst column among those whose bound is at least the row's (suffix minimum of w) and
    among those below it (prefix minimum of w - col_bound). No less than SOLUTION's excluded_floor, where every
    pair its bounds left under that floor was scored and joined the graph (`proof.uncovered`).
    """
    u, w = solution.row_potential, solution.col_potential
    order = np.argsort(graph.col_bound)
    sorted_bound = graph.col_bound[order]
    suffix_min_w = np.minimum.accumulate(w[order][::-1])[::-1]
    prefix_min_slack = np.minimum.accumulate(w[order] - sorted_bound)
    split = np.searchsorted(sorted_bound, graph.row_bound, side="left")  # columns [split:] have bound >= row's
    slack = np.full(graph.size, np.inf)
    high = split < graph.size
    slack[high] = u[high] + suffix_min_w[split[high]] - graph.row_bound[high]
    low = split > 0
    slack[low] = np.minimum(slack[low], u[low] + prefix_min_slack[split[low] - 1])
    return np.maximum(slack, solution.excluded_floor)
