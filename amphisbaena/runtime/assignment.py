"""One-to-one assignment of left halves to right halves by maximal total score.

`solve_dense` runs scipy's Hungarian-type solver on the full matrix. `solve_sparse`
solves on a candidate graph (top-k per row and per column), then *proves* the
result is also optimal for the full matrix with LP duality:

    potentials u (rows) and w (columns) with u_i + w_j >= s_ij for every pair,
    and u_i + w_j == s_ij on the chosen pairs, certify a maximum-score matching.

On the candidate edges the potentials come from shortest paths in the residual
graph of the optimal sparse matching. For an excluded pair (i, j), s_ij is at
most min(row_bound_i, col_bound_j), the (k+1)-th best score of row i and of
column j; where even that bound could exceed u_i + w_j the caller rescores the
row exactly, any true violation becomes a new candidate edge, and the row's
bound tightens to its largest excluded score.
"""

from __future__ import annotations

from collections.abc import Iterable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

import numpy as np
from scipy.optimize import linear_sum_assignment
from scipy.sparse import csr_matrix
from scipy.sparse.csgraph import min_weight_full_bipartite_matching


def solve_dense(scores: np.ndarray) -> np.ndarray:
    """right_for_left maximising the total score over the full (N, N) matrix."""
    rows, cols = linear_sum_assignment(scores, maximize=True)
    right_for_left = np.empty(scores.shape[0], dtype=np.int64)
    right_for_left[rows] = cols
    return right_for_left


@dataclass
class CandidateGraph:
    """Candidate pairs with their exact scores, plus upper bounds on every excluded pair's score."""

    rows: np.ndarray  # int64 (E,)
    cols: np.ndarray  # int64 (E,)
    scores: np.ndarray  # float64 (E,)
    row_bound: np.ndarray  # (N,) every excluded score in row i is <= row_bound[i] (-inf: none excluded)
    col_bound: np.ndarray  # (N,) every excluded score in column j is <= col_bound[j]
    scored_pairs: int | None = None  # pairs the head scored to build it; None: every pair
    # bool (E,): each row's and column's best few edges (`_potentials`); None where not known, as after
    # absorb_rows, whose graphs are always re-solved from the previous round's duals, which need no core
    core: np.ndarray | None = None

    @property
    def size(self) -> int:
        return len(self.row_bound)

    def chosen(self, right_for_left: np.ndarray) -> np.ndarray:
        """Mask of the edges a matching uses (every chosen pair is a candidate edge)."""
        return right_for_left[self.rows] == self.cols

    def absorb_rows(
        self, rows: np.ndarray, strips: Iterable[tuple[np.ndarray, int | None]], solution: SparseSolution
    ) -> tuple[CandidateGraph, int]:
        """Fold scores of whole ROWS back in: every pair the duals do not cover becomes an edge,
        and each row's bound tightens to the largest score still excluded.

        STRIPS yields, for consecutive slices of ROWS, (exact, scored): their (len, N) scores, where
        an upper bound may stand in for a pair's score that the duals cover (it then only bounds the
        row), and how many pairs were actually scored (None: all). Strips come one at a time, so
        memory stays at one strip; the graph is rebuilt once. Returns it and the edges it gained."""
        n, tol = self.size, tolerance(self)
        position = np.full(n, -1)
        position[rows] = np.arange(len(rows))
        on_rows = position[self.rows] >= 0
        held_position, held_col = position[self.rows[on_rows]], self.cols[on_rows]
        order = np.argsort(held_position, kind="stable")
        held_position, held_col = held_position[order], held_col[order]
        row_bound = self.row_bound.copy()
        new_rows, new_cols, new_scores, scored_total, start = [], [], [], 0, 0
        for exact, scored in strips:
            stop = start + len(exact)
            chunk = rows[start:stop]
            lo, hi = np.searchsorted(held_position, [start, stop])
            excluded = np.ones(exact.shape, dtype=bool)
            excluded[held_position[lo:hi] - start, held_col[lo:hi]] = False
            covered = exact <= solution.row_potential[chunk, None] + solution.col_potential[None, :] + tol
            new_r, new_c = np.nonzero(excluded & ~covered)
            excluded[new_r, new_c] = False
            row_bound[chunk] = np.where(excluded, exact, -np.inf).max(axis=1)
            new_rows.append(chunk[new_r])
            new_cols.append(new_c)
            new_scores.append(exact[new_r, new_c].astype(np.float64))
            scored_total += exact.size if scored is None else scored
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


