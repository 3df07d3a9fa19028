"""Assignment: the one-to-one pairing of maximal total score, and the proof that it is optimal.

`assign_sparse` is the algorithm on large inputs: the top-k candidate graph, its optimal matching
and dual certificate (`duals`), and exact scores of the pairs the certificate's bounds cannot cover
(`proof`), round after round until the proof holds. `assign_dense` scores every pair and solves the full matrix.
"""

from __future__ import annotations

from dataclasses import replace
from functools import partial
from itertools import count

import numpy as np

from amphisbaena.runtime.confidence import REGRET_LIMIT, regrets_with_counts
from amphisbaena.runtime.duals import potentials, solve_sparse
from amphisbaena.runtime.graph import CandidateGraph, SparseSolution
from amphisbaena.runtime.proof import check
from amphisbaena.runtime.repair import with_a_perfect_matching
from amphisbaena.runtime.results import AssignmentReport, Stopwatch
from amphisbaena.runtime.scorer import PairScorer
from amphisbaena.shapes import DEFAULT_K

MAX_ROUNDS = 8
# The proof scores every pair its bounds leave under this much slack, not only the pairs that might break it:
# then no pair outside the graph can make a cycle cheaper than the regrets' cap, and every regret search is exact
PROOF_MARGIN = REGRET_LIMIT
DENSE_LIMIT = 20_000  # beyond this the dense fallback's N x N matrix would not be reasonable to hold
FULL_GRAPH_LIMIT = 1_000  # up to here the dense path's regrets are computed on every pair: exact


def solve_dense(scores: np.ndarray) -> np.ndarray:
    """right_for_left maximising the total score over the full (N, N) matrix."""
    from scipy.optimize import linear_sum_assignment  # imported here: the sparse path needs only scipy.sparse.csgraph

    rows, cols = linear_sum_assignment(scores, maximize=True)
    right_for_left = np.empty(scores.shape[0], dtype=np.int64)
    right_for_left[rows] = cols
    return right_for_left


def dense_candidates(scores: np.ndarray, right_for_left: np.ndarray, k: int = DEFAULT_K) -> CandidateGraph:
    """The chosen pairs plus every row's and column's best k from a full (N, N) score matrix, each
    row's and column's (k+1)-th best as the bound on what it leaves out (-inf where nothing is)."""
    n = len(scores)
    kept = min(k, n)
    best_cols = np.argpartition(-scores, kept - 1, axis=1)[:, :kept]
    best_rows = np.argpartition(-scores, kept - 1, axis=0)[:kept, :]
    rows = np.concatenate([np.arange(n), np.repeat(np.arange(n), kept), best_rows.T.ravel()])
    cols = np.concatenate([right_for_left, best_cols.ravel(), np.repeat(np.arange(n), kept)])
    unique = np.unique(rows * n + cols, return_index=True)[1]
    rows, cols = rows[unique], cols[unique]
    if kept < n:
        row_bound = -np.partition(-scores, kept, axis=1)[:, kept].astype(np.float64)
        col_bound = -np.partition(-scores, kept, axis=0)[kept, :].astype(np.float64)
    else:
        row_bound = col_bound = np.full(n, -np.inf)
    return CandidateGraph(rows, cols, scores[rows, cols].astype(np.float64), row_bound, col_bound)


def certified_graph(scores: np.ndarray, right_for_left: np.ndarray) -> tuple[CandidateGraph, SparseSolution]:
    """A candidate graph of the full (N, N) matrix SCORES with duals that cover every pair, for the
    optimal RIGHT_FOR_LEFT: each row's and column's best candidates, plus every pair within PROOF_MARGIN
    of the duals, which are corrected while any of those pairs breaks them."""
    n = len(scores)
    graph = dense_candidates(scores, right_for_left, k=n if n <= FULL_GRAPH_LIMIT else DEFAULT_K)
    solution = SparseSolution(right_for_left, *potentials(graph, right_for_left))
    for _ in range(MAX_ROUNDS):
        checked = check(lambda rows, cols: scores[np.ix_(rows, cols)], graph, solution, PROOF_MARGIN, threaded=False)
        graph = checked.added_to(graph)
        if not checked.violated:
            return graph, replace(solution, excluded_floor=PROOF_MARGIN)
        solution = SparseSolution(right_for_left, *potentials(graph, right_for_left, solution))
    return graph, solution


