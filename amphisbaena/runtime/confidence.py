"""How sure each match is: its regret, what the optimal total score loses if that pair is forbidden.

Optimal duals u, w (u_i + w_j >= s_ij on every pair, with equality on the chosen pairs) give every
pair a slack c_ij = u_i + w_j - s_ij >= 0, zero on the matching. Forbidding the chosen pair
(i, j = right_for_left[i]) forces an alternating cycle through i: i -> j1 -> the left matched to j1
-> ... -> some left r -> j. The optimal total then drops by the cheapest such cycle's total slack
(chosen pairs cost nothing), so the regret is a shortest path over the lefts, where left a leads to
the left matched to b along every unchosen pair (a, b), at cost c_ab (Dijkstra; all costs >= 0).

A regret is >= 0, and 0 only where another optimal pairing avoids the pair. On the sparse path only
the candidate edges are known exactly; every pair left out of left r has slack at least
`duals.excluded_slack`[r] (the bound that proves optimality; the proof scores every pair it leaves under
REGRET_LIMIT, `assignment.PROOF_MARGIN`, so none is cheaper than the cap). A cycle leaving the candidates
first does so at some left r it reached along candidates, so

    regret(i) >= min(cheapest candidate cycle through i, min over r of dist(i, r) + max(excluded_slack[r], e)),

where e is the cheapest way into right_for_left[i] other than its chosen pair,

a proven lower bound (exact where no cycle would leave the candidates). Searches stop at LIMIT: a
regret reported as LIMIT is at least LIMIT; and each stops at its match's cheapest cycle of two unchosen
pairs, which bounds the regret from above. Before any search, the cheapest pair leaving left i plus the
cheapest entering its right bound the regret from below; where the searches would exceed their budget of
distances (`search_budget`: large pools of look-alike halves), the matches left unsearched keep that bound.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import asdict, dataclass

import numpy as np
from scipy.sparse import csr_matrix
from scipy.sparse.csgraph import connected_components, dijkstra

from amphisbaena.runtime.arrays import minimum_by_group, nonzero_2d
from amphisbaena.runtime.duals import excluded_slack
from amphisbaena.runtime.graph import CandidateGraph, SparseSolution

REGRET_LIMIT = 1.0  # score units: regrets above it are reported as 1 (at least 1)
BATCH_CELLS = 1 << 22  # distances one search batch may hold
BATCH_SOURCES = 128  # searches one batch may hold: a batch reaches as far as its farthest source needs, so fewer stop sooner
SEARCH_CELLS = 1 << 24  # distances all searches together may compute per SEARCH_PAIRS matches; past it, the cheap bound stands
SEARCH_PAIRS = 10_000  # the budget grows in proportion to the matches beyond this many (docs/performance.md)


def search_budget(n: int) -> int:
    """Distances the searches of N matches may compute: SEARCH_CELLS per SEARCH_PAIRS matches, at least SEARCH_CELLS."""
    return int(SEARCH_CELLS * max(1.0, n / SEARCH_PAIRS))


@dataclass(frozen=True)
class RegretCounts:
    """How each match's regret was found: SEARCHED by a shortest-path search (exact where no cheaper cycle
    leaves the candidate graph), AT_CAP by the cheap bound alone (it already reaches the cap), and
    BOUND_ONLY where the search budget ran out and the cheap lower bound stands."""

    searched: int
    at_cap: int
    bound_only: int

    def as_dict(self) -> dict:
        return asdict(self)


def regrets(graph: CandidateGraph, solution: SparseSolution, limit: float = REGRET_LIMIT) -> np.ndarray:
    """(N,) lower bound on the regret of every chosen pair, capped at LIMIT (`regrets_with_counts`)."""
    return regrets_with_counts(graph, solution, limit)[0]


def regrets_with_counts(graph: CandidateGraph, solution: SparseSolution, limit: float = REGRET_LIMIT) -> tuple[np.ndarray, RegretCounts]:
    """(N,) lower bound on the regret of every chosen pair, capped at LIMIT (see the module docstring),
    and how many were searched or bounded (`RegretCounts`).

    GRAPH: the candidate graph the proof holds for; SOLUTION: its optimal matching and duals. Only pairs
    with slack under LIMIT can lie on a cycle cheaper than LIMIT, and they join few lefts: the searches run
    on that sparse graph, one group of its connected components at a time."""
    n = graph.size
    right_for_left, u, w = solution.right_for_left, solution.row_potential, solution.col_potential
    left_for_right = np.empty(n, dtype=np.int64)
    left_for_right[right_for_left] = np.arange(n)
    unchosen = right_for_left[graph.rows] != graph.cols
    rows, cols = graph.rows[unchosen], graph.cols[unchosen]
    all_slack = np.maximum(u[rows] + w[cols] - graph.scores[unchosen], 0.0)
    leave = np.maximum(excluded_slack(graph, solution), 0.0)  # cost of the first pair outside the graph
    # Any cycle through i leaves left i along one unchosen pair and enters right_for_left[i] along
    # another, so the cheapest of each bounds the regret from below; only lefts whose bound is
    # under LIMIT need a search.
    enter = np.maximum(excluded_slack(graph.transposed(), SparseSolution(right_for_left, w, u, solution.excluded_floor)), 0.0)
    leave_cheapest, enter_cheapest = minimum_by_group(leave, rows, all_slack), minimum_by_group(enter, cols, all_slack)
    regret = np.minimum(leave_cheapest + enter_cheapest[right_for_left], limit)
    searched = np.flatnonzero(regret < limit)
    useful = all_slack < limit
    tails, heads, slack = rows[useful], left_for_right[cols[useful]], all_slack[useful]
    # Number the lefts component by component, so that every search stays inside one contiguous range.
    _, component = connected_components(csr_matrix((np.ones(len(tails)), (tails, heads)), shape=(n, n)), connection="weak")
    order = np.argsort(component, kind="stable")
    place = np.empty(n, dtype=np.int64)
    place[order] = np.arange(n)
    ends = np.searchsorted(component[order], np.arange(component.max() + 2))
    # csgraph drops explicit zeros; a slack of exactly 0 (a tie) is kept as the smallest positive step
    steps = csr_matrix((np.maximum(slack, np.finfo(np.float64).tiny), (place[tails], place[heads])), shape=(n, n))
    closing_into = np.full(n, -1)  # for each searched left, nothing yet
    within = _two_pair_cycles(tails, heads, slack, n)
    searched = searched[np.lexsort((within[searched], component[searched]))]  # by component, then by that bound
    done = 0
    for sources, low, high in _batches(searched, component, ends, cells=BATCH_CELLS, budget=search_budget(n)):
        done += len(sources)
        best = np.full(len(sources), np.inf)
        # No search need look further than its cheapest two-pair cycle, which it will find: farther lefts
        # only lead to dearer cycles and routes.
        reach = min(limit, float(within[sources].max()) + 1e-9)
        distance = dijkstra(steps[low:high, low:high], directed=True, indices=place[sources] - low, limit=reach)
        # Close the cycle of source i along an unchosen pair (r, right_for_left[i]) from a left r it reaches ...
        closing_into[sources] = np.arange(len(sources))
        closing = closing_into[heads] >= 0
        cycle = distance[closing_into[heads[closing]], place[tails[closing]] - low] + slack[closing]
        np.minimum.at(best, closing_into[heads[closing]], cycle)
        closing_into[sources] = -1
        # ... or leave the graph from any left r it reaches (r = i itself included): that pair costs at
        # least leave[r], and the cycle still has to enter right_for_left[i] (it may be the same pair).
        reached_source, reached = nonzero_2d(np.isfinite(distance))
        route = distance[reached_source, reached] + np.maximum(leave[order[low + reached]], enter_cheapest[right_for_left[sources[reached_source]]])
        np.minimum.at(best, reached_source, route)
        regret[sources] = np.maximum(np.minimum(best, limit), regret[sources])
    return np.minimum(regret, limit), RegretCounts(done, n - len(searched), len(searched) - done)


def _two_pair_cycles(tails: np.ndarray, heads: np.ndarray, slack: np.ndarray, n: int) -> np.ndarray:
    """(N,) for each left i, the cheapest cycle of two unchosen pairs through it (inf where none): i takes the
    right of a left h along one pair and h takes i's right along the other, so the edges i -> h and h -> i
    of the search graph (TAILS -> HEADS with costs SLACK) both exist. Each is a pairing without i's pair,
    so this bounds i's regret from above."""
    keys = tails * n + heads
    order = np.argsort(keys)
    reverse = heads * n + tails
    position = np.minimum(np.searchsorted(keys[order], reverse), len(keys) - 1)
    found = np.flatnonzero(keys[order][position] == reverse)
    cheapest = np.full(n, np.inf)
    np.minimum.at(cheapest, tails[found], slack[found] + slack[order[position[found]]])
    return cheapest


def _batches(
    sources: np.ndarray, component: np.ndarray, ends: np.ndarray, cells: int = BATCH_CELLS, budget: int = SEARCH_CELLS
) -> Iterator[tuple[np.ndarray, int, int]]:
    """SOURCES (ordered by their component's place) in batches (sources, low, high) whose lefts are numbered
    low..high-1: consecutive small components share a batch, a large one's sources are split, and each
    batch's distance block holds about CELLS entries at most. Stops once BUDGET entries are spent: the
    sources left over keep their cheap bound."""
    start = spent = 0
    while start < len(sources) and spent < budget:
        first = component[sources[start]]
        low, high = ends[first], ends[first + 1]
        stop = start + 1
        while stop < len(sources):
            next_high = ends[component[sources[stop]] + 1]
            if stop - start == BATCH_SOURCES or (stop + 1 - start) * (next_high - low) > cells:
                break
            stop, high = stop + 1, next_high
        yield sources[start:stop], low, high
        spent += (stop - start) * (high - low)
        start = stop