@dataclass
class SparseSolution:
    right_for_left: np.ndarray
    row_potential: np.ndarray
    col_potential: np.ndarray


def _matching(rows: np.ndarray, cols: np.ndarray, costs: np.ndarray, n: int) -> np.ndarray | None:
    """Minimum-cost perfect matching of N rows and N columns on the edges (ROWS, COLS) with COSTS,
    or None if none exists."""
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
    # Nodes 0..n-1 are rows, n..2n-1 are columns; edges sorted by tail, so a node's edges are one run.
    tails = np.where(matched, cols + n, rows)
    order = np.argsort(tails, kind="stable")
    tails, heads = tails[order], np.where(matched, rows, cols + n)[order]
    weights = np.where(matched, scores, -scores)[order]
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
    for _ in range(2 * n + 1):
        counts = last[active] - first[active]
        edges = np.arange(counts.sum()) + np.repeat(first[active] - (np.cumsum(counts) - counts), counts)
        relaxed = distance[tails[edges]] + weights[edges]
        improved = relaxed < distance[heads[edges]] - 1e-12
        if not improved.any():
            break
        np.minimum.at(distance, heads[edges[improved]], relaxed[improved])
        active = np.unique(heads[edges[improved]])
    else:
        raise RuntimeError("residual graph has a negative cycle: the sparse matching is not optimal")
    w = -distance[n:]
    return matched_score - w[right_for_left], w  # u tight on the matching


def _potentials(
    graph: CandidateGraph, right_for_left: np.ndarray, start: SparseSolution | None = None
) -> tuple[np.ndarray, np.ndarray]:
    """Central optimal duals: the mean of the column-heavy and the row-heavy extremes.

    Any convex combination of optimal duals is optimal. The extremes put all the
    slack on one side, so excluded pairs fail the bound check there; the mean
    keeps both u and w comfortable, which is what certifies excluded pairs.
    From START (an earlier round's central duals) both passes only correct what
    changed, so their mean stays near the earlier centre. The two passes run in two
    threads: their large array operations release the GIL (measured 1.8x at 60k).

    Without START, a graph that marks its core (each row's and column's best few edges)
    gets its duals there first, where the shortest paths take an eighth of the edges
    (k = 64), and then only corrected on the whole graph, where few edges are violated
    (on one 60k graph: 6.7 s -> 4.1 s; at 10k 0.18 s -> 0.16 s, and the proof rescores
    187 rows instead of 236 with a core of 16).
    """
    core = None if start is not None or graph.core is None else graph.core | (right_for_left[graph.rows] == graph.cols)
    if core is not None and not core.all():
        inner = CandidateGraph(graph.rows[core], graph.cols[core], graph.scores[core], graph.row_bound, graph.col_bound)
        start = SparseSolution(right_for_left, *_potentials(inner, right_for_left))
    scores = graph.scores.astype(np.float64)
    left_for_right = np.empty_like(right_for_left)
    left_for_right[right_for_left] = np.arange(len(right_for_left))
    start_w, start_u = (None, None) if start is None else (start.col_potential, start.row_potential)
    with ThreadPoolExecutor(max_workers=1) as worker:
        row_heavy = worker.submit(_potentials_by_shortest_paths, graph.cols, graph.rows, scores, left_for_right, start_u)
        u_cols, w_cols = _potentials_by_shortest_paths(graph.rows, graph.cols, scores, right_for_left, start_w)
        w_rows, u_rows = row_heavy.result()
    return (u_cols + u_rows) / 2, (w_cols + w_rows) / 2


