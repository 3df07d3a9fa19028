"""Arm features once per half, then the head over tiles of features.

Memory stays bounded by the tile: the head's hidden tensor is at most
Tl x Tr x H, never N x N x H. For large N the score matrix itself is not kept
either: `stream_candidates` keeps only the best k partners of every left and
every right while the tiles go by.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import replace
from functools import partial
from typing import TypeVar

import numpy as np

from amphisbaena.engines.base import Backend
from amphisbaena.runtime.assignment import CandidateGraph, SparseSolution
from amphisbaena.runtime.pruning import GeometryPruner

T = TypeVar("T")

ARM_BATCH = 2048
TILE_ROWS = 256
TILE_COLS = 2048
TOPK_TILE = 1024  # rows and columns of a head_topk tile: large tiles amortise the per-call cost
CORE_K = 8  # of each row's and column's candidates, the best this many form the graph's core (assignment._potentials; measured 4, 8, 16: 8 fastest at 10k and 60k)
PRUNE_FLOOR = -20.0  # pairs whose score bound is below this are not scored (well under a row's 33rd best)


def arm_features(backend: Backend, side: str, halves: np.ndarray, batch: int = ARM_BATCH) -> np.ndarray:
    """Features of every half of SIDE, computed in batches and kept for all later tiles."""
    parts = [backend.arm(side, halves[i : i + batch]) for i in range(0, len(halves), batch)]
    return np.ascontiguousarray(np.concatenate(parts), dtype=np.float32)


def both_arms(backend: Backend, left: np.ndarray, right: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Features of the lefts and of the rights; the two arms run side by side where the backend
    allows threads (onnxruntime gives each arm half the threads: 10k halves 0.8 s -> 0.6 s on 2 cores)."""
    if not backend.any_thread:
        return arm_features(backend, "left", left), arm_features(backend, "right", right)
    with ThreadPoolExecutor(max_workers=1) as worker:
        right_features = worker.submit(arm_features, backend, "right", right)
        return arm_features(backend, "left", left), right_features.result()


def score_strips(
    backend: Backend,
    left_features: np.ndarray,
    right_features: np.ndarray,
    tile_rows: int = TILE_ROWS,
    tile_cols: int = TILE_COLS,
) -> Iterator[tuple[int, np.ndarray]]:
    """Yield (first_row, scores[rows, all columns]) strip by strip, each strip filled tile by tile."""
    strip = np.empty((tile_rows, len(right_features)), dtype=np.float32)
    for r0 in range(0, len(left_features), tile_rows):
        rows = left_features[r0 : r0 + tile_rows]
        for c0 in range(0, len(right_features), tile_cols):
            strip[: len(rows), c0 : c0 + tile_cols] = backend.head(rows, right_features[c0 : c0 + tile_cols])
        yield r0, strip[: len(rows)]


def score_all(backend: Backend, left_features: np.ndarray, right_features: np.ndarray) -> np.ndarray:
    """The dense (Nl, Nr) score matrix; only for N small enough to hold it."""
    scores = np.empty((len(left_features), len(right_features)), dtype=np.float32)
    for r0, strip in score_strips(backend, left_features, right_features):
        scores[r0 : r0 + len(strip)] = strip
    return scores


def score_rows(backend: Backend, left_features: np.ndarray, right_features: np.ndarray, rows: np.ndarray) -> np.ndarray:
    """Exact scores of the given left rows against every right, for the optimality check."""
    return score_all(backend, left_features[rows], right_features)


def _score_columns(
    backend: Backend, left_rows: np.ndarray, right_features: np.ndarray, cols: np.ndarray, tile_cols: int = TILE_COLS
) -> np.ndarray:
    """Exact scores (len(left_rows), len(cols)) of some lefts against the rights COLS, in tiles."""
    scores = np.empty((len(left_rows), len(cols)), dtype=np.float32)
    for c0 in range(0, len(cols), tile_cols):
        scores[:, c0 : c0 + tile_cols] = backend.head(left_rows, right_features[cols[c0 : c0 + tile_cols]])
    return scores


