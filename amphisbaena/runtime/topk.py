"""Keeping the best COUNT (score, partner) entries of every item while blocks of scores go by.

`BestPerItem` keeps sorted lists and merges ragged batches; `BestPerItemFromBlocks` gathers unsorted slots
from dense blocks behind a rising floor and sorts once at the end; `best_of_each_row` takes a block's rows'
best at once. The candidate stream (`candidates`) and `match` build on them.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from amphisbaena.runtime.arrays import nonzero_2d, stable_order


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

    def take(self, items: np.ndarray, partners: np.ndarray, offer: BlockOffer) -> None:
        """Slot in what a block offers ITEMS (`block_offer` of its scores (len(PARTNERS), len(ITEMS)), found in a
        worker from a copy of the floors) and raise the items' floors to what the block proved. ITEMS are
        distinct, and no (item, partner) pair comes in more than one block. An item whose slots would
        overflow is first cut back to its best COUNT."""
        self.floor[items] = np.maximum(self.floor[items], offer.floor)
        b, values, new = offer.partner, offer.score, offer.count_by_item
        width = self.score.shape[1]
        self._cut(items[self.fill[items] + new > width])
        # The entries come item by item: each item's run goes to its next free slots, as flat positions.
        run_start = np.cumsum(new) - new
        target = np.repeat(items * width + self.fill[items] - run_start, new) + np.arange(len(values))
        self.score.reshape(-1)[target] = values
        self.partner.reshape(-1)[target] = partners[b]
        self.fill[items] += new

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
        score[:, : self.count] = score.ravel()[kept].reshape(len(items), self.count)
        partner[:, : self.count] = partner.ravel()[kept].reshape(len(items), self.count)
        score[:, self.count :] = -np.inf
        partner[:, self.count :] = -1
        self.score[items], self.partner[items] = score, partner
        self.fill[items] = self.count
        self.floor[items] = np.maximum(self.floor[items], threshold)

    def best_first(self) -> BestPerItem:
        """Sorted lists, best first, ties going to the lower partner; empty slots last.

        Score and partner make one 64-bit key per slot (the score's bits, ordered, above the partner), so each
        item's best COUNT are found by a partition and only they are sorted, instead of a two-key sort of all."""
        bits = (self.score + np.float32(0)).view(np.int32)  # + 0 makes -0.0 equal to 0.0, as comparisons see them
        ascending = bits ^ ((bits >> 31) & np.int32(0x7FFFFFFF))  # the float order as an integer order
        partner_key = np.where(np.isneginf(self.score), np.iinfo(np.int32).max, self.partner)
        key = ((~ascending).astype(np.int64) << 32) | partner_key  # best score first, then the lower partner
        best_slots = np.argpartition(key, self.count - 1, axis=1)[:, : self.count]
        order = np.take_along_axis(best_slots, np.argsort(np.take_along_axis(key, best_slots, axis=1), axis=1), axis=1)
        best = BestPerItem(len(self.score), self.count)
        best.score = np.take_along_axis(self.score, order, axis=1)
        best.partner = np.take_along_axis(self.partner, order, axis=1)
        return best


@dataclass(frozen=True)
class BlockOffer:
    """What a block offers its items (`block_offer`): entries sorted by item, at most COUNT per item, and each
    item's floor as the block proves it."""

    partner: np.ndarray  # position of each entry's partner among the block's partners
    score: np.ndarray
    count_by_item: np.ndarray  # entries per item
    floor: np.ndarray  # per item: a lower bound on its final COUNT-th best


def block_offer(scores: np.ndarray, floor: np.ndarray, count: int) -> BlockOffer:
    """The entries of SCORES (partners, items) that can still enter their item's best COUNT, given FLOOR
    (per item, a copy of the floors; a stale copy only lets more through). Pure, so a worker runs it.

    An entry is looked at only if it reaches its item's floor. An item seen for the first time takes its
    floor from this block (`_chunk_floor`), so one compare over the block lets through about COUNT entries
    per item, not the whole column. A seen item that still gets more than COUNT has its floor raised from
    the block and its entries filtered again; items left with more than COUNT keep their best COUNT."""
    n_items = scores.shape[1]
    floor = floor.copy()
    fresh = np.isneginf(floor)
    deep = len(scores) > count  # a block no deeper than COUNT proves no floor
    if deep:
        _raise_floor(floor, np.flatnonzero(fresh), scores, count)
    b, a = nonzero_2d(scores >= floor[None, :])
    values = scores[b, a]
    new = np.bincount(a, minlength=n_items)
    crowded = np.flatnonzero((new > count) & ~fresh)
    if len(crowded) and deep:
        _raise_floor(floor, crowded, scores, count)
        above = values >= floor[a]
        a, b, values = a[above], b[above], values[above]
        new = np.bincount(a, minlength=n_items)
    if new.max(initial=0) > count:
        a, b, values = _best_of_crowded(floor, a, b, values, new, count)
        new = np.bincount(a, minlength=n_items)
    order = stable_order(a)
    return BlockOffer(b[order], values[order], new, floor)


def _raise_floor(floor: np.ndarray, which: np.ndarray, scores: np.ndarray, count: int) -> None:
    """Raise FLOOR[WHICH] to what the block SCORES (items as columns) proves about them (`_chunk_floor`)."""
    floor[which] = np.maximum(floor[which], _chunk_floor(scores, which, scores.shape[1], count, item_axis=1))


def _best_of_crowded(
    floor: np.ndarray, a: np.ndarray, b: np.ndarray, values: np.ndarray, new: np.ndarray, count: int
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The entries (A, B, VALUES) with every item that has more than COUNT of them cut to its best COUNT;
    each such item's FLOOR rises to the COUNT-th of them."""
    crowded = new[a] > count
    ca, cb, cv = a[crowded], b[crowded], values[crowded]
    order, rank = _best_first_within_items(ca, cv, cb)
    ca, cb, cv = ca[order], cb[order], cv[order]
    keep = rank < count
    last = keep & (rank == count - 1)
    floor[ca[last]] = np.maximum(floor[ca[last]], cv[last])
    return (
        np.concatenate([a[~crowded], ca[keep]]),
        np.concatenate([b[~crowded], cb[keep]]),
        np.concatenate([values[~crowded], cv[keep]]),
    )


def floor_from(scores: np.ndarray, count: int, axis: int) -> np.ndarray:
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
    return floor_from(maxima, count, axis=1 - item_axis)


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
