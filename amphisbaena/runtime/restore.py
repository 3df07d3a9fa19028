"""restore(): halves in, one-to-one pairing out, with every number a user sees."""

from __future__ import annotations

import time
from dataclasses import dataclass, field

import numpy as np

from amphisbaena.engines.base import Backend
from amphisbaena.runtime.assignment import solve_dense
from amphisbaena.runtime.scoring import arm_features, score_all


@dataclass
class RestoreResult:
    """The pairing plus what it cost; printed as text or JSON by the CLI."""

    right_for_left: np.ndarray
    backend: str
    precision: str
    assignment: str
    seconds: dict[str, float] = field(default_factory=dict)
    accuracy: float | None = None

    @property
    def count(self) -> int:
        return len(self.right_for_left)

    def summary(self) -> dict:
        summary = {
            "count": self.count,
            "backend": self.backend,
            "precision": self.precision,
            "assignment": self.assignment,
            "seconds": {stage: round(value, 4) for stage, value in self.seconds.items()},
        }
        if self.accuracy is not None:
            summary["accuracy"] = self.accuracy
        return summary


class _Stopwatch:
    def __init__(self) -> None:
        self.seconds: dict[str, float] = {}
        self._last = time.perf_counter()

    def lap(self, stage: str) -> None:
        now = time.perf_counter()
        self.seconds[stage] = self.seconds.get(stage, 0.0) + now - self._last
        self._last = now


def restore(backend: Backend, left: np.ndarray, right: np.ndarray, key: np.ndarray | None = None) -> RestoreResult:
    """Pair every left half with one right half so that the total score is maximal."""
    watch = _Stopwatch()
    left_features = arm_features(backend, "left", left)
    right_features = arm_features(backend, "right", right)
    watch.lap("arms")
    scores = score_all(backend, left_features, right_features)
    watch.lap("head")
    right_for_left = solve_dense(scores)
    watch.lap("assignment")
    result = RestoreResult(right_for_left, backend.name, backend.precision, "dense", watch.seconds)
    if key is not None:
        result.accuracy = float(np.mean(right_for_left == key))
    return result
