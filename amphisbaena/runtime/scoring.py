"""Arm features once per half, then the head over tiles of features.

Memory stays bounded by the tile: the head's hidden tensor is at most
Tl x Tr x H, never N x N x H.
"""

from __future__ import annotations

import numpy as np

from amphisbaena.engines.base import Backend

ARM_BATCH = 2048
TILE_ROWS = 256
TILE_COLS = 2048


def arm_features(backend: Backend, side: str, halves: np.ndarray, batch: int = ARM_BATCH) -> np.ndarray:
    """Features of every half of SIDE, computed in batches and kept for all later tiles."""
    parts = [backend.arm(side, halves[i : i + batch]) for i in range(0, len(halves), batch)]
    return np.ascontiguousarray(np.concatenate(parts), dtype=np.float32)


def score_all(
    backend: Backend,
    left_features: np.ndarray,
    right_features: np.ndarray,
    tile_rows: int = TILE_ROWS,
    tile_cols: int = TILE_COLS,
) -> np.ndarray:
    """The dense (Nl, Nr) score matrix, filled tile by tile."""
    scores = np.empty((len(left_features), len(right_features)), dtype=np.float32)
    for r0 in range(0, len(left_features), tile_rows):
        rows = left_features[r0 : r0 + tile_rows]
        for c0 in range(0, len(right_features), tile_cols):
            scores[r0 : r0 + len(rows), c0 : c0 + tile_cols] = backend.head(rows, right_features[c0 : c0 + tile_cols])
    return scores
