"""Prices near the optimal column duals of a sparse assignment, found by an auction (Bertsekas).

Each round, every unassigned row bids for its best column (value s_ij - price_j) and raises that
column's price by the gap to its second best plus EPS; each column goes to its highest bidder, whose
previous owner becomes unassigned. Rounds are vectorised over all bidding rows at once (Jacobi
bidding). EPS shrinks phase by phase (eps-scaling), starting each phase from the last one's prices.

The auction is only a warm start for `matcher.optimal_matching`, which makes the duals exact, so a
phase may stop with a few rows unassigned: its tail, a few rows displacing one another round after
round, costs much more per row than the exact phases do.
"""

from __future__ import annotations

import numpy as np

from amphisbaena.runtime.arrays import CHUNK_EDGES, runs

EPS_STEPS = (1 / 30, 1 / 300, 1 / 3000)  # of the scores' spread: one phase each
UNASSIGNED_LEFT = 0.002  # a phase ends once at most this fraction of the rows is unassigned
MAX_ROUNDS = 2_000  # per phase: a bound on price wars; the exact phases finish whatever is left


def auction_prices(indptr: np.ndarray, cols: np.ndarray, scores: np.ndarray, n: int) -> np.ndarray:
    """(N,) column prices from an eps-scaled auction on the CSR graph (INDPTR (N+1,), COLS, SCORES (E,)),
    maximising the total score. Every row must have an edge. Rows' values are worked out a span of rows at a
    time (`_spans`), which gives the same prices as all at once while holding no more than CHUNK_EDGES of them."""
    spread = float(np.percentile(scores, 99) - np.percentile(scores, 1)) or 1.0
    cap = 2 * float(scores.max() - scores.min()) + spread  # a row with one edge bids at most this much over its value
    price = np.zeros(n)
    owner = np.full(n, -1)  # column -> row
    assigned = np.full(n, -1)  # row -> column
    for eps in (spread * step for step in EPS_STEPS):
        if (assigned >= 0).any():  # keep only the assignments within eps of their row's best
            dropped = np.zeros(n, dtype=bool)
            for span in _spans(n, len(cols)):
                first, stop = indptr[span.start], indptr[span.stop]
                value = scores[first:stop] - price[cols[first:stop]]
                best = np.maximum.reduceat(value, indptr[span] - first)
                held = cols[first:stop] == np.repeat(assigned[span], np.diff(indptr[span.start : span.stop + 1]))
                held_value = np.maximum.reduceat(np.where(held, value, -np.inf), indptr[span] - first)
                dropped[span] = (assigned[span] >= 0) & (held_value < best - eps)
            owner[assigned[dropped]] = -1
            assigned[dropped] = -1
        bidders = np.flatnonzero(assigned < 0)
        for _ in range(MAX_ROUNDS):
            if len(bidders) <= UNASSIGNED_LEFT * n:
                break
            wanted, bid = np.empty(len(bidders), dtype=np.int64), np.empty(len(bidders))
            for span in _spans(len(bidders), int((indptr[bidders + 1] - indptr[bidders]).sum())):
                wanted[span], bid[span] = _bids(indptr, cols, scores, price, bidders[span], cap, eps)
            order = np.lexsort((-bid, wanted))  # per column, the highest bid first
            winners = order[np.r_[True, wanted[order][1:] != wanted[order][:-1]]]
            won_cols, won_rows = wanted[winners], bidders[winners]
            price[won_cols] = bid[winners]
            outbid = owner[won_cols]
            outbid = outbid[outbid >= 0]
            assigned[outbid] = -1
            owner[won_cols] = won_rows
            assigned[won_rows] = won_cols
            lost = np.ones(len(bidders), dtype=bool)
            lost[winners] = False
            bidders = np.concatenate([bidders[lost], outbid])
    return price


def _spans(count: int, edges: int) -> list[slice]:
    """Consecutive slices of COUNT rows holding EDGES in all, each about CHUNK_EDGES of them on average."""
    step = max(1, count * CHUNK_EDGES // max(edges, 1))
    return [slice(start, min(start + step, count)) for start in range(0, count, step)]


def _bids(
    indptr: np.ndarray, cols: np.ndarray, scores: np.ndarray, price: np.ndarray, bidders: np.ndarray, cap: float, eps: float
) -> tuple[np.ndarray, np.ndarray]:
    """Each of BIDDERS' (B,) best column by value s_ij - price_j, and its bid: the price raised by the gap to the
    row's second best value (at most CAP) plus EPS."""
    edges, counts = runs(indptr[bidders], indptr[bidders + 1])
    firsts = np.cumsum(counts) - counts
    their_cols = cols[edges]
    value = scores[edges] - price[their_cols]
    best = np.maximum.reduceat(value, firsts)
    segment = np.repeat(np.arange(len(bidders)), counts)
    at_best = np.flatnonzero(value == best[segment])
    first_best = at_best[np.r_[True, segment[at_best[1:]] != segment[at_best[:-1]]]]
    wanted = their_cols[first_best]
    value[first_best] = -np.inf
    second = np.maximum(np.maximum.reduceat(value, firsts), best - cap)
    return wanted, price[wanted] + (best - second) + eps
