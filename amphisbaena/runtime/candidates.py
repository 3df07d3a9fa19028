"""Candidates: the best k partners of every left and every right, streamed tile by tile from the head.

The full score matrix is never held. Each row and column keeps its best k + 1 entries while the tiles go
by; the union of every row's and column's best k becomes the candidate graph, and each one's (k+1)-th
best bounds every pair it left out (`graph`). With a pruner, pairs whose geometry bound falls below
the pruner's floor are never scored, and their bounds join the graph's.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import replace
from functools import partial
from typing import Protocol

import numpy as np

from amphisbaena.engines.base import Backend
from amphisbaena.progress import Progress
from amphisbaena.runtime.arrays import nonzero_2d, stable_order
from amphisbaena.runtime.graph import CandidateGraph
from amphisbaena.runtime.overlap import one_ahead
from amphisbaena.runtime.pruning import GeometryPruner
from amphisbaena.runtime.topk import (
    BestPerItem,
    BestPerItemFromBlocks,
    BlockOffer,
    best_of_each_row,
    block_offer,
    floor_from,
)
from amphisbaena.shapes import TilePlan, kept_per_item

CORE_K = 8  # of each row's and column's candidates, the best this many form the graph's core


class BlockScorer(Protocol):
    """What the stream needs of a scorer (`scorer.PairScorer`): features, backend, pruner, tile sizes, and
    scored strips and blocks."""

    backend: Backend
    left: np.ndarray
    right: np.ndarray
    pruner: GeometryPruner | None
    tiles: TilePlan
    progress: Progress

    @property
    def size(self) -> tuple[int, int]: ...

    def strips(self) -> Iterator[tuple[int, np.ndarray]]: ...

    def block(self, lefts: np.ndarray, cols: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]: ...


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
    # Each temporary is dropped as soon as it is used: at a million pairs each of these arrays is about 1 GB.
    by_partner = np.argsort(row_partner, axis=1, kind="stable")
    row_keys = np.take_along_axis(row_partner, by_partner, axis=1)
    row_keys += np.arange(len(row_partner))[:, None] * stride + 1
    row_keys = row_keys.ravel()
    row_scores = np.take_along_axis(row_score, by_partner, axis=1).ravel()
    row_held = np.flatnonzero(np.isfinite(row_scores))  # empty slots (an item with fewer than k partners) go
    col_held = np.flatnonzero(np.isfinite(col_score.ravel()))
    rows_of_held = col_partner.ravel()[col_held]  # held in column order, so a stable sort by row sorts by key
    col_held = col_held[stable_order(rows_of_held)]
    del rows_of_held
    col_keys = col_partner.ravel()[col_held] * stride + col_held // col_partner.shape[1] + 1
    keys = np.concatenate([row_keys[row_held], col_keys])
    del row_keys, col_keys
    merged = np.argsort(keys, kind="stable")  # two sorted runs: a merge; a pair's row copy comes first
    keys = keys[merged]
    scores = np.concatenate([row_scores[row_held], col_score.ravel()[col_held]])[merged]
    del row_scores
    rank = np.concatenate([by_partner.ravel()[row_held].astype(np.int32), (col_held % col_partner.shape[1]).astype(np.int32)])[merged]  # place in the best-first list
    del by_partner, row_held, col_held, merged
    copy = np.flatnonzero(keys[1:] == keys[:-1])  # the row copy; the column copy follows it
    rank[copy] = np.minimum(rank[copy], rank[copy + 1])  # the union keeps an edge's best rank on either side
    first = np.ones(len(keys), dtype=bool)
    first[copy + 1] = False
    del copy
    keys, scores, rank = keys[first], scores[first].astype(np.float64), rank[first]
    del first
    rows, cols = np.divmod(keys, stride)
    del keys
    return CandidateGraph(rows, cols - 1, scores, row_bound, col_bound, core=rank < CORE_K)


def stream(scorer: BlockScorer, k: int) -> CandidateGraph:
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
            row_floor = floor_from(strip[:, :probe], by_row.count, axis=1)
            col_floor = by_col.threshold
            if r0 == 0:
                col_floor = np.maximum(col_floor, floor_from(strip, by_col.count, axis=0))
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


def _stream_device_topk(scorer: BlockScorer, k: int) -> CandidateGraph:
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


def _scored_block(
    scorer: BlockScorer, lefts: np.ndarray, cols: np.ndarray, count: int, by_col: BestPerItemFromBlocks
) -> tuple[np.ndarray, np.ndarray, int, np.ndarray, np.ndarray, BlockOffer]:
    """One block of the pruned stream, in a worker: (LEFTS, COLS, pairs scored, each left's best COUNT
    partners and scores, best first, and what the block offers the rights, `block_offer`). A left is scored
    in this block only, so its list is final here; the rights' offer is filtered against a copy of their
    floors as they stand now. Both run here, not in the main thread, which only slots the offer in."""
    lefts, cols, scores = scorer.block(lefts, cols)
    positions, values = best_of_each_row(scores, count)
    return lefts, cols, scores.size, cols[positions], values, block_offer(scores, by_col.floor[cols], by_col.count)


def _stream_pruned(scorer: BlockScorer, k: int) -> CandidateGraph:
    """The top-k of every left and right among the pairs the geometry does not rule out, with
    bounds on every pair left out (see `pruning`). Each group of lefts is scored against the
    rights whose bound reaches the pruner's floor, and always against at least its k + 1 most promising.
    A left meets one block only, so two workers score blocks and find each left's final list there,
    while the main thread merges the rights' lists, which span many blocks (docs/performance.md)."""
    pruner = scorer.pruner
    n_left, n_right = scorer.size
    row_count = kept_per_item(k, n_right)
    row_score = np.full((n_left, row_count), -np.inf, dtype=np.float32)
    row_partner = np.full((n_left, row_count), -1, dtype=np.int64)
    by_col = BestPerItemFromBlocks(n_right, kept_per_item(k, n_left))
    row_left_out = np.full(n_left, -np.inf)

    def blocks() -> Iterator[Callable[[], tuple[np.ndarray, ...]]]:
        for group in pruner.each_group():
            members, cols = group.members, group.cols
            row_left_out[members] = group.left_out
            if len(cols) < row_count:  # too few above the floor: the group's most promising rights, by its bound on every right
                upper = next(pruner.bounds([members]))
                keep = upper >= pruner.floor
                keep[np.argpartition(-upper, row_count - 1)[:row_count]] = True
                cols = np.flatnonzero(keep)
                row_left_out[members] = upper[~keep].max(initial=-np.inf)
            yield partial(_scored_block, scorer, members, cols, row_count, by_col)

    scored = 0
    with scorer.progress.stage(f"head: groups of lefts (k={k})", total=n_left) as stage:
        for members, cols, pairs, best_partners, best_scores, offer in one_ahead(blocks(), scorer.backend.any_thread, in_flight=2):
            scored += pairs
            row_partner[members], row_score[members] = best_partners, best_scores
            by_col.take(cols, members, offer)
            stage.advance(len(members))
    graph = graph_from(BestPerItem.from_lists(row_score, row_partner), by_col.best_first(), k, n_right)
    return replace(
        graph, row_bound=np.maximum(graph.row_bound, row_left_out), col_bound=np.maximum(graph.col_bound, pruner.col_left_out), scored_pairs=scored
    )
