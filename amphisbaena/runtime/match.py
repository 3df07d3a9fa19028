"""Re-identification of single halves: the top-k partners of each query in a pool of the
other side, with scores, and no global assignment.

The queries' and the pool's arm features are computed once (`PartnerPool` keeps the pool's for any
number of queries); the tiled head then scores one block of queries against the whole pool at a
time, so memory stays O(block * pool).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from amphisbaena.engines.base import Backend
from amphisbaena.engines.select import BackendChoice
from amphisbaena.errors import InputError
from amphisbaena.export.manifest import model_to_run
from amphisbaena.files import atomic_path, write_npz
from amphisbaena.halves import load_halves
from amphisbaena.runtime.candidates import best_of_each_row
from amphisbaena.runtime.features import arm_features, both_arms
from amphisbaena.runtime.scorer import PairScorer
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
        lower partner (`candidates.best_of_each_row`)."""
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


def top_partners(
    backend: Backend, queries: np.ndarray, pool: np.ndarray, side: str, k: int
) -> tuple[np.ndarray, np.ndarray]:
    """For halves QUERIES of SIDE ("left" or "right") and halves POOL of the other side:
    (partners, scores), each (Q, min(k, len(pool))), best first. One shot: both arms run side by side."""
    if side == "left":
        query_features, pool_features = both_arms(backend, queries, pool)
    else:
        pool_features, query_features = both_arms(backend, pool, queries)
    return PartnerPool(backend, OTHER_SIDE[side], pool_features).best(query_features, k)


@dataclass(frozen=True)
class MatchRequest:
    """`amphisbaena match`: the K best partners of the halves ITEMS of SIDE among the other side."""

    halves: Path
    side: str = "left"
    items: str | None = None
    k: int = 5
    out: Path | None = None
    backend: BackendChoice = field(default_factory=BackendChoice)
    model_dir: Path | None = None
    dataset: str = "mnist"


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


def run_match(request: MatchRequest) -> tuple[dict, list[str]]:
    """Check, match, write --out; return the JSON summary and the lines to print."""
    if request.side not in OTHER_SIDE:
        raise InputError(f"--side must be 'left' or 'right', got {request.side!r}")
    request.backend.check()
    if request.k < 1:
        raise InputError(f"--k must be at least 1, got {request.k}")
    if request.out is not None and not request.out.parent.is_dir():
        raise InputError(f"{request.out}: directory {request.out.parent} does not exist")
    left, right = load_halves(request.halves, allow_unequal=True)
    queries, pool = (left, right) if request.side == "left" else (right, left)
    chosen = parse_items(request.items, len(queries))
    backend, _ = request.backend.create(model_to_run(request.model_dir, request.dataset))
    partners, scores = top_partners(backend, queries[chosen], pool, request.side, request.k)
    lines = []
    if request.out is not None:
        with atomic_path(request.out) as tmp:
            write_npz(tmp, query=chosen, partners=partners, scores=scores)
    other = OTHER_SIDE[request.side]
    matches = [
        {"query": int(q), "partners": [{other: int(p), "score": round(float(v), 4)} for p, v in zip(ps, vs)]}
        for q, ps, vs in zip(chosen, partners, scores)
    ]
    summary = {"side": request.side, "pool": len(pool), "backend": backend.name, "matches": matches}
    for q, ps, vs in list(zip(chosen, partners, scores))[:SHOWN]:
        lines.append(f"{request.side} {q}: " + ", ".join(f"{other} {p} ({v:.3f})" for p, v in zip(ps, vs)))
    if len(chosen) > SHOWN:
        lines.append(f"... {len(chosen) - SHOWN} more queries" + (f" in {request.out}" if request.out is not None else "; use --out or --json"))
    if request.out is not None:
        lines.append(f"wrote {request.out}")
    return summary, lines