def assign_dense(scorer: PairScorer, watch: Stopwatch, reason: str = "") -> tuple[np.ndarray, np.ndarray, AssignmentReport]:
    """The optimal assignment on the full score matrix (every pair scored; scipy's solver)."""
    scores = scorer.all()
    watch.lap("head")
    right_for_left = solve_dense(scores)
    total = float(scores[np.arange(len(scores)), right_for_left].astype(np.float64).sum())
    confidence, counts = regrets_with_counts(*certified_graph(scores, right_for_left))
    watch.lap("assignment")
    return right_for_left, confidence, AssignmentReport("dense", fallback_reason=reason, total_score=total, regrets=counts.as_dict())


def assign_sparse(scorer: PairScorer, k: int, watch: Stopwatch) -> tuple[np.ndarray, np.ndarray, AssignmentReport]:
    """Optimal assignment on a top-k candidate graph, proven optimal for the full score matrix.

    The algorithm: candidates -> match -> certify -> check -> repeat.
    1. Stream every left's and right's best k into a candidate graph, with bounds on the rest.
    2. Match optimally on the graph. Where it has no perfect matching, the best pairs across each deficit of a
       maximum matching join it until one is perfect (`repair.with_a_perfect_matching`), and the graph is solved
       afresh; k doubles only where those pairs would cost more than the stream.
    3. Certify: dual potentials u, w cover every edge; `proof.check` scores every pair whose bound might
       exceed u_i + w_j - PROOF_MARGIN, and adds those within PROOF_MARGIN of the duals as edges.
    4. If any of them has s_ij > u_i + w_j, the next round re-solves; else the proof holds, and no pair
       outside the graph has less than PROOF_MARGIN of slack, which makes the regret searches exact.
    Falls back to dense if this does not settle within MAX_ROUNDS, where N allows a dense matrix (DENSE_LIMIT).
    """
    n = scorer.size[0]
    graph = scorer.candidates(k)
    watch.lap("head")
    report = AssignmentReport("sparse", k=k)
    previous = None  # the last round's solution, while the graph has only gained edges since
    with scorer.progress.stage("proof: rounds") as stage:
        # beyond DENSE_LIMIT there is no fallback, and rounds go on: each adds a pair that breaks the duals, so they end
        for round_number in range(1, MAX_ROUNDS + 1) if n <= DENSE_LIMIT else count(1):
            report.rounds = round_number
            stage.advance()
            solution = solve_sparse(graph, previous)
            if solution is None or not solution.perfect:  # no perfect matching
                watch.lap("assignment")
                repaired = with_a_perfect_matching(scorer, graph, report.k, solution)
                graph, report.k, report.repaired_rows = repaired.graph, repaired.k, report.repaired_rows + repaired.rows
                del repaired, solution  # else they would stay alive through the next solve
                previous = None  # a cold start: the maximum matching's duals are far off where it was short
                watch.lap("head")
                continue
            watch.lap("assignment")
            checked = check(partial(scorer.columns, beside_host=True), graph, solution, PROOF_MARGIN, scorer.backend.any_thread, scorer.pruner)
            graph = checked.added_to(graph)
            report.rescored_rows += checked.rows_checked
            report.added_edges += len(checked.rows)
            violated = checked.violated
            del checked  # its pairs are the graph's edges now
            watch.lap("head")
            if violated:
                previous = solution
                continue
            solution = replace(solution, excluded_floor=PROOF_MARGIN)
            right_for_left = solution.right_for_left
            report.candidate_edges = len(graph.rows)
            report.scored_pairs = graph.scored_pairs
            report.total_score = float(graph.scores[graph.chosen(right_for_left)].sum())
            report.proof = (
                "dual potentials u, w with u_i + w_j = s_ij on all chosen pairs and u_i + w_j >= s_ij on every pair: "
                f"on {len(graph.rows)} candidate edges exactly, on excluded pairs by top-{report.k} score bounds"
                + (" and geometry bounds on the pairs never scored" if graph.scored_pairs is not None else "")
                + f"; every pair those bounds left within {PROOF_MARGIN} of u_i + w_j scored exactly, {report.added_edges} of them added as edges"
            )
            confidence, counts = regrets_with_counts(graph, solution)
            report.regrets = counts.as_dict()
            watch.lap("assignment")
            return right_for_left, confidence, report
    return assign_dense(scorer, watch, reason=f"sparse path unsettled after {report.rounds} rounds (k={k})")
