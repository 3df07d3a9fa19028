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

from amphisbaena.runtime.arrays import runs

EPS_STEPS = (1 / 30, 1 / 300, 1 / 3000)  # of the scores' spread: one phase each
UNASSIGNED_LEFT = 0.002  # a phase ends once at most this fraction of the rows is unassigned
MAX_ROUNDS = 2_000  # per phase: a bound on price wars; the exact phases finish whatever is left


def auction_prices(indptr: np.ndarray, cols: np.ndarray, scores: np.ndarray, n: int) -> np.ndarray:
    """(N,) column prices from an eps-scaled auction on the CSR graph (INDPTR (N+1,), COLS, SCORES (E,)),
    maximising the total score. Every row must have an edge."""
    spread = float(np.percentile(scores, 99) - np.percentile(scores, 1)) or 1.0
    cap = 2 * float(scores.max() - scores.min()) + spread  # a row with one edge bids at most this much over its value
    price = np.zeros(n)
    owner = np.full(n, -1)  # column -> row
    assigned = np.full(n, -1)  # row -> column
    row_firsts, row_counts = indptr[:-1], np.diff(indptr)
    for eps in (spread * step for step in EPS_STEPS):
        if (assigned >= 0).any():  # keep only the assignments within eps of their row's best
            value = scores - price[cols]
            best = np.maximum.reduceat(value, row_firsts)
            held_value = np.maximum.reduceat(np.where(cols == np.repeat(assigned, row_counts), value, -np.inf), row_firsts)
            dropped = (assigned >= 0) & (held_value < best - eps)
            owner[assigned[dropped]] = -1
            assigned[dropped] = -1
        bidders = np.flatnonzero(assigned < 0)
        for _ in range(MAX_ROUNDS):
            if len(bidders) <= UNASSIGNED_LEFT * n:
                break
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
            bid = price[wanted] + (best - second) + eps
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