def solve_sparse(graph: CandidateGraph, previous: SparseSolution | None = None) -> SparseSolution | None:
    """Optimal matching on the candidate graph with its dual potentials; None if no perfect matching.

    PREVIOUS, an optimal solution of a graph with the same nodes and a subset of these edges,
    makes a re-solve cheap (`_matching_near`, and potentials corrected from its duals)."""
    if previous is None:
        right_for_left = _matching(graph.rows, graph.cols, -graph.scores, graph.size)
    else:
        right_for_left = _matching_near(graph, previous)
    if right_for_left is None:
        return None
    u, w = _potentials(graph, right_for_left, previous)
    return SparseSolution(right_for_left, u, w)


def _matching_near(graph: CandidateGraph, previous: SparseSolution) -> np.ndarray:
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
    allowed = np.maximum(-slack, 0.0).sum() + 2 * tolerance(graph)
    near = (slack <= allowed) | (previous.right_for_left[graph.rows] == graph.cols)
    return _matching(graph.rows[near], graph.cols[near], slack[near], graph.size)


def tolerance(graph: CandidateGraph) -> float:
    """Slack allowed for float32 rounding of the scores, relative to their typical magnitude
    (not the largest: a few heavily penalised candidates must not loosen the proof)."""
    return 1e-5 * (1.0 + float(np.median(np.abs(graph.scores))))


def rows_needing_rescore(graph: CandidateGraph, solution: SparseSolution) -> np.ndarray:
    """Rows i for which some excluded pair (i, j) might have s_ij > u_i + w_j.

    Uses s_ij <= min(row_bound_i, col_bound_j) and checks all N^2 pairs in
    O(N log N): for each row, the worst column among those whose bound is at
    least the row's (suffix minimum of w) and among those below it (prefix
    minimum of w - col_bound).
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
    return np.flatnonzero(slack < -tolerance(graph))



def confidence_margins(graph: CandidateGraph, right_for_left: np.ndarray) -> np.ndarray:
    """Per left i: its chosen score minus the best alternative, for its row or for its chosen column.

    Exact, because each row's and column's best k (k >= 2) are candidate edges, so the runner-up
    of every row and column is among them; where it is not, the (k+1)-th-best bound stands in.
    """
    n = graph.size
    chosen = graph.chosen(right_for_left)
    chosen_score = np.empty(n)
    chosen_score[graph.rows[chosen]] = graph.scores[chosen]
    row_alternative = graph.row_bound.copy()
    np.maximum.at(row_alternative, graph.rows[~chosen], graph.scores[~chosen])
    col_alternative = graph.col_bound.copy()
    np.maximum.at(col_alternative, graph.cols[~chosen], graph.scores[~chosen])
    return chosen_score - np.maximum(row_alternative, col_alternative[right_for_left])


def dense_candidates(scores: np.ndarray, right_for_left: np.ndarray) -> CandidateGraph:
    """The chosen pairs plus every row's and column's best two, from a full score matrix."""
    n = len(scores)
    best_cols = np.argpartition(scores, -2, axis=1)[:, -2:]
    best_rows = np.argpartition(scores, -2, axis=0)[-2:, :]
    rows = np.concatenate([np.arange(n), np.repeat(np.arange(n), 2), best_rows.T.ravel()])
    cols = np.concatenate([right_for_left, best_cols.ravel(), np.repeat(np.arange(n), 2)])
    unique = np.unique(rows * n + cols, return_index=True)[1]
    rows, cols = rows[unique], cols[unique]
    nothing = np.full(n, -np.inf)
    return CandidateGraph(rows, cols, scores[rows, cols].astype(np.float64), nothing, nothing)


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
