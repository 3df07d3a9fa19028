"""The repair of a candidate graph without a perfect matching: the real pairs that augmenting paths need.

A maximum matching M of the graph G leaves rows U and columns C unmatched, as many of each. Alternating paths
from U reach the rows S (the Hall set: N(S), their columns, are |U| fewer), and alternating paths backwards from
C reach the columns R. No edge of G joins S to R (M would not be maximum), and every augmenting path of a larger
graph crosses from S to R on a new edge. So the repair scores every pair of S x R and gives each item of the
smaller set its best REPAIR_PARTNERS partners on the other side as edges (`_best_across`), then augments M along
the paths the new edges open (`_augmented`), until it is perfect. The graph only gains edges, so M stays a
matching and only the missing paths are searched for: Hopcroft-Karp from scratch searched the whole graph again
and at a million pairs did not end in 35 minutes (docs/performance.md).

The pairs added are real, good pairs: the optimum of the repaired graph and its duals stay close to the optimum
of every pair, so the proof's rounds that follow break few rows. (The repair before this one paired U with C
directly; those pairs scored about 2,000 below a row's best, and the duals that proved them optimal broke tens of
thousands of rows, round after round: docs/performance.md.)

Where scoring S x R would cost more than a wider stream (the pairs the stream scored), the candidates are
streamed again at 2k instead. The bounds stand: only exact edges are added.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import partial

import numpy as np
from scipy.sparse import csr_matrix
from scipy.sparse.csgraph import maximum_bipartite_matching

from amphisbaena.runtime.graph import CandidateGraph, SparseSolution
from amphisbaena.runtime.overlap import one_ahead
from amphisbaena.runtime.scorer import PairScorer
from amphisbaena.runtime.topk import BestPerItem, best_of_each_row

REPAIR_PARTNERS = 256  # edges each item of the smaller side gets: at 200,000 pairs, two steps then leave none unmatched (docs/performance.md)
REPAIR_CELLS = 1 << 24  # pairs one worker of the repair scores at once


@dataclass(frozen=True)
class Repaired:
    """A graph with a perfect matching made from one without (`with_a_perfect_matching`).

    graph: the repaired graph; k: the candidates per row and column it was streamed with; rows: the rows the first
    maximum matching left unmatched (0 where it was streamed again)."""

    graph: CandidateGraph
    k: int
    rows: int


@dataclass(frozen=True)
class Deficit:
    """What a maximum matching RIGHT_FOR_LEFT (N,) of a graph leaves: its unmatched rows (U,), the rows S that
    alternating paths from them reach, and the columns R that alternating paths reach backwards from the unmatched
    columns."""

    right_for_left: np.ndarray
    unmatched: np.ndarray
    hall_rows: np.ndarray
    reach_cols: np.ndarray


def deficit(graph: CandidateGraph, matching: np.ndarray | None = None) -> Deficit:
    """The deficit of a maximum matching of GRAPH: MATCHING (N,; -1 on unmatched rows) augmented until it is
    maximum, else one scipy's Hopcroft-Karp finds from scratch. Nothing is unmatched where the graph has a perfect
    matching."""
    n = graph.size
    edges = csr_matrix((np.ones(len(graph.rows), dtype=np.int8), (graph.rows, graph.cols)), shape=(n, n))
    if matching is None:
        matching = maximum_bipartite_matching(edges, perm_type="column")
    right_for_left, hall = _augmented(edges, matching)
    unmatched = np.flatnonzero(right_for_left < 0)
    if len(unmatched) == 0:
        return Deficit(right_for_left, unmatched, unmatched, unmatched)
    open_cols = np.setdiff1d(np.arange(n), right_for_left)
    reach_cols = _forest(edges.T.tocsr(), open_cols, right_for_left)[0]  # backwards: columns lead to their rows
    return Deficit(right_for_left, unmatched, np.flatnonzero(hall), np.flatnonzero(reach_cols))


def _augmented(edges: csr_matrix, matching: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(right_for_left (N,), hall (N,) bool): MATCHING made maximum, and the rows alternating paths from its unmatched
    rows reach. Each search grows a forest of alternating paths from every unmatched row at once and flips one path
    to an open column in each tree that reaches one; the trees share no node, so neither do their paths. Starting
    from the last maximum matching, only the missing paths are searched for (at 200,000 pairs, 31 searches for
    2,685 rows: docs/performance.md), where Hopcroft-Karp from scratch matches the whole graph again."""
    right_for_left = matching.copy()
    while True:
        left_for_right = np.full(edges.shape[1], -1)
        matched = right_for_left >= 0
        left_for_right[right_for_left[matched]] = np.flatnonzero(matched)
        hall, via, tree = _forest(edges, np.flatnonzero(~matched), left_for_right, end_at_open=True)
        ends = np.flatnonzero((via >= 0) & (left_for_right < 0))
        if len(ends) == 0:
            return right_for_left, hall
        cols = ends[np.unique(tree[via[ends]], return_index=True)[1]]  # one open column per tree
        while len(cols):  # every path steps back one edge of M at once
            rows = via[cols]
            before = right_for_left[rows]
            right_for_left[rows] = cols
            cols = before[before >= 0]


