"""Arm features once per half, then the head over tiles of features.

Memory stays bounded by the tile: the head's hidden tensor is at most
Tl x Tr x H, never N x N x H. For large N the score matrix itself is not kept
either: `stream_candidates` keeps only the best k partners of every left and
every right while the tiles go by.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

import numpy as np

from amphisbaena.engines.base import Backend
from amphisbaena.geometry import MIN_MASS, GeometrySpec
from amphisbaena.runtime.assignment import CandidateGraph

ARM_BATCH = 2048
TILE_ROWS = 256
TILE_COLS = 2048


def arm_features(backend: Backend, side: str, halves: np.ndarray, batch: int = ARM_BATCH) -> np.ndarray:
    """Features of every half of SIDE, computed in batches and kept for all later tiles."""
    parts = [backend.arm(side, halves[i : i + batch]) for i in range(0, len(halves), batch)]
    return np.ascontiguousarray(np.concatenate(parts), dtype=np.float32)


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

    def holds(self, item: np.ndarray, partner: np.ndarray) -> np.ndarray:
        """Whether each (item, partner) entry is already in the item's list."""
        return (self.partner[item] == partner[:, None]).any(axis=1)

    def kept_and_bound(self, k: int) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
        """(item, partner, score) of the best k per item, and each item's bound on the rest:
        its (k+1)-th best score, or -inf where nothing was left out."""
        kept = min(k, self.count)
        items = np.repeat(np.arange(len(self.score)), kept)
        bound = self.score[:, k].astype(np.float64) if self.count > k else np.full(len(self.score), -np.inf)
        return items, self.partner[:, :kept].ravel(), self.score[:, :kept].ravel().astype(np.float64), bound


def _floor_from(scores: np.ndarray, count: int, axis: int) -> np.ndarray:
    """The COUNT-th largest along AXIS: a lower bound on the COUNT-th largest of any superset."""
    size = scores.shape[axis]
    if size < count:
        return np.full(scores.shape[1 - axis], -np.inf, dtype=np.float32)
    return np.partition(scores, size - count, axis=axis).take(size - count, axis=axis)


def _graph_from(by_row: _BestPerItem, by_col: _BestPerItem, k: int, n_right: int) -> CandidateGraph:
    row_item, row_partner, row_score, row_bound = by_row.kept_and_bound(k)
    col_item, col_partner, col_score, col_bound = by_col.kept_and_bound(k)
    all_rows = np.concatenate([row_item, col_partner])
    all_cols = np.concatenate([row_partner, col_item])
    scores = np.concatenate([row_score, col_score])
    unique = np.unique(all_rows * n_right + all_cols, return_index=True)[1]
    return CandidateGraph(all_rows[unique], all_cols[unique], scores[unique], row_bound, col_bound)


def stream_candidates(
    backend: Backend,
    left_features: np.ndarray,
    right_features: np.ndarray,
    k: int,
    tile_rows: int = TILE_ROWS,
    tile_cols: int = TILE_COLS,
) -> CandidateGraph:
    """Top-k partners of every left and every right, with bounds on every score left out.

    Memory is O(N * k + tile_rows * N); the full score matrix is never kept.
    Backends whose head splits into a cheap upper bound minus a geometry penalty
    take the bounded path (`_stream_bounded`); others score every pair exactly.
    """
    if backend.geometry is not None:
        return _stream_bounded(backend, left_features, right_features, k, tile_rows, tile_cols)
    n_left, n_right = len(left_features), len(right_features)
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


def _feed(by_row: _BestPerItem, by_col: _BestPerItem, rows, cols, scores, row_floor, col_floor) -> None:
    for_rows = scores >= row_floor
    by_row.add(rows[for_rows], cols[for_rows], scores[for_rows])
    for_cols = scores >= col_floor
    by_col.add(cols[for_cols], rows[for_cols], scores[for_cols])


BOUND_TILE = 512  # columns (row pass) or rows (column pass) per bound tile, sorted by torque


@dataclass(frozen=True)
class _Balance:
    """Per-half keys of the centre-of-mass rule, so that for a left i and a right j

        penalty(i, j) >= com_weight * (relu(a_j - b_i) + relu(c_i - d_j)) / (m_i + m_j)

    per axis (columns, rows): the joined centre of mass lies above 14.5 exactly when
    a_j > b_i, below 13.5 exactly when c_i > d_j. Sorting halves by their torque
    about the centre makes these keys narrow within a tile, so a whole tile's
    bound can be lowered at once by its least possible penalty.
    """

    mass: np.ndarray
    above: np.ndarray  # (N, 2): a (right) or b (left), for columns and rows
    below: np.ndarray  # (N, 2): d (right) or c (left)
    torque: np.ndarray  # column moment about the centre line: the sort key

    @classmethod
    def of(cls, geometry: np.ndarray, side: str) -> _Balance:
        mass = geometry[:, 0].astype(np.float64)
        moments = geometry[:, [2, 1]].astype(np.float64)  # column moment, row moment
        if side == "left":
            above, below = 14.5 * mass[:, None] - moments, 13.5 * mass[:, None] - moments
        else:
            above, below = moments - 14.5 * mass[:, None], moments - 13.5 * mass[:, None]
        return cls(mass, above, below, moments[:, 0] - 14.0 * mass)

    def take(self, items: np.ndarray) -> _Balance:
        return _Balance(self.mass[items], self.above[items], self.below[items], self.torque[items])


