"""Candidates: the best k partners of every left and every right, streamed tile by tile from the head.

The full score matrix is never held. Each row and column keeps its best k + 1 entries while the tiles go
by; the union of every row's and column's best k becomes the candidate graph, and each one's (k+1)-th
best bounds every pair it left out (`graph`). With a pruner, pairs whose geometry bound falls below
PRUNE_FLOOR are never scored, and their bounds join the graph's.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import replace
from functools import partial
from typing import TYPE_CHECKING

import numpy as np

from amphisbaena.runtime.arrays import nonzero_2d
from amphisbaena.runtime.graph import CandidateGraph
from amphisbaena.runtime.overlap import one_ahead
from amphisbaena.shapes import kept_per_item

if TYPE_CHECKING:
    from amphisbaena.runtime.scorer import PairScorer

CORE_K = 8  # of each row's and column's candidates, the best this many form the graph's core
PRUNE_FLOOR = -20.0  # pairs whose score bound is below this are not scored (well under a row's 33rd best)


def _best_first_within_items(item: np.ndarray, score: np.ndarray, partner: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(order, rank): ORDER sorts the entries by item, then best score first (ties to the lower partner);
    RANK is each sorted entry's place within its item (0 the best)."""
    order = np.lexsort((partner, -score, item))
    sorted_item = item[order]
    starts = np.flatnonzero(np.r_[True, sorted_item[1:] != sorted_item[:-1]])
    rank = np.arange(len(order)) - np.repeat(starts, np.diff(np.r_[starts, len(order)]))
    return order, rank


