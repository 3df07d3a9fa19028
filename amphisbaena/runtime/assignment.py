"""One-to-one assignment of left halves to right halves by maximal total score.

`solve_dense` runs scipy's Hungarian-type solver on the full matrix. `solve_sparse`
solves on a candidate graph (top-k per row and per column), then *proves* the
result is also optimal for the full matrix with LP duality:

    potentials u (rows) and w (columns) with u_i + w_j >= s_ij for every pair,
    and u_i + w_j == s_ij on the chosen pairs, certify a maximum-score matching.

On the candidate edges the potentials come from shortest paths in the residual
graph of the optimal sparse matching. For an excluded pair (i, j), s_ij is at
most min(row_bound_i, col_bound_j), the smallest score kept for row i and
column j; where even that bound could exceed u_i + w_j the caller rescores the
row exactly, and any true violation becomes a new candidate edge.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy.optimize import linear_sum_assignment
from scipy.sparse import coo_matrix, csr_matrix
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
    row_bound: np.ndarray  # (N,) every excluded score in row i is <= row_bound[i]
    col_bound: np.ndarray  # (N,) every excluded score in column j is <= col_bound[j]

    @property
    def size(self) -> int:
        return len(self.row_bound)

    def with_edges(self, rows: np.ndarray, cols: np.ndarray, scores: np.ndarray) -> CandidateGraph:
        """The same graph plus extra exactly-scored edges (duplicates collapse)."""
        all_rows = np.concatenate([self.rows, rows])
        all_cols = np.concatenate([self.cols, cols])
        all_scores = np.concatenate([self.scores, scores])
        _, unique = np.unique(all_rows * self.size + all_cols, return_index=True)
        return CandidateGraph(all_rows[unique], all_cols[unique], all_scores[unique], self.row_bound, self.col_bound)


@dataclass
class SparseSolution:
    right_for_left: np.ndarray
    row_potential: np.ndarray
    col_potential: np.ndarray


def _matching(graph: CandidateGraph) -> np.ndarray | None:
    """Maximum-score perfect matching on the candidate edges, or None if none exists."""
    n = graph.size
    # Costs must be strictly positive: csgraph treats stored zeros as missing edges.
    cost = (graph.scores.max() - graph.scores) + 1.0
    matrix = csr_matrix((cost, (graph.rows, graph.cols)), shape=(n, n))
    try:
        _, right_for_left = min_weight_full_bipartite_matching(matrix)
    except ValueError:
        return None
    return right_for_left.astype(np.int64)


def _potentials(graph: CandidateGraph, right_for_left: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Dual potentials (u, w) with u_i + w_j >= s_ij on every candidate edge and equality on the matching.

    Shortest paths from a virtual source to every node of the residual graph
    (row -> column along unmatched edges with cost -s, column -> row along
    matched edges with cost +s); optimality means it has no negative cycle, so a
    vectorised Bellman-Ford converges, usually in a few dozen sweeps.
    """
    n = graph.size
    matched = right_for_left[graph.rows] == graph.cols
    cost = -graph.scores.astype(np.float64)
    # Nodes 0..n-1 are rows, n..2n-1 are columns.
    tails = np.where(matched, graph.cols + n, graph.rows)
    heads = np.where(matched, graph.rows, graph.cols + n)
    weights = np.where(matched, -cost, cost)
    distance = np.zeros(2 * n)
    for _ in range(2 * n + 1):
        relaxed = distance[tails] + weights
        improved = relaxed < distance[heads] - 1e-12
        if not improved.any():
            break
        np.minimum.at(distance, heads[improved], relaxed[improved])
    else:
        raise RuntimeError("residual graph has a negative cycle: the sparse matching is not optimal")
    # cost-form duals: p_row + q_col <= cost on all edges; q = distance of columns.
    q = distance[n:]
    p = cost[matched][np.argsort(graph.rows[matched])] - q[right_for_left]  # tight on the matching
    return -p, -q  # score form: u_i + w_j >= s_ij


def solve_sparse(graph: CandidateGraph) -> SparseSolution | None:
    """Optimal matching on the candidate graph with its dual potentials; None if no perfect matching."""
    right_for_left = _matching(graph)
    if right_for_left is None:
        return None
    u, w = _potentials(graph, right_for_left)
    return SparseSolution(right_for_left, u, w)


def rows_needing_rescore(graph: CandidateGraph, solution: SparseSolution, tolerance: float = 1e-4) -> np.ndarray:
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
    return np.flatnonzero(slack < -tolerance)


def violations(row: int, row_scores: np.ndarray, solution: SparseSolution, tolerance: float = 1e-4) -> np.ndarray:
    """Columns j of ROW (exactly rescored) with s_ij > u_i + w_j: pairs the candidate graph must gain."""
    return np.flatnonzero(row_scores > solution.row_potential[row] + solution.col_potential + tolerance)