def one_ahead(calls: Iterable[Callable[[], T]], threaded: bool = True) -> Iterator[T]:
    """The results of CALLS in order, each computed in a worker thread while the caller digests the
    one before (THREADED; else simply in turn). The head runs in onnxruntime and the digesting in
    large numpy operations, both of which release the GIL, so neither waits for the other
    (measured: README, "Tests and benchmarks")."""
    if not threaded:
        yield from (call() for call in calls)
        return
    with ThreadPoolExecutor(max_workers=1) as worker:
        pending = None
        for call in calls:
            future = worker.submit(call)
            if pending is not None:
                yield pending.result()
            pending = future
        if pending is not None:
            yield pending.result()


def _scored_block(
    backend: Backend, left_features: np.ndarray, right_features: np.ndarray, members: np.ndarray, cols: np.ndarray, tile_cols: int
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    return members, cols, _score_columns(backend, left_features[members], right_features, cols, tile_cols)


def rescore_rows(
    backend: Backend,
    left_features: np.ndarray,
    right_features: np.ndarray,
    rows: np.ndarray,
    solution: SparseSolution,
    pruner: GeometryPruner | None,
) -> tuple[np.ndarray, int]:
    """Scores of whole ROWS for the optimality check, and how many pairs were scored.

    Without a pruner every pair is scored. With one, the rows are split into small groups of
    similar geometry, and a pair whose group bound is at most what the duals certify
    (u_i + w_j) needs no score: the bound stands in for it, which both certifies it and
    bounds what the row leaves out."""
    if pruner is None:
        exact = score_rows(backend, left_features, right_features, rows)
        return exact, exact.size
    certified = solution.row_potential[rows, None] + solution.col_potential[None, :]
    subgroups = pruner.subgroups(rows)
    values = np.empty((len(rows), len(right_features)))
    scored = 0
    for members, upper in zip(subgroups, pruner.bounds([rows[members] for members in subgroups])):
        values[members] = upper
        cols = np.flatnonzero(upper > certified[members].min(axis=0))
        values[np.ix_(members, cols)] = _score_columns(backend, left_features[rows[members]], right_features, cols)
        scored += len(members) * len(cols)
    return values, scored


class _BestPerItem:
    """The best COUNT (score, partner) pairs of every item, kept best first in dense arrays.

    Batches are ragged lists of entries; only the items they touch are re-sorted.
    """

    def __init__(self, items: int, count: int) -> None:
        self.count = count
        self.score = np.full((items, count), -np.inf, dtype=np.float32)
        self.partner = np.full((items, count), -1, dtype=np.int64)

    @property
    def threshold(self) -> np.ndarray:
        """Each item's current COUNT-th best: entries below it can never enter."""
        return self.score[:, -1]

    def add(self, item: np.ndarray, partner: np.ndarray, score: np.ndarray) -> None:
        if len(item) == 0:
            return
        order = np.lexsort((partner, -score, item))
        item, partner, score = item[order], partner[order], score[order]
        touched, start, counts = np.unique(item, return_index=True, return_counts=True)
        rank = np.arange(len(item)) - np.repeat(start, counts)
        useful = rank < self.count
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

    def kept_and_bound(self, k: int) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
        """(item, partner, score, rank) of the best k per item (rank 0 the best), and each item's
        bound on the rest: its (k+1)-th best score, or -inf where nothing was left out."""
        kept = min(k, self.count)
        items = np.repeat(np.arange(len(self.score)), kept)
        rank = np.tile(np.arange(kept, dtype=np.uint8 if kept <= 256 else np.int64), len(self.score))
        bound = self.score[:, k].astype(np.float64) if self.count > k else np.full(len(self.score), -np.inf)
        return items, self.partner[:, :kept].ravel(), self.score[:, :kept].ravel().astype(np.float64), rank, bound


class _BestPerItemFromBlocks:
    """The best COUNT (score, partner) pairs of every item, gathered from dense blocks of scores.

    Each item has 2 * COUNT slots, unsorted. A block offers each of its items only its entries at
    or above the item's floor (its COUNT-th best so far, a lower bound on its final COUNT-th best),
    and at most its own best COUNT of them. An item whose slots would overflow is first cut back to
    its best COUNT. Sorting happens once, at the end (measured at 10k: rows and columns 0.36 s,
    against 0.49 s merging every block into the kept lists)."""

    def __init__(self, items: int, count: int) -> None:
        self.count = count
        self.score = np.full((items, 2 * count), -np.inf, dtype=np.float32)
        self.partner = np.full((items, 2 * count), -1, dtype=np.int64)
        self.fill = np.zeros(items, dtype=np.int64)
        self.floor = np.full(items, -np.inf, dtype=np.float32)

    def add_block(self, items: np.ndarray, partners: np.ndarray, scores: np.ndarray) -> None:
        """SCORES[a, b] (C-contiguous) is the score of (ITEMS[a], PARTNERS[b]); ITEMS are distinct, and
        no (item, partner) pair comes in more than one block.

        Entries below an item's floor are dropped in one pass. Only items left with more than COUNT
        (early blocks, before their floors rose) are partitioned down to the block's best COUNT."""
        width = scores.shape[1]
        fresh = np.isneginf(self.floor[items])
        seen = np.flatnonzero(~fresh)
        a, b = np.divmod(np.flatnonzero(scores[seen] >= self.floor[items[seen], None]), width)
        a = seen[a]
        if width > self.count:
            is_crowded = fresh | (np.bincount(a, minlength=len(items)) > self.count)
            crowded = np.flatnonzero(is_crowded)
            block = scores if len(crowded) == len(items) else scores[crowded]
            best = np.argpartition(block, width - self.count, axis=1)[:, width - self.count :]
            self.floor[items[crowded]] = np.maximum(self.floor[items[crowded]], np.take_along_axis(block, best, axis=1).min(axis=1))
            sparse = ~is_crowded[a]
            a = np.concatenate([a[sparse], np.repeat(crowded, self.count)])
            b = np.concatenate([b[sparse], best.ravel()])
        else:  # a block no wider than COUNT: fresh items take all of it
            rows = np.flatnonzero(fresh)
            a = np.concatenate([a, np.repeat(rows, width)])
            b = np.concatenate([b, np.tile(np.arange(width), len(rows))])
        new = np.bincount(a, minlength=len(items))
        self._cut(items[self.fill[items] + new > self.score.shape[1]])
        order = np.argsort(a, kind="stable")
        a, b = a[order], b[order]
        rank = np.arange(len(a)) - np.repeat(np.cumsum(new) - new, new)
        slot = self.fill[items[a]] + rank
        self.score[items[a], slot] = scores[a, b]
        self.partner[items[a], slot] = partners[b]
        self.fill[items] += new

    def _cut(self, items: np.ndarray) -> None:
        """Keep only the best COUNT of ITEMS' slots; their floor rises to the COUNT-th of them."""
        if len(items) == 0:
            return
        top = np.argpartition(-self.score[items], self.count - 1, axis=1)[:, : self.count]
        kept_score = np.take_along_axis(self.score[items], top, axis=1)
        kept_partner = np.take_along_axis(self.partner[items], top, axis=1)
        self.score[items] = -np.inf
        self.partner[items] = -1
        self.score[items, : self.count] = kept_score
        self.partner[items, : self.count] = kept_partner
        self.fill[items] = self.count
        self.floor[items] = np.maximum(self.floor[items], kept_score.min(axis=1))

    def best_first(self) -> _BestPerItem:
        """Sorted lists, best first, ties going to the lower partner; empty slots last."""
        partner_key = np.where(np.isneginf(self.score), np.iinfo(np.int64).max, self.partner)
        order = np.lexsort((partner_key, -self.score), axis=1)[:, : self.count]
        best = _BestPerItem(len(self.score), self.count)
        best.score = np.take_along_axis(self.score, order, axis=1)
        best.partner = np.take_along_axis(self.partner, order, axis=1)
        return best


def _floor_from(scores: np.ndarray, count: int, axis: int) -> np.ndarray:
    """The COUNT-th largest along AXIS: a lower bound on the COUNT-th largest of any superset."""
    size = scores.shape[axis]
    if size < count:
        return np.full(scores.shape[1 - axis], -np.inf, dtype=np.float32)
    return np.partition(scores, size - count, axis=axis).take(size - count, axis=axis)


def _graph_from(by_row: _BestPerItem, by_col: _BestPerItem, k: int, n_right: int) -> CandidateGraph:
    """The union of every row's and every column's best k, its core marked (`CandidateGraph.core`)."""
    row_item, row_partner, row_score, row_rank, row_bound = by_row.kept_and_bound(k)
    col_item, col_partner, col_score, col_rank, col_bound = by_col.kept_and_bound(k)
    all_rows = np.concatenate([row_item, col_partner])
    all_cols = np.concatenate([row_partner, col_item])
    scores = np.concatenate([row_score, col_score])
    rank = np.concatenate([row_rank, col_rank])  # small integers: the stable sort below is a radix sort
    held = np.flatnonzero(np.isfinite(scores))  # an item scored against fewer than k partners leaves empty slots
    held = held[np.argsort(rank[held], kind="stable")]  # the union keeps an edge's best rank on either side
    unique = held[np.unique(all_rows[held] * n_right + all_cols[held], return_index=True)[1]]
    return CandidateGraph(all_rows[unique], all_cols[unique], scores[unique], row_bound, col_bound, core=rank[unique] < CORE_K)


def stream_candidates(
    backend: Backend,
    left_features: np.ndarray,
    right_features: np.ndarray,
    k: int,
    tile_rows: int | None = None,
    tile_cols: int | None = None,
    pruner: GeometryPruner | None = None,
) -> CandidateGraph:
    """Top-k partners of every left and every right, with bounds on every score left out.

    Memory is O(N * k + tile_rows * N); the full score matrix is never kept.
    With a PRUNER (`pruning.pruner_for`), pairs the geometry rules out are never scored
    (`stream_pruned_candidates`). Otherwise backends with a head_topk graph reduce
    every tile to its candidates inside the graph (`_stream_device_topk`); others
    return whole tiles and are filtered here.
    """
    n_left, n_right = len(left_features), len(right_features)
    if pruner is not None:
        return stream_pruned_candidates(backend, left_features, right_features, k, pruner, tile_cols=tile_cols or TILE_COLS)
    if backend.topk is not None and k + 1 <= backend.topk <= min(n_left, n_right):
        return _stream_device_topk(backend, left_features, right_features, k, tile_rows or TOPK_TILE, tile_cols or TOPK_TILE)
    tile_rows, tile_cols = tile_rows or TILE_ROWS, tile_cols or TILE_COLS
    by_row = _BestPerItem(n_left, min(k + 1, n_right))
    by_col = _BestPerItem(n_right, min(k + 1, n_left))
    probe = min(n_right, max(tile_cols, 4 * (k + 1)))
    for r0, strip in score_strips(backend, left_features, right_features, tile_rows, tile_cols):
        # Entries below both floors can enter neither a row's nor a column's top-(k+1).
        row_floor = _floor_from(strip[:, :probe], by_row.count, axis=1)
        col_floor = by_col.threshold
        if r0 == 0:
            col_floor = np.maximum(col_floor, _floor_from(strip, by_col.count, axis=0))
        r, c = np.nonzero((strip >= row_floor[:, None]) | (strip >= col_floor[None, :]))
        _feed(by_row, by_col, r + r0, c, strip[r, c], row_floor[r], col_floor[c])
    return _graph_from(by_row, by_col, k, n_right)


def _windows(n: int, size: int, minimum: int) -> Iterator[tuple[int, int, int]]:
    """(start, stop, fresh) windows covering range(n) in steps of SIZE, each at least MINIMUM long:
    a short last window reaches back into the previous one, and only [fresh, stop) is new in it."""
    for fresh in range(0, n, size):
        stop = min(fresh + size, n)
        yield min(fresh, max(0, stop - minimum)), stop, fresh


def _stream_device_topk(
    backend: Backend, left_features: np.ndarray, right_features: np.ndarray, k: int, tile_rows: int, tile_cols: int
) -> CandidateGraph:
    """The same top-k from tiles reduced on the device (head_topk): only each tile's best `topk` per
    row and per column come back. A row's best k + 1 overall are among its best k + 1 within any
    tile that holds them, so merging the tiles' lists on the host is exact."""
    n_left, n_right = len(left_features), len(right_features)
    by_row = _BestPerItem(n_left, min(k + 1, n_right))
    by_col = _BestPerItem(n_right, min(k + 1, n_left))
    tile_rows, tile_cols = max(tile_rows, backend.topk), max(tile_cols, backend.topk)
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
    return _graph_from(by_row, by_col, k, n_right)


def _feed(by_row: _BestPerItem, by_col: _BestPerItem, rows, cols, scores, row_floor, col_floor) -> None:
    for_rows = scores >= row_floor
    by_row.add(rows[for_rows], cols[for_rows], scores[for_rows])
    for_cols = scores >= col_floor
    by_col.add(cols[for_cols], rows[for_cols], scores[for_cols])


def stream_pruned_candidates(
    backend: Backend,
    left_features: np.ndarray,
    right_features: np.ndarray,
    k: int,
    pruner: GeometryPruner,
    floor: float | None = None,
    tile_cols: int = TILE_COLS,
) -> CandidateGraph:
    """The top-k of every left and right among the pairs the geometry does not rule out, with
    bounds on every pair left out (see `pruning`). Each group of lefts is scored against the
    rights whose bound reaches FLOOR (default PRUNE_FLOOR), and always against at least its k + 1
    most promising."""
    floor = PRUNE_FLOOR if floor is None else floor
    n_left, n_right = len(left_features), len(right_features)
    by_row = _BestPerItemFromBlocks(n_left, min(k + 1, n_right))
    by_col = _BestPerItemFromBlocks(n_right, min(k + 1, n_left))
    row_left_out = np.full(n_left, -np.inf)
    col_left_out = np.full(n_right, -np.inf)

    def blocks() -> Iterator[Callable[[], tuple[np.ndarray, np.ndarray, np.ndarray]]]:
        for members, upper in zip(pruner.groups, pruner.bounds(pruner.groups)):
            keep = upper >= floor
            if keep.sum() < by_row.count:
                keep[np.argpartition(-upper, by_row.count - 1)[: by_row.count]] = True
            cols = np.flatnonzero(keep)
            if len(cols) < n_right:
                row_left_out[members] = upper[~keep].max()
                np.maximum(col_left_out, np.where(keep, -np.inf, upper), out=col_left_out)
            yield partial(_scored_block, backend, left_features, right_features, members, cols, tile_cols)

    scored = 0
    for members, cols, scores in one_ahead(blocks(), backend.any_thread):
        scored += scores.size
        by_row.add_block(members, cols, scores)
        by_col.add_block(cols, members, np.ascontiguousarray(scores.T))
    graph = _graph_from(by_row.best_first(), by_col.best_first(), k, n_right)
    return replace(
        graph, row_bound=np.maximum(graph.row_bound, row_left_out), col_bound=np.maximum(graph.col_bound, col_left_out), scored_pairs=scored
    )