class BestPerItem:
    """The best COUNT (score, partner) pairs of every item, kept best first in dense arrays.

    Batches are ragged lists of entries; only the items they touch are re-sorted.
    """

    def __init__(self, items: int, count: int) -> None:
        self.count = count
        self.score = np.full((items, count), -np.inf, dtype=np.float32)
        self.partner = np.full((items, count), -1, dtype=np.int64)

    @classmethod
    def from_lists(cls, score: np.ndarray, partner: np.ndarray) -> BestPerItem:
        """Lists already best first: SCORE and PARTNER (items, COUNT)."""
        best = cls(0, score.shape[1])
        best.score, best.partner = score, partner
        return best

    @property
    def threshold(self) -> np.ndarray:
        """Each item's current COUNT-th best: entries below it can never enter."""
        return self.score[:, -1]

    def add(self, item: np.ndarray, partner: np.ndarray, score: np.ndarray) -> None:
        if len(item) == 0:
            return
        order, rank = _best_first_within_items(item, score, partner)
        item, partner, score = item[order], partner[order], score[order]
        useful = rank < self.count
        touched = item[rank == 0]  # sorted, one per item
        slot = np.searchsorted(touched, item[useful])
        new_score = np.full((len(touched), self.count), -np.inf, dtype=np.float32)
        new_partner = np.full((len(touched), self.count), -1, dtype=np.int64)
        new_score[slot, rank[useful]] = score[useful]
        new_partner[slot, rank[useful]] = partner[useful]
        merged_score = np.concatenate([self.score[touched], new_score], axis=1)
        merged_partner = np.concatenate([self.partner[touched], new_partner], axis=1)
        best = np.argsort(-merged_score, axis=1, kind="stable")[:, : self.count]
        self.score[touched] = np.take_along_axis(merged_score, best, axis=1)
        self.partner[touched] = np.take_along_axis(merged_partner, best, axis=1)

    def best(self, k: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Partners and scores (items, min(k, COUNT)) of every item's best k, best first (partner -1 and
        score -inf in empty slots), and each item's bound on the rest: its (k+1)-th best score, or -inf
        where nothing was left out."""
        kept = min(k, self.count)
        bound = self.score[:, k].astype(np.float64) if self.count > k else np.full(len(self.score), -np.inf)
        return self.partner[:, :kept], self.score[:, :kept], bound


class BestPerItemFromBlocks:
    """The best COUNT (score, partner) pairs of every item, gathered from dense blocks of scores.

    Each item has 2 * COUNT slots, unsorted. A block offers each of its items only its entries at or
    above the item's floor (a lower bound on its final COUNT-th best), and at most its own best COUNT of
    them. An item whose slots would overflow is first cut back to its best COUNT. Sorting happens once,
    at the end, instead of merging every block into sorted lists."""

    def __init__(self, items: int, count: int) -> None:
        self.count = count
        self.score = np.full((items, 2 * count), -np.inf, dtype=np.float32)
        self.partner = np.full((items, 2 * count), -1, dtype=np.int64)
        self.fill = np.zeros(items, dtype=np.int64)
        self.floor = np.full(items, -np.inf, dtype=np.float32)

    def add_block(self, items: np.ndarray, partners: np.ndarray, scores: np.ndarray) -> None:
        """Offer the block SCORES (len(PARTNERS), len(ITEMS)), SCORES[b, a] the score of (ITEMS[a], PARTNERS[b]):
        each item is a column, so a block scored left by right is offered to the rights as it is, without a
        copy. ITEMS are distinct, and no (item, partner) pair comes in more than one block.

        An entry is looked at only if it reaches its item's floor. An item seen for the first time takes
        its floor from this block (`_chunk_floor`), so one compare over the block lets through about COUNT
        entries per item, not the whole column. A seen item that still gets more than COUNT has its floor
        raised from the block and its entries filtered again; items left with more than COUNT keep their
        best COUNT."""
        floor = self.floor[items]
        fresh = np.isneginf(floor)
        deep = len(partners) > self.count  # a block no deeper than COUNT proves no floor
        if deep:
            self._raise_floors(floor, items, np.flatnonzero(fresh), scores)
        b, a = nonzero_2d(scores >= floor[None, :])
        values = scores[b, a]
        new = np.bincount(a, minlength=len(items))
        crowded = np.flatnonzero((new > self.count) & ~fresh)
        if len(crowded) and deep:
            self._raise_floors(floor, items, crowded, scores)
            above = values >= floor[a]
            a, b, values = a[above], b[above], values[above]
            new = np.bincount(a, minlength=len(items))
        if new.max(initial=0) > self.count:
            a, b, values = self._best_of_crowded(items, a, b, values, new)
            new = np.bincount(a, minlength=len(items))
        self._cut(items[self.fill[items] + new > self.score.shape[1]])
        order = np.argsort(a.astype(np.uint16) if len(items) <= 1 << 16 else a, kind="stable")  # 16-bit keys: a radix sort
        a, b, values = a[order], b[order], values[order]
        rank = np.arange(len(a)) - np.repeat(np.cumsum(new) - new, new)
        slot = self.fill[items[a]] + rank
        self.score[items[a], slot] = values
        self.partner[items[a], slot] = partners[b]
        self.fill[items] += new

    def _raise_floors(self, floor: np.ndarray, items: np.ndarray, which: np.ndarray, scores: np.ndarray) -> None:
        """Raise the floors of ITEMS[WHICH] (in FLOOR, the block's copy, and in self) to what the block
        SCORES (items as columns) proves about them (`_chunk_floor`)."""
        raised = np.maximum(floor[which], _chunk_floor(scores, which, len(items), self.count, item_axis=1))
        floor[which] = raised
        self.floor[items[which]] = raised

    def _best_of_crowded(
        self, items: np.ndarray, a: np.ndarray, b: np.ndarray, values: np.ndarray, new: np.ndarray
    ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """The entries (A, B, VALUES) with every item that has more than COUNT of them cut to its best
        COUNT; each such item's floor rises to the COUNT-th of them."""
        crowded = new[a] > self.count
        ca, cb, cv = a[crowded], b[crowded], values[crowded]
        order, rank = _best_first_within_items(ca, cv, cb)
        ca, cb, cv = ca[order], cb[order], cv[order]
        keep = rank < self.count
        last = keep & (rank == self.count - 1)
        self.floor[items[ca[last]]] = np.maximum(self.floor[items[ca[last]]], cv[last])
        return (
            np.concatenate([a[~crowded], ca[keep]]),
            np.concatenate([b[~crowded], cb[keep]]),
            np.concatenate([values[~crowded], cv[keep]]),
        )

    def _cut(self, items: np.ndarray) -> None:
        """Keep only the best COUNT of ITEMS' slots; their floor rises to the COUNT-th of them.

        Each item's COUNT-th best comes from a partition of the scores alone, and the slots at or above it
        are gathered in one pass (faster than an argpartition that carries the partners along); an
        item with a tie at that score keeps COUNT of the tied slots by argpartition, as before."""
        if len(items) == 0:
            return
        score, partner = self.score[items], self.partner[items]
        width = score.shape[1]
        threshold = np.partition(score, width - self.count, axis=1)[:, width - self.count]
        keep = score >= threshold[:, None]
        tied = np.flatnonzero(keep.sum(axis=1) != self.count)
        if len(tied):
            top = np.argpartition(-score[tied], self.count - 1, axis=1)[:, : self.count]
            tied_keep = np.zeros((len(tied), width), dtype=bool)
            np.put_along_axis(tied_keep, top, True, axis=1)
            keep[tied] = tied_keep
        kept = np.flatnonzero(keep)  # COUNT per item, item by item
        kept_score = score.ravel()[kept].reshape(len(items), self.count)
        kept_partner = partner.ravel()[kept].reshape(len(items), self.count)
        self.score[items] = -np.inf
        self.partner[items] = -1
        self.score[items, : self.count] = kept_score
        self.partner[items, : self.count] = kept_partner
        self.fill[items] = self.count
        self.floor[items] = np.maximum(self.floor[items], threshold)

    def best_first(self) -> BestPerItem:
        """Sorted lists, best first, ties going to the lower partner; empty slots last."""
        partner_key = np.where(np.isneginf(self.score), np.iinfo(np.int64).max, self.partner)
        order = np.lexsort((partner_key, -self.score), axis=1)[:, : self.count]
        best = BestPerItem(len(self.score), self.count)
        best.score = np.take_along_axis(self.score, order, axis=1)
        best.partner = np.take_along_axis(self.partner, order, axis=1)
        return best


def _floor_from(scores: np.ndarray, count: int, axis: int) -> np.ndarray:
    """The COUNT-th largest along AXIS: a lower bound on the COUNT-th largest of any superset."""
    size = scores.shape[axis]
    if size < count:
        return np.full(scores.shape[1 - axis], -np.inf, dtype=np.float32)
    return np.partition(scores, size - count, axis=axis).take(size - count, axis=axis)


CHUNKS_PER_COUNT = 4  # chunks per kept entry when a fresh item's floor comes from its chunk maxima


def _chunk_floor(scores: np.ndarray, fresh: np.ndarray, n_items: int, count: int, item_axis: int) -> np.ndarray:
    """For the items FRESH (positions along ITEM_AXIS of SCORES, which holds N_ITEMS of them), the
    COUNT-th largest of their chunk maxima: the partner axis is cut into at least COUNT chunks, and the
    maxima of COUNT different chunks are COUNT different entries, so this is at most the item's COUNT-th
    best in the block, hence a lower bound on its final COUNT-th best. Costs one max pass over the block."""
    width = scores.shape[1 - item_axis]
    chunk = max(1, width // (CHUNKS_PER_COUNT * count))
    starts = np.arange(0, width, chunk)
    block = scores if len(fresh) == n_items else np.take(scores, fresh, axis=item_axis)
    maxima = block if chunk == 1 else np.maximum.reduceat(block, starts, axis=1 - item_axis)
    return _floor_from(maxima, count, axis=1 - item_axis)


def graph_from(by_row: BestPerItem, by_col: BestPerItem, k: int, n_right: int) -> CandidateGraph:
    """The union of every row's and every column's best k, its core marked: each row's and column's best
    CORE_K edges, where the duals are found first (`duals`). Each row's and column's (k+1)-th best
    becomes its bound on every pair left out. Edges come in (row, column) order.

    A pair is in its row's list and its column's at most once each, so the union needs no general
    deduplication: each row's list, put in partner order, gives globally sorted keys, the columns'
    entries are sorted once, and merging the two runs puts the two copies of a pair side by side."""
    row_partner, row_score, row_bound = by_row.best(k)
    col_partner, col_score, col_bound = by_col.best(k)
    stride = n_right + 1  # key of (i, j): i * stride + j + 1
    by_partner = np.argsort(row_partner, axis=1, kind="stable")
    row_keys = (np.arange(len(row_partner))[:, None] * stride + np.take_along_axis(row_partner, by_partner, axis=1) + 1).ravel()
    row_scores = np.take_along_axis(row_score, by_partner, axis=1).ravel()
    row_held = np.flatnonzero(np.isfinite(row_scores))  # empty slots (an item with fewer than k partners) go
    col_keys = (col_partner * stride + np.arange(len(col_partner))[:, None] + 1).ravel()
    col_held = np.flatnonzero(np.isfinite(col_score.ravel()))
    rows_of_held = col_partner.ravel()[col_held]  # held in column order, so a stable sort by row sorts by key
    col_held = col_held[np.argsort(rows_of_held.astype(np.uint16) if len(row_partner) <= 1 << 16 else rows_of_held, kind="stable")]  # 16-bit: a radix sort
    keys = np.concatenate([row_keys[row_held], col_keys[col_held]])
    merged = np.argsort(keys, kind="stable")  # two sorted runs: a merge; a pair's row copy comes first
    keys = keys[merged]
    scores = np.concatenate([row_scores[row_held], col_score.ravel()[col_held]])[merged]
    rank = np.concatenate([by_partner.ravel()[row_held], col_held % col_partner.shape[1]]).astype(np.int32)[merged]  # place in the best-first list
    copy = np.flatnonzero(keys[1:] == keys[:-1])  # the row copy; the column copy follows it
    rank[copy] = np.minimum(rank[copy], rank[copy + 1])  # the union keeps an edge's best rank on either side
    first = np.ones(len(keys), dtype=bool)
    first[copy + 1] = False
    keys, scores, rank = keys[first], scores[first].astype(np.float64), rank[first]
    rows, cols = np.divmod(keys, stride)
    return CandidateGraph(rows, cols - 1, scores, row_bound, col_bound, core=rank < CORE_K)


def stream(scorer: PairScorer, k: int) -> CandidateGraph:
    """Top-k partners of every left and every right, with bounds on every score left out.

    Memory is O(N * k + tile rows * N). With the scorer's pruner, pairs the geometry rules out are
    never scored (`_stream_pruned`). Otherwise backends with a head_topk graph reduce every tile to
    its candidates inside the graph (`_stream_device_topk`); others return whole tiles, filtered here.
    """
    n_left, n_right = scorer.size
    backend = scorer.backend
    if scorer.pruner is not None:
        return _stream_pruned(scorer, k)
    if backend.topk is not None and k + 1 <= backend.topk <= min(n_left, n_right):
        return _stream_device_topk(scorer, k)
    by_row = BestPerItem(n_left, kept_per_item(k, n_right))
    by_col = BestPerItem(n_right, kept_per_item(k, n_left))
    probe = min(n_right, max(scorer.tiles.cols, 4 * (k + 1)))
    with scorer.progress.stage(f"head: strips of lefts (k={k})", total=-(-n_left // scorer.tiles.rows)) as stage:
        for r0, strip in scorer.strips():
            # Entries below both floors can enter neither a row's nor a column's top-(k+1).
            row_floor = _floor_from(strip[:, :probe], by_row.count, axis=1)
            col_floor = by_col.threshold
            if r0 == 0:
                col_floor = np.maximum(col_floor, _floor_from(strip, by_col.count, axis=0))
            r, c = nonzero_2d((strip >= row_floor[:, None]) | (strip >= col_floor[None, :]))
            _feed(by_row, by_col, r + r0, c, strip[r, c], row_floor[r], col_floor[c])
            stage.advance()
    return graph_from(by_row, by_col, k, n_right)


def _windows(n: int, size: int, minimum: int) -> Iterator[tuple[int, int, int]]:
    """(start, stop, fresh) windows covering range(n) in steps of SIZE, each at least MINIMUM long:
    a short last window reaches back into the previous one, and only [fresh, stop) is new in it."""
    for fresh in range(0, n, size):
        stop = min(fresh + size, n)
        yield min(fresh, max(0, stop - minimum)), stop, fresh


def _stream_device_topk(scorer: PairScorer, k: int) -> CandidateGraph:
    """The same top-k from tiles reduced on the device (head_topk): only each tile's best `topk` per
    row and per column come back. A row's best k + 1 overall are among its best k + 1 within any
    tile that holds them, so merging the tiles' lists on the host is exact."""
    backend, left_features, right_features = scorer.backend, scorer.left, scorer.right
    n_left, n_right = scorer.size
    by_row = BestPerItem(n_left, kept_per_item(k, n_right))
    by_col = BestPerItem(n_right, kept_per_item(k, n_left))
    tile_rows, tile_cols = max(scorer.tiles.topk_rows, backend.topk), max(scorer.tiles.topk_cols, backend.topk)
    for r0, r1, fresh_row in _windows(n_left, tile_rows, backend.topk):
        for c0, c1, fresh_col in _windows(n_right, tile_cols, backend.topk):
            row_scores, row_partners, col_scores, col_partners = backend.head_topk(left_features[r0:r1], right_features[c0:c1])
            rows = np.repeat(np.arange(r0, r1), row_scores.shape[1])
            partners = row_partners.ravel().astype(np.int64) + c0
            new = (rows >= fresh_row) & (partners >= fresh_col)  # the rest came back from an earlier tile
            by_row.add(rows[new], partners[new], row_scores.ravel()[new])
            cols = np.repeat(np.arange(c0, c1), col_scores.shape[1])
            partners = col_partners.ravel().astype(np.int64) + r0
            new = (cols >= fresh_col) & (partners >= fresh_row)
            by_col.add(cols[new], partners[new], col_scores.ravel()[new])
    return graph_from(by_row, by_col, k, n_right)


def _feed(by_row: BestPerItem, by_col: BestPerItem, rows, cols, scores, row_floor, col_floor) -> None:
    for_rows = scores >= row_floor
    by_row.add(rows[for_rows], cols[for_rows], scores[for_rows])
    for_cols = scores >= col_floor
    by_col.add(cols[for_cols], rows[for_cols], scores[for_cols])


def best_of_each_row(scores: np.ndarray, count: int) -> tuple[np.ndarray, np.ndarray]:
    """Each row's best COUNT entries of a block SCORES (R, C), C >= COUNT: positions and values, each
    (R, COUNT), best first, ties going to the lower position. Only the entries at or above each row's
    floor from its chunk maxima (`_chunk_floor`) are sorted: about COUNT a row, not C."""
    n_rows = len(scores)
    floor = _chunk_floor(scores, np.arange(n_rows), n_rows, count, item_axis=0)
    r, c = nonzero_2d(scores >= floor[:, None])
    values = scores[r, c]
    order, rank = _best_first_within_items(r, values, c)
    kept = order[rank < count]  # COUNT a row, row by row
    return c[kept].reshape(n_rows, count), values[kept].reshape(n_rows, count)


def _scored_block(scorer: PairScorer, lefts: np.ndarray, cols: np.ndarray, count: int) -> tuple[np.ndarray, ...]:
    """One block of the pruned stream, in a worker: (LEFTS, COLS, scores (len(LEFTS), len(COLS)), and each
    left's best COUNT partners and scores, best first). A left is scored in this block only, so its list
    is final here, and the worker, not the main thread, finds it."""
    lefts, cols, scores = scorer.block(lefts, cols)
    positions, values = best_of_each_row(scores, count)
    return lefts, cols, scores, cols[positions], values


def _stream_pruned(scorer: PairScorer, k: int) -> CandidateGraph:
    """The top-k of every left and right among the pairs the geometry does not rule out, with
    bounds on every pair left out (see `pruning`). Each group of lefts is scored against the
    rights whose bound reaches PRUNE_FLOOR, and always against at least its k + 1 most promising.
    A left meets one block only, so two workers score blocks and find each left's final list there,
    while the main thread merges the rights' lists, which span many blocks (docs/performance.md)."""
    pruner, floor = scorer.pruner, PRUNE_FLOOR
    n_left, n_right = scorer.size
    row_count = kept_per_item(k, n_right)
    row_score = np.full((n_left, row_count), -np.inf, dtype=np.float32)
    row_partner = np.full((n_left, row_count), -1, dtype=np.int64)
    by_col = BestPerItemFromBlocks(n_right, kept_per_item(k, n_left))
    row_left_out = np.full(n_left, -np.inf)
    col_left_out = np.full(n_right, -np.inf)

    def blocks() -> Iterator[Callable[[], tuple[np.ndarray, ...]]]:
        for members, upper in zip(pruner.groups, pruner.bounds(pruner.groups)):
            keep = upper >= floor
            if keep.sum() < row_count:
                keep[np.argpartition(-upper, row_count - 1)[:row_count]] = True
            cols = np.flatnonzero(keep)
            if len(cols) < n_right:
                row_left_out[members] = upper[~keep].max()
                np.maximum(col_left_out, np.where(keep, -np.inf, upper), out=col_left_out)
            yield partial(_scored_block, scorer, members, cols, row_count)

    scored = 0
    with scorer.progress.stage(f"head: groups of lefts (k={k})", total=len(pruner.groups)) as stage:
        for members, cols, scores, best_partners, best_scores in one_ahead(blocks(), scorer.backend.any_thread, in_flight=2):
            scored += scores.size
            row_partner[members], row_score[members] = best_partners, best_scores
            by_col.add_block(cols, members, scores)
            stage.advance()
    graph = graph_from(BestPerItem.from_lists(row_score, row_partner), by_col.best_first(), k, n_right)
    return replace(
        graph, row_bound=np.maximum(graph.row_bound, row_left_out), col_bound=np.maximum(graph.col_bound, col_left_out), scored_pairs=scored
    )
