"""Re-identification of single halves: the top-k partners of each query in a pool of the
other side, with scores, and no global assignment.

The queries' and the pool's arm features are computed once (`PartnerPool` keeps the pool's for any
number of queries); the tiled head then scores one block of queries against the whole pool at a
time, so memory stays O(block * pool).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from amphisbaena.engines.base import Backend
from amphisbaena.errors import InputError
from amphisbaena.runtime.features import arm_features
from amphisbaena.runtime.scorer import PairScorer
from amphisbaena.runtime.topk import best_of_each_row
from amphisbaena.shapes import TILE_ROWS

OTHER_SIDE = {"left": "right", "right": "left"}
SHOWN = 20  # queries printed as text; --out and --json carry all


@dataclass(frozen=True)
class PartnerPool:
    """A pool of halves of one SIDE with their arm features (P, D), computed once: any number of queries
    of the other side are then scored against it, each query running only its own arm and the head.
    This is what a warm, in-process `match` query costs."""

    backend: Backend
    side: str
    features: np.ndarray

    @classmethod
    def of_halves(cls, backend: Backend, halves: np.ndarray, side: str) -> PartnerPool:
        """The pool of (P, 28, 14) uint8 HALVES of SIDE ("left" or "right")."""
        return cls(backend, side, arm_features(backend, side, halves))

    def query(self, halves: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
        """(partners, scores), each (Q, min(k, P)), best first, of the (Q, 28, 14) HALVES of the other side."""
        return self.best(arm_features(self.backend, OTHER_SIDE[self.side], halves), k)

    def best(self, query_features: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
        """The same for queries given as features (Q, D): the tiled head scores one block of TILE_ROWS
        queries against the whole pool at a time, so memory stays O(block * pool). Ties go to the
        lower partner (`topk.best_of_each_row`)."""
        k = min(k, len(self.features))
        partners = np.empty((len(query_features), k), dtype=np.int64)
        scores = np.empty((len(query_features), k), dtype=np.float32)
        for start in range(0, len(query_features), TILE_ROWS):
            block = query_features[start : start + TILE_ROWS]
            if self.side == "right":
                block_scores = PairScorer(self.backend, block, self.features).all()
            else:  # the head takes lefts first: score the pool against the block and turn it around
                block_scores = np.ascontiguousarray(PairScorer(self.backend, self.features, block).all().T)
            partners[start : start + len(block)], scores[start : start + len(block)] = best_of_each_row(block_scores, k)
        return partners, scores


def parse_items(items: str | None, count: int) -> np.ndarray:
    """Query indices from "3,17,40" (all COUNT where None), each checked to be in range."""
    if items is None:
        return np.arange(count)
    try:
        chosen = np.array([int(part) for part in items.split(",") if part.strip()], dtype=np.int64)
    except ValueError:
        raise InputError(f"--items must be comma-separated integers, got {items!r}") from None
    if len(chosen) == 0 or chosen.min() < 0 or chosen.max() >= count:
        raise InputError(f"--items must name indices in 0..{count - 1}, got {items!r}")
    return chosen


def match_report(
    side: str, chosen: np.ndarray, partners: np.ndarray, scores: np.ndarray, pool_size: int, backend: str, out: Path | None
) -> tuple[dict, list[str]]:
    """What `match` prints for the queries CHOSEN of SIDE against a pool of POOL_SIZE: the JSON summary
    of every query, and the lines of the first SHOWN."""
    other = OTHER_SIDE[side]
    matches = [
        {"query": int(q), "partners": [{other: int(p), "score": round(float(v), 4)} for p, v in zip(ps, vs)]}
        for q, ps, vs in zip(chosen, partners, scores)
    ]
    summary = {"side": side, "pool": pool_size, "backend": backend, "matches": matches}
    lines = []
    for q, ps, vs in list(zip(chosen, partners, scores))[:SHOWN]:
        lines.append(f"{side} {q}: " + ", ".join(f"{other} {p} ({v:.3f})" for p, v in zip(ps, vs)))
    if len(chosen) > SHOWN:
        lines.append(f"... {len(chosen) - SHOWN} more queries" + (f" in {out}" if out is not None else "; use --out or --json"))
    if out is not None:
        lines.append(f"wrote {out}")
    return summary, lines
