"""How sure each match is: its regret, what the optimal total score loses if that pair is forbidden.

Optimal duals u, w (u_i + w_j >= s_ij on every pair, with equality on the chosen pairs) give every
pair a slack c_ij = u_i + w_j - s_ij >= 0, zero on the matching. Forbidding the chosen pair
(i, j = right_for_left[i]) forces an alternating cycle through i: i -> j1 -> the left matched to j1
-> ... -> some left r -> j. The optimal total then drops by the cheapest such cycle's total slack
(chosen pairs cost nothing), so the regret is a shortest path over the lefts, where left a leads to
the left matched to b along every unchosen pair (a, b), at cost c_ab (Dijkstra; all costs >= 0).

A regret is >= 0, and 0 only where another optimal pairing avoids the pair. On the sparse path only
the candidate edges are known exactly; every pair left out of left r has slack at least
`duals.excluded_slack`[r] (the bound that proves optimality). A cycle leaving the candidates first
does so at some left r it reached along candidates, so

    regret(i) >= min(cheapest candidate cycle through i, min over r of dist(i, r) + max(excluded_slack[r], e)),

where e is the cheapest way into right_for_left[i] other than its chosen pair,

a proven lower bound (exact where no cycle would leave the candidates). Searches stop at LIMIT: a
regret reported as LIMIT is at least LIMIT.
"""

from __future__ import annotations

import numpy as np
from scipy.sparse import csr_matrix
from scipy.sparse.csgraph import dijkstra

from amphisbaena.runtime.duals import excluded_slack
from amphisbaena.runtime.graph import CandidateGraph, SparseSolution

REGRET_LIMIT = 1.0  # score units: regrets above it are reported as 1 (at least 1)
SOURCES_PER_BATCH = 512  # lefts searched at once: a (512, N) block of distances


def regrets(graph: CandidateGraph, solution: SparseSolution, limit: float = REGRET_LIMIT) -> np.ndarray:
    """(N,) lower bound on the regret of every chosen pair, capped at LIMIT (see the module docstring).

    GRAPH: the candidate graph the proof holds for; SOLUTION: its optimal matching and duals."""
    n = graph.size
    right_for_left, u, w = solution.right_for_left, solution.row_potential, solution.col_potential
    left_for_right = np.empty(n, dtype=np.int64)
    left_for_right[right_for_left] = np.arange(n)
    unchosen = right_for_left[graph.rows] != graph.cols
    tails, heads = graph.rows[unchosen], left_for_right[graph.cols[unchosen]]
    slack = np.maximum(u[graph.rows[unchosen]] + w[graph.cols[unchosen]] - graph.scores[unchosen], 0.0)
    # csgraph drops explicit zeros; a slack of exactly 0 (a tie) is kept as the smallest positive step
    steps = csr_matrix((np.maximum(slack, np.finfo(np.float64).tiny), (tails, heads)), shape=(n, n))
    leave = np.maximum(excluded_slack(graph, solution), 0.0)  # cost of the first pair outside the graph
    # Any cycle through i leaves left i along one unchosen pair and enters right_for_left[i] along
    # another, so the cheapest of each bounds the regret from below; only lefts whose bound is
    # under LIMIT need a search.
    enter = np.maximum(excluded_slack(graph.transposed(), SparseSolution(right_for_left, w, u)), 0.0)
    leave_cheapest, enter_cheapest = leave.copy(), enter.copy()
    np.minimum.at(leave_cheapest, graph.rows[unchosen], slack)
    np.minimum.at(enter_cheapest, graph.cols[unchosen], slack)
    regret = np.minimum(leave_cheapest + enter_cheapest[right_for_left], limit)
    searched = np.flatnonzero(regret < limit)
    for start in range(0, len(searched), SOURCES_PER_BATCH):
        sources = searched[start : start + SOURCES_PER_BATCH]
        row_of = np.full(n, -1)
        row_of[sources] = np.arange(len(sources))
        distance = dijkstra(steps, directed=True, indices=sources, limit=limit)  # inf beyond LIMIT
        # Close the cycle of source i along an unchosen candidate (r, right_for_left[i]) ...
        closing = row_of[heads] >= 0
        cycle = distance[row_of[heads[closing]], tails[closing]] + slack[closing]
        best = np.full(len(sources), np.inf)
        np.minimum.at(best, row_of[heads[closing]], cycle)
        # ... or leave the graph from any left r the source reaches (r = i itself included): that pair
        # costs at least leave[r], and the cycle still has to enter right_for_left[i] (it may be the same pair).
        reached_source, reached = np.nonzero(np.isfinite(distance))  # the lefts each search reached within LIMIT
        route = distance[reached_source, reached] + np.maximum(leave[reached], enter_cheapest[right_for_left[sources[reached_source]]])
        np.minimum.at(best, reached_source, route)
        regret[sources] = np.maximum(np.minimum(best, limit), regret[sources])
    return np.minimum(regret, limit)


def margins(graph: CandidateGraph, right_for_left: np.ndarray) -> np.ndarray:
    """The earlier confidence, kept to compare against (benchmarks/confidence.py): per left i, its
    chosen score minus the best alternative for its row or its chosen column. Negative wherever the
    row holds a higher score that the assignment gave to another left."""
    n = graph.size
    chosen = graph.chosen(right_for_left)
    chosen_score = np.empty(n)
    chosen_score[graph.rows[chosen]] = graph.scores[chosen]
    row_alternative = graph.row_bound.copy()
    np.maximum.at(row_alternative, graph.rows[~chosen], graph.scores[~chosen])
    col_alternative = graph.col_bound.copy()
    np.maximum.at(col_alternative, graph.cols[~chosen], graph.scores[~chosen])
    return chosen_score - np.maximum(row_alternative, col_alternative[right_for_left])
