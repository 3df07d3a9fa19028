"""Array idioms the hot loops share: where numpy's obvious call is several times slower than needed, or the
same few lines would otherwise be written in several places."""

from __future__ import annotations

from collections.abc import Callable

import numpy as np


def nonzero_2d(mask: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(rows, cols) of the True entries of the 2-D MASK in row-major order, like np.nonzero(mask).

    np.nonzero on a 2-D array writes both index arrays element by element; the flat indices split by
    one division come out several times faster on the masks the candidate stream makes
    (`benchmarks/nonzero_2d.py`)."""
    rows, cols = np.divmod(np.flatnonzero(mask), mask.shape[1])
    return rows, cols


def runs(starts: np.ndarray, stops: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The positions of the runs [STARTS[r], STOPS[r]) (R,) laid end to end (E',), and each run's length (R,):
    the edges of some nodes of a graph stored node by node (CSR), gathered in one pass."""
    counts = stops - starts
    return np.arange(int(counts.sum())) + np.repeat(starts - (np.cumsum(counts) - counts), counts), counts


def stable_order(keys: np.ndarray) -> np.ndarray:
    """The stable argsort of non-negative integer KEYS (E,): numpy sorts 16-bit keys by radix, about six times
    faster than its stable sort of wider ones (5 M keys; docs/performance.md, issue 23's fifth stop)."""
    if len(keys) and int(keys.max()) < 1 << 16:
        return np.argsort(keys.astype(np.uint16), kind="stable")
    return np.argsort(keys, kind="stable")


CHUNK_EDGES = 1 << 22  # edges gathered at once where a whole-graph gather would hold several edge-sized copies


def edges_by_row(
    rows: np.ndarray, cols: np.ndarray, keep: np.ndarray | None, n: int, length_of: Callable[[np.ndarray], np.ndarray], spare: int
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The kept edges (ROWS, COLS, KEEP (E,); all where None) laid out row by row for a CSR graph of nodes 0..N-1
    (the rows), N..2N-1 (the columns) and up to one more, in chunks so that no edge-sized copy of ROWS or COLS is
    made: the lengths LENGTH_OF(positions of a chunk's edges) and head nodes N + col (each (F + SPARE,), the last
    SPARE left for the caller's other nodes; the heads in 32 bits where the graph allows), and the row starts (N + 1,)."""
    if np.any(rows[1:] < rows[:-1]):
        picked = stable_order(rows)
        if keep is not None:
            picked = picked[keep[picked]]
    else:
        picked = np.arange(len(rows)) if keep is None else np.flatnonzero(keep)
    starts = np.zeros(n + 1, dtype=np.int64)
    np.cumsum(np.bincount(rows if keep is None else rows[picked], minlength=n), out=starts[1:])
    size = len(picked) + spare
    lengths, heads = np.empty(size), np.empty(size, dtype=np.int32 if size + 2 * n < np.iinfo(np.int32).max else np.int64)
    for start in range(0, len(picked), CHUNK_EDGES):
        positions = picked[start : start + CHUNK_EDGES]
        lengths[start : start + len(positions)] = length_of(positions)
        np.add(cols[positions], n, out=heads[start : start + len(positions)], casting="unsafe")
    return lengths, heads, starts


def minimum_by_group(initial: np.ndarray, groups: np.ndarray, values: np.ndarray) -> np.ndarray:
    """INITIAL (G,) lowered to the least of VALUES (E,) in each group GROUPS (E,): what np.minimum.at(initial.copy(),
    groups, values) gives, by one `stable_order` and a reduceat. On the regrets' slacks np.minimum.at was the
    slower of the two (0.23-0.35 s against 0.09-0.27 s for 5 M at 60,000 pairs), though not on uniform random
    values; docs/performance.md, issue 23's fifth stop."""
    result = initial.copy()
    if len(groups) == 0:
        return result
    order = stable_order(groups)
    groups, values = groups[order], values[order]
    starts = np.flatnonzero(np.r_[True, groups[1:] != groups[:-1]])
    which = groups[starts]
    result[which] = np.minimum(result[which], np.minimum.reduceat(values, starts))
    return result
