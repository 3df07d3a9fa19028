"""Assignment: the one-to-one pairing of maximal total score, and the proof that it is optimal.

`assign_sparse` is the algorithm on large inputs: the top-k candidate graph, its optimal matching
and dual certificate (`duals`), and exact rescoring of the rows the certificate cannot cover, round
after round until the proof holds. `assign_dense` scores every pair and solves the full matrix.
"""

from __future__ import annotations

from functools import partial

import numpy as np

from amphisbaena.runtime.confidence import regrets_with_counts
from amphisbaena.runtime.duals import potentials, rows_needing_rescore, solve_sparse
from amphisbaena.runtime.graph import CandidateGraph, RescoredStrip, SparseSolution
from amphisbaena.runtime.overlap import one_ahead
from amphisbaena.runtime.results import AssignmentReport, Stopwatch
from amphisbaena.runtime.scorer import PairScorer
from amphisbaena.shapes import DEFAULT_K, TILE_ROWS

MAX_ROUNDS = 8
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
    optimal RIGHT_FOR_LEFT: each row's and column's best candidates, plus the whole of every row the
    bounds cannot yet certify, until they all can."""
    n = len(scores)
    graph = dense_candidates(scores, right_for_left, k=n if n <= FULL_GRAPH_LIMIT else DEFAULT_K)
    solution = SparseSolution(right_for_left, *potentials(graph, right_for_left))
    for _ in range(MAX_ROUNDS):
        suspects = rows_needing_rescore(graph, solution)
        if len(suspects) == 0:
            break
        graph, _ = graph.absorb_rows(suspects, [RescoredStrip.dense(scores[suspects])], solution)
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

    The algorithm: candidates -> match -> certify -> rescore -> repeat.
    1. Stream every left's and right's best k into a candidate graph, with bounds on the rest.
    2. Match optimally on the graph (k doubles while it has no perfect matching).
    3. Certify: dual potentials u, w cover every edge; `rows_needing_rescore` finds the rows where a
       bound might exceed u_i + w_j.
    4. Rescore those rows exactly; any true violation becomes an edge, and the next round re-solves.
    Falls back to dense only if this does not settle within MAX_ROUNDS.
    """
    n = scorer.size[0]
    pruner = scorer.pruner
    graph = scorer.candidates(k)
    watch.lap("head")
    report = AssignmentReport("sparse", k=k)
    previous = None  # the last round's solution, while the graph has only gained edges since
    with scorer.progress.stage("proof: rounds") as stage:
        for round_number in range(1, MAX_ROUNDS + 1):
            report.rounds = round_number
            stage.advance()
            solution = solve_sparse(graph, previous)
            if solution is None:
                if k >= n:
                    break
                k, previous = min(2 * k, n), None
                report.k = k
                watch.lap("assignment")
                graph = scorer.candidates(k)
                watch.lap("head")
                continue
            suspects = rows_needing_rescore(graph, solution)
            if pruner is not None:  # rows of one group share the rights their bounds cannot rule out
                suspects = suspects[np.argsort(pruner.group_of[suspects], kind="stable")]
            watch.lap("assignment")
            if len(suspects):
                chunks = np.array_split(suspects, range(TILE_ROWS, len(suspects), TILE_ROWS))
                strips = one_ahead(  # a strip at a time (and the next two scoring): memory stays O(TILE_ROWS * N)
                    (partial(scorer.rescore_rows, chunk, solution) for chunk in chunks), scorer.backend.any_thread, in_flight=2
                )  # absorbing a strip takes a fraction of scoring one: two score at once (docs/performance.md)
                graph, added = graph.absorb_rows(suspects, strips, solution)
                watch.lap("head")
                report.rescored_rows += len(suspects)
                report.added_edges += added
                if added:
                    previous = solution
                    continue
            right_for_left = solution.right_for_left
            report.candidate_edges = len(graph.rows)
            report.scored_pairs = graph.scored_pairs
            report.total_score = float(graph.scores[graph.chosen(right_for_left)].sum())
            report.proof = (
                "dual potentials u, w with u_i + w_j = s_ij on all chosen pairs and u_i + w_j >= s_ij on every pair: "
                f"on {len(graph.rows)} candidate edges exactly, on excluded pairs by top-{report.k} score bounds"
                + (" and geometry bounds on the pairs never scored" if graph.scored_pairs is not None else "")
                + (f" or exact rescoring of {report.rescored_rows} rows" if report.rescored_rows else "")
            )
            confidence, counts = regrets_with_counts(graph, solution)
            report.regrets = counts.as_dict()
            watch.lap("assignment")
            return right_for_left, confidence, report
    if n > DENSE_LIMIT:
        raise RuntimeError(f"sparse assignment did not settle after {report.rounds} rounds and N={n} is too large for the dense fallback")
    return assign_dense(scorer, watch, reason=f"sparse path unsettled after {report.rounds} rounds (k={k})")