def _tile_penalty_floor(left: _Balance, right: _Balance, com_weight: float) -> np.ndarray:
    """Least penalty between each single half on one side and a whole tile on the other: LEFT and
    RIGHT hold per-item keys for one side and per-tile extremes (mins/maxes) for the other."""
    excess = np.maximum(right.above[None, :, :] - left.above[:, None, :], 0) + np.maximum(left.below[:, None, :] - right.below[None, :, :], 0)
    mass = np.maximum(left.mass[:, None] + right.mass[None, :], MIN_MASS)
    return com_weight * excess.sum(axis=2) / mass


def _tiles_of(balance: _Balance, order: np.ndarray, side: str) -> tuple[list[np.ndarray], _Balance]:
    """Split ORDER into BOUND_TILE-sized tiles and summarise each by the extremes that make the
    tile penalty floor smallest (a valid floor for every member)."""
    tiles = [order[i : i + BOUND_TILE] for i in range(0, len(order), BOUND_TILE)]
    pick_above = np.min if side == "right" else np.max
    pick_below = np.max if side == "right" else np.min
    summary = _Balance(
        np.array([balance.mass[t].max() for t in tiles]),
        np.array([pick_above(balance.above[t], axis=0) for t in tiles]).reshape(len(tiles), 2),
        np.array([pick_below(balance.below[t], axis=0) for t in tiles]).reshape(len(tiles), 2),
        np.zeros(len(tiles)),
    )
    return tiles, summary


def _stream_bounded(
    backend: Backend,
    left_features: np.ndarray,
    right_features: np.ndarray,
    k: int,
    tile_rows: int,
    tile_cols: int,
) -> CandidateGraph:
    """The same top-k, scoring exactly only what could matter.

    exact = bound - penalty with penalty >= 0, so an entry whose bound is below
    its row's current (k+1)-th best exact score plus the least penalty its tile
    allows can never enter that row's list, and likewise for columns. Two passes
    over the cheap bound (one matrix product per tile) keep each filter tight:
    the row pass walks row strips, seeding each strip's floors with one exactly
    scored tile; the column pass walks column strips and starts from the column
    lists the row pass already found. The penalty is computed only for entries
    that pass a filter.
    """
    n_left, n_right = len(left_features), len(right_features)
    by_row = _BestPerItem(n_left, min(k + 1, n_right))
    by_col = _BestPerItem(n_right, min(k + 1, n_left))
    geometry = backend.geometry
    # Survivors need only the geometry columns: gather those, not whole feature rows.
    left_geometry = np.ascontiguousarray(left_features[:, geometry.start :])
    right_geometry = np.ascontiguousarray(right_features[:, geometry.start :])
    unshifted = GeometrySpec(0, geometry.com_weight, geometry.box_weight)
    left_balance, right_balance = _Balance.of(left_geometry, "left"), _Balance.of(right_geometry, "right")

    def exact_where(bound: np.ndarray, keep: np.ndarray, rows: np.ndarray, cols: np.ndarray):
        r, c = np.nonzero(keep)
        return rows[r], cols[c], bound[r, c] - unshifted.penalty(left_geometry[rows[r]], right_geometry[cols[c]])

    seed_cols = min(n_right, max(BOUND_TILE, 4 * (k + 1)))
    rest = seed_cols + np.argsort(right_balance.torque[seed_cols:], kind="stable")
    col_tiles, col_tile_balance = _tiles_of(right_balance, rest, "right")
    for r0 in range(0, n_left, tile_rows):
        rows = np.arange(r0, min(r0 + tile_rows, n_left))
        left = left_features[rows]
        seed = score_all(backend, left, right_features[:seed_cols])
        floor = _floor_from(seed, by_row.count, axis=1)
        r, c = np.nonzero(seed >= floor[:, None])
        by_row.add(rows[r], c, seed[r, c])
        by_col.add(c, rows[r], seed[r, c])
        least_penalty = _tile_penalty_floor(left_balance.take(rows), col_tile_balance, geometry.com_weight)
        for t, cols in enumerate(col_tiles):
            bound = backend.head_bound(left, right_features[cols])
            floor = by_row.threshold[rows] + least_penalty[:, t]
            rr, cc, scores = exact_where(bound, bound >= floor[:, None], rows, cols)
            keep = scores >= by_row.threshold[rr]
            by_row.add(rr[keep], cc[keep], scores[keep])
            by_col.add(cc[keep], rr[keep], scores[keep])
    # Column pass: every pair again, now filtered by its column's floor; pairs already in a
    # column's list are skipped so nothing is counted twice.
    row_tiles, row_tile_balance = _tiles_of(left_balance, np.argsort(left_balance.torque, kind="stable"), "left")
    for c0 in range(0, n_right, tile_rows):
        cols = np.arange(c0, min(c0 + tile_rows, n_right))
        least_penalty = _tile_penalty_floor(row_tile_balance, right_balance.take(cols), geometry.com_weight)
        for t, rows in enumerate(row_tiles):
            bound = backend.head_bound(left_features[rows], right_features[cols])
            floor = by_col.threshold[cols] + least_penalty[t]
            rr, cc, scores = exact_where(bound, bound >= floor[None, :], rows, cols)
            keep = (scores >= by_col.threshold[cc]) & ~by_col.holds(cc, rr)
            by_col.add(cc[keep], rr[keep], scores[keep])
    return _graph_from(by_row, by_col, k, n_right)