def _forest(edges: csr_matrix, roots: np.ndarray, partner: np.ndarray, end_at_open: bool = False) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(seen (N,) bool, via (N,), tree (N,)): the alternating forest from ROOTS, grown breadth first: a node's EDGES
    lead to the other side, whose nodes lead back to their PARTNER (-1 where open). An other-side node's via is the
    node whose edge first reached it (-1: not reached), and a node's tree is the root it hangs from (-1: none).
    END_AT_OPEN: a tree that reaches an open node grows no further, leaving the rest of the graph to the others."""
    seen = np.zeros(edges.shape[0], dtype=bool)
    via = np.full(edges.shape[1], -1)
    tree = np.full(edges.shape[0], -1)
    ended = np.zeros(edges.shape[0], dtype=bool)  # by root
    seen[roots], tree[roots] = True, roots
    frontier = roots
    while len(frontier):
        reached = edges[frontier]
        owners = np.repeat(frontier.astype(np.int32), np.diff(reached.indptr))  # a layer can hold most of the edges
        fresh = via[reached.indices] < 0
        cols, first = np.unique(reached.indices[fresh], return_index=True)
        owners = owners[fresh][first]
        via[cols] = owners
        back = partner[cols]
        onward = back >= 0
        if end_at_open:
            ended[tree[owners[~onward]]] = True
            onward &= ~ended[tree[owners]]
        frontier = back[onward]
        seen[frontier], tree[frontier] = True, tree[owners[onward]]
    return seen, via, tree


def with_a_perfect_matching(scorer: PairScorer, graph: CandidateGraph, k: int, maximum: SparseSolution | None = None) -> Repaired:
    """GRAPH, which has no perfect matching, plus the best pairs across each deficit of its maximum matching
    (MAXIMUM, where the matcher found one; `deficit`), scored exactly, until a maximum matching is perfect. Where
    scoring a deficit's S x R would cost more than the stream did, the candidates are streamed again at 2K instead."""
    found = deficit(graph, None if maximum is None else maximum.right_for_left)
    first_unmatched = len(found.unmatched)
    while len(found.unmatched):
        smaller, larger = sorted((len(found.hall_rows), len(found.reach_cols)))
        stream_cost = graph.scored_pairs if graph.scored_pairs is not None else graph.size**2
        if smaller * larger > stream_cost:
            k = min(2 * k, scorer.size[0])  # at k = N every pair is an edge: a perfect matching exists
            graph, first_unmatched, matching = scorer.candidates(k), 0, None
        else:
            graph, matching = graph.with_edges(*_best_across(scorer, found.hall_rows, found.reach_cols)), found.right_for_left
        found = deficit(graph, matching)  # the graph only gained edges: its last maximum matching augments
    return Repaired(graph, k, first_unmatched)


def _best_across(scorer: PairScorer, rows: np.ndarray, cols: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray, int]:
    """(rows, cols, scores, pairs scored): every pair of ROWS x COLS scored, none of them an edge; of each item of the
    smaller set, its best REPAIR_PARTNERS on the other side. Items come a whole head tile at a time (its rows, or
    its columns where the items are columns), against slices of the other side, each slice's best merged into the
    items' (`topk.BestPerItem`): head calls stay full-sized however large the other side."""
    by_rows = len(rows) <= len(cols)
    items, partners = (rows, cols) if by_rows else (cols, rows)
    kept = min(REPAIR_PARTNERS, len(partners))
    block = scorer.tiles.rows if by_rows else scorer.tiles.cols
    width = max(kept, REPAIR_CELLS // block)

    def best_in(first: int, start: int) -> tuple[np.ndarray, np.ndarray]:
        part, across = items[first : first + block], partners[start : start + width]
        scores = scorer.columns(part, across, beside_host=True) if by_rows else scorer.columns(across, part, beside_host=True).T
        positions, values = best_of_each_row(scores, min(kept, len(across)))
        return positions + start, values

    units = [(first, start) for first in range(0, len(items), block) for start in range(0, len(partners), width)]
    best = BestPerItem(len(items), kept)
    for (first, _), (positions, values) in zip(units, one_ahead((partial(best_in, *unit) for unit in units), scorer.backend.any_thread, in_flight=2)):
        best.add(np.repeat(np.arange(first, first + len(positions)), positions.shape[1]), positions.ravel(), values.ravel())
    positions, scores, _ = best.best(kept)
    item = np.repeat(items, kept)
    partner = partners[positions.ravel()]
    found_rows, found_cols = (item, partner) if by_rows else (partner, item)
    return found_rows, found_cols, scores.ravel(), len(rows) * len(cols)
