"""The proof's check of every pair outside the candidate graph: score what the bounds cannot settle.

A pair (i, j) left out of the graph scores at most min(row_bound_i, col_bound_j). Where that bound leaves
it under MARGIN of slack against the duals u, w (`uncovered`), its exact score decides: a pair with
s_ij > u_i + w_j breaks the duals, and the next round re-solves with it as an edge; a pair within MARGIN
of them joins the graph, so that afterwards every pair outside it has slack at least MARGIN
(`SparseSolution.excluded_floor`), which the regrets use. The pairs to check are prefixes of two orders
of the columns (`Uncovered`), so blocks of neighbouring rows against the longest of their prefixes
are dense head calls, and only the few near-tight pairs are kept.

With the geometry's caps (`pruning.GeometryPruner.bucket_caps`), the columns are split into buckets, and a
row's pair with a column of a bucket is bounded by the row's cap for that bucket too: most of a row's loose
pairs lie in buckets its geometry rules out, so each bucket has its own two orders and each row its own
prefixes in them.

A plan too large to score whole at once is probed first: each prefix's first columns, the most dangerous ones. A
round whose probe breaks the duals is re-solved without scoring the rest.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass, replace
from functools import partial
from typing import Protocol

import numpy as np

from amphisbaena.runtime.graph import CandidateGraph, SparseSolution
from amphisbaena.runtime.overlap import one_ahead

BLOCK_ROWS = 256  # rows of one head call at most: each call costs a fixed share (docs/performance.md)
MIN_BLOCK_ROWS = 32  # rows of one head call at least (where the lane has them), whatever their prefixes
BLOCK_CELLS = 1 << 22  # pairs one call may score: a long prefix is cut into several calls
# Where a row breaks the duals in a block, only its this many most violated pairs there join the graph, not every
# pair within the margin: a row whose duals are far off (as after the repair that paired unmatched rows with unmatched
# columns, at a million pairs) has nearly all its pairs within the margin, and the next round re-solves anyway
# (docs/performance.md)
VIOLATIONS_KEPT = 32
# A plan of more pairs than this is first probed on the first PROBE_COLUMNS of each of its prefixes (`check`): where
# many rows' duals are far off, at a million pairs, the whole plan holds tens of billions of pairs
# (docs/performance.md)
PROBE_FROM = 1 << 32
PROBE_COLUMNS = 64

ScoreBlock = Callable[[np.ndarray, np.ndarray], np.ndarray]  # (lefts (R,), rights (C,)) -> exact scores (R, C)


class BucketCaps(Protocol):
    """Buckets of columns, and per row an upper bound on its score with any column of a bucket
    (`pruning.GeometryPruner`)."""

    @property
    def buckets(self) -> list[np.ndarray]: ...

    def bucket_caps(self, lefts: np.ndarray, bucket: int) -> np.ndarray: ...


@dataclass(frozen=True)
class Uncovered:
    """The pairs outside a candidate graph whose bounds leave them under some slack, as prefixes of orders of
    the columns: row ROWS[t] must be checked against ORDERS[LANE[t]][:LENGTH[t]]. Each bucket of columns has two
    lanes: 2b, its columns by w ascending, and 2b + 1, by col_bound - w descending. Rows come by lane, then by
    length, so neighbours share most of their prefix."""

    rows: np.ndarray  # (T,)
    lane: np.ndarray  # (T,)
    length: np.ndarray  # (T,)
    orders: list[np.ndarray]  # two per bucket


def uncovered(graph: CandidateGraph, solution: SparseSolution, margin: float, caps: BucketCaps | None = None) -> Uncovered:
    """Every pair (i, j) whose bound min(row_bound_i, col_bound_j, and with CAPS row i's cap for j's bucket)
    exceeds u_i + w_j - MARGIN, so that the bounds cannot show it has slack at least MARGIN (edges among them
    too), as prefixes (`Uncovered`); without CAPS, all columns form one bucket.

    Such a pair has w_j < bound_i - u_i + MARGIN and col_bound_j - w_j > u_i - MARGIN, so in each bucket a row's
    pairs lie in the shorter of two prefixes: the bucket's columns by w ascending, or by col_bound - w
    descending. Finding them costs O(N log N) per bucket, for the rows the row bounds alone leave open;
    checking them costs what the prefixes hold."""
    u, w = solution.row_potential, solution.col_potential
    excess = graph.col_bound - w
    if caps is None:
        open_rows, buckets = np.arange(graph.size), [np.arange(graph.size)]
    else:  # rows whose pairs the row and column bounds alone settle need no bucket
        open_rows = np.flatnonzero(_prefix_lengths(np.arange(graph.size), graph.row_bound, u, w, excess, margin)[0])
        buckets = caps.buckets
    orders, parts = [], []
    for number, members in enumerate(buckets):
        bound = graph.row_bound[open_rows] if caps is None else np.minimum(graph.row_bound[open_rows], caps.bucket_caps(open_rows, number))
        length, side, by_w, by_excess = _prefix_lengths(members, bound, u[open_rows], w, excess, margin)
        orders += [by_w, by_excess]
        held = np.flatnonzero(length)
        parts.append((open_rows[held], 2 * number + side[held], length[held]))
    rows, lane, length = (np.concatenate([part[index] for part in parts]) for index in range(3))
    order = np.lexsort((length, lane))
    return Uncovered(rows[order], lane[order], length[order], orders)


def _prefix_lengths(
    members: np.ndarray, bound: np.ndarray, u: np.ndarray, w: np.ndarray, excess: np.ndarray, margin: float
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """For rows with bounds BOUND and duals U, against the columns MEMBERS: each row's shorter prefix (its
    length, and its side: 0 by w ascending, 1 by excess descending), and the two orders of MEMBERS."""
    by_w = members[np.argsort(w[members], kind="stable")]
    by_excess = members[np.argsort(-excess[members], kind="stable")]
    from_w = np.searchsorted(w[by_w], bound - u + margin, side="left")
    from_excess = np.searchsorted(-excess[by_excess], margin - u, side="left")
    side = (from_excess < from_w).astype(np.int64)
    return np.minimum(from_w, from_excess), side, by_w, by_excess


def _edges_among(graph: CandidateGraph, rows: np.ndarray, cols: np.ndarray) -> np.ndarray:
    """(P,) whether each pair (ROWS, COLS) is an edge of GRAPH: the edges of those rows only are sorted and searched."""
    listed_row = np.zeros(graph.size, dtype=bool)
    listed_row[rows] = True
    on_rows = np.flatnonzero(listed_row[graph.rows])
    if len(on_rows) == 0:
        return np.zeros(len(rows), dtype=bool)
    edge_keys = np.sort(graph.rows[on_rows] * graph.size + graph.cols[on_rows])
    keys = rows * graph.size + cols
    return edge_keys[np.minimum(np.searchsorted(edge_keys, keys), len(edge_keys) - 1)] == keys


@dataclass(frozen=True)
class Checked:
    """What a check found: the pairs outside the graph within its margin of the duals (P,) with their exact
    scores, whether any of them breaks the duals, and how many pairs were scored to find them."""

    rows: np.ndarray
    cols: np.ndarray
    scores: np.ndarray
    violated: bool
    scored: int
    rows_checked: int  # rows whose pairs outside the graph were scored

    def added_to(self, graph: CandidateGraph) -> CandidateGraph:
        return graph.with_edges(self.rows, self.cols, self.scores, self.scored)


def check(
    score_block: ScoreBlock, graph: CandidateGraph, solution: SparseSolution, margin: float, threaded: bool, caps: BucketCaps | None = None
) -> Checked:
    """Score every pair outside GRAPH whose bound (with CAPS, `uncovered`) allows less than MARGIN of slack under
    SOLUTION's duals (SCORE_BLOCK, two calls in flight in workers where THREADED); keep those whose exact slack
    is under it.

    Where the plan holds more than PROBE_FROM pairs, a first pass scores only the first PROBE_COLUMNS of each of
    its prefixes, their most dangerous columns; if that breaks the duals, the round ends there (it is re-solved
    anyway), and the whole plan is scored only in a round the probe finds sound."""
    plan = uncovered(graph, solution, margin, caps)
    probed_pairs = 0
    if int(plan.length.sum()) > PROBE_FROM:
        probed = _scan(score_block, graph, solution, margin, threaded, replace(plan, length=np.minimum(plan.length, PROBE_COLUMNS)))
        if probed.violated:
            return probed
        probed_pairs = probed.scored
    whole = _scan(score_block, graph, solution, margin, threaded, plan)
    return replace(whole, scored=whole.scored + probed_pairs)


def _scan(score_block: ScoreBlock, graph: CandidateGraph, solution: SparseSolution, margin: float, threaded: bool, plan: Uncovered) -> Checked:
    """`check` over the pairs of PLAN."""
    u, w = solution.row_potential, solution.col_potential
    near = partial(_near_in_block, score_block, plan, u, w, margin, graph.tolerance)
    found = list(one_ahead((partial(near, *block) for block in _blocks(plan)), threaded, in_flight=2))
    empty = (np.zeros(0, dtype=np.int64), np.zeros(0, dtype=np.int64), np.zeros(0, dtype=np.float32))
    rows, cols, scores = (np.concatenate([part[index] for part in found]) if found else empty[index] for index in range(3))
    outside = ~_edges_among(graph, rows, cols)
    rows, cols, scores = rows[outside], cols[outside], scores[outside]
    violated = bool((scores > u[rows] + w[cols] + graph.tolerance).any())
    return Checked(rows, cols, scores.astype(np.float64), violated, sum(part[3] for part in found), len(np.unique(plan.rows)))


def _blocks(plan: Uncovered) -> Iterator[tuple[int, int, int, int]]:
    """(first, stop, col_start, col_stop): up to BLOCK_ROWS consecutive rows of PLAN, all in one lane, against
    a slice of their longest prefix of at most BLOCK_CELLS / rows columns. Beyond its first MIN_BLOCK_ROWS, a
    block takes rows only while their prefix is at most twice its first row's, so that at most half of it
    lies past the rows' own prefixes."""
    first = 0
    while first < len(plan.rows):
        stop = min(first + BLOCK_ROWS, len(plan.rows))
        stop = first + int(np.searchsorted(plan.lane[first:stop], plan.lane[first], side="right"))
        within = first + int(np.searchsorted(plan.length[first:stop], 2 * plan.length[first], side="right"))
        stop = min(stop, max(within, first + MIN_BLOCK_ROWS))
        longest = int(plan.length[stop - 1])
        step = max(1, BLOCK_CELLS // (stop - first))
        for col_start in range(0, longest, step):
            yield first, stop, col_start, min(col_start + step, longest)
        first = stop


def _near_in_block(
    score_block: ScoreBlock,
    plan: Uncovered,
    u: np.ndarray,
    w: np.ndarray,
    margin: float,
    tolerance: float,
    first: int,
    stop: int,
    col_start: int,
    col_stop: int,
) -> tuple[np.ndarray, np.ndarray, np.ndarray, int]:
    """In a worker: one block's pairs within MARGIN of the duals and inside each row's prefix, and the block's size;
    of a row with pairs that break the duals (by more than TOLERANCE), its VIOLATIONS_KEPT most violated ones only."""
    rows = plan.rows[first:stop]
    cols = plan.orders[plan.lane[first]][col_start:col_stop]
    scores = score_block(rows, cols)
    outside = np.arange(col_start, col_stop)[None, :] >= plan.length[first:stop, None]
    slack = u[rows, None] + w[None, cols] - scores
    slack[outside] = np.inf
    near = slack < margin
    breaking = np.flatnonzero((slack < -tolerance).any(axis=1))
    if len(breaking) and slack.shape[1] > VIOLATIONS_KEPT:
        their_slack = slack[breaking]
        worst = np.argpartition(their_slack, VIOLATIONS_KEPT - 1, axis=1)[:, :VIOLATIONS_KEPT]
        kept = np.take_along_axis(their_slack, worst, axis=1) < -tolerance
        near[breaking] = False
        near[breaking[:, None], worst] = kept
    r, c = np.nonzero(near)
    return rows[r], cols[c], scores[r, c], scores.size
