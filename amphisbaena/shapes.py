"""Shapes and sizes that the runtime, the exported graphs and the TensorRT engines must agree on.

The runtime keeps the best k candidates of every left and right, and one more (k + 1) whose score
bounds everything left out; head_topk.onnx therefore returns k + 1 per row and column of a tile,
and TensorRT's optimisation profiles are built for the tile sizes the runtime uses.
"""

from __future__ import annotations

from dataclasses import dataclass

DEFAULT_K = 32  # candidates kept per left and per right
LARGE_K = 64  # above LARGE_N halves with pruning: more candidates spare proof rounds (docs/performance.md)
LARGE_N = 10_000
TOPK = DEFAULT_K + 1  # what head_topk.onnx returns per row and column: k candidates and the bound's holder

ARM_BATCH = 2048  # halves per arm call
TILE_ROWS = 256  # lefts per head tile
TILE_COLS = 2048  # rights per head tile
TOPK_TILE = 1024  # rows and columns of a head_topk tile: large tiles amortise the per-call cost


def kept_per_item(k: int, partners: int) -> int:
    """How many (score, partner) entries each item keeps while streaming: its best k, plus the (k+1)-th,
    whose score bounds every pair left out; never more than there are partners."""
    return min(k + 1, partners)


@dataclass(frozen=True)
class TilePlan:
    """Tile shapes of head calls: (rows, cols) for exact score tiles, (topk_rows, topk_cols) for head_topk."""

    rows: int = TILE_ROWS
    cols: int = TILE_COLS
    topk_rows: int = TOPK_TILE
    topk_cols: int = TOPK_TILE
