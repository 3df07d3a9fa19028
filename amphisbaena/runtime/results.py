"""What a restore produced and what it cost: the types the CLI prints as text or JSON."""

from __future__ import annotations

import time
from dataclasses import asdict, dataclass, field

import numpy as np


def backend_line(count_phrase: str, backend: str, precision: str, fallbacks: list[str]) -> str:
    """'COUNT_PHRASE with BACKEND (PRECISION)', and one clause where faster backends were skipped."""
    return f"{count_phrase} with {backend} ({precision})" + ("; no GPU backend available, see --json" if fallbacks else "")


def seconds_line(seconds: dict[str, float]) -> str:
    return "seconds: " + ", ".join(f"{stage} {value:.2f}" for stage, value in seconds.items())


@dataclass
class AssignmentReport:
    """How the assignment was found and, for the sparse path, the optimality certificate."""

    method: str  # "sparse" (proven optimal for the full matrix) or "dense"
    k: int | None = None
    candidate_edges: int | None = None
    rounds: int = 0
    rescored_rows: int = 0  # rows whose pairs outside the graph the proof scored, summed over rounds
    added_edges: int = 0
    repaired_rows: int = 0  # rows a maximum matching of the candidate graph left unmatched before its repair
    scored_pairs: int | None = None  # pairs the head scored; the rest were ruled out by their bounds
    proof: str = ""
    fallback_reason: str = ""
    total_score: float = 0.0
    regrets: dict | None = None  # matches whose regret was searched, at the cap by bound, or left at the cheap bound


@dataclass
class RestoreResult:
    """The pairing plus what it cost; printed as text or JSON by the CLI."""

    right_for_left: np.ndarray
    confidence: np.ndarray  # per left: chosen score minus the best alternative for its row or column
    backend: str
    precision: str
    assignment: AssignmentReport
    seconds: dict[str, float] = field(default_factory=dict)
    correct: np.ndarray | None = None  # per left, when a key was given
    features: tuple[np.ndarray, np.ndarray] | None = field(default=None, repr=False)  # (left, right), for the report

    @property
    def count(self) -> int:
        return len(self.right_for_left)

    @property
    def accuracy(self) -> float | None:
        return None if self.correct is None else float(self.correct.mean())

    def least_confident(self, count: int = 10) -> list[dict]:
        order = np.argsort(self.confidence, kind="stable")[:count]
        return [{"left": int(i), "right": int(self.right_for_left[i]), "confidence": round(float(self.confidence[i]), 4)} for i in order]

    def accuracy_by_coverage(self, coverages: tuple[float, ...] = (1.0, 0.99, 0.98, 0.95, 0.9, 0.8)) -> list[dict]:
        """Accuracy of the most confident fraction of matches: which matches are worth checking by hand."""
        if self.correct is None:
            return []
        order = np.argsort(-self.confidence, kind="stable")
        rows = []
        for coverage in coverages:
            kept = order[: max(1, round(coverage * self.count))]
            rows.append({"coverage": coverage, "accuracy": float(self.correct[kept].mean()), "min_confidence": float(self.confidence[kept[-1]])})
        return rows

    def text(self, fallbacks: list[str]) -> list[str]:
        """What the CLI prints: the backend in one line, how the pairing was found, the time, the accuracy.
        FALLBACKS: why faster backends were skipped (shown in full by --json)."""
        report = self.assignment
        lines = [backend_line(f"restored {self.count} pairs", self.backend, self.precision, fallbacks)]
        if report.method == "sparse":
            lines.append(f"assignment: sparse on {report.candidate_edges} candidate pairs (k={report.k}), proven optimal for all {self.count}^2 pairs")
            if report.scored_pairs is not None:
                lines.append(f"scored {report.scored_pairs / self.count**2:.1%} of all pairs; the geometry bound rules out the rest")
        else:
            lines.append("assignment: dense" + (f" ({report.fallback_reason})" if report.fallback_reason else ""))
        lines.append(seconds_line(self.seconds))
        if self.accuracy is not None:
            lines.append(f"accuracy: {self.accuracy:.4f} ({int(self.correct.sum())}/{self.count})")
            lines.append("accuracy of the most confident: " + ", ".join(f"{row['coverage']:.0%} {row['accuracy']:.4f}" for row in self.accuracy_by_coverage()))
        return lines

    def summary(self) -> dict:
        summary = {
            "count": self.count,
            "backend": self.backend,
            "precision": self.precision,
            "assignment": {key: value for key, value in asdict(self.assignment).items() if value not in (None, "")},
            "seconds": {stage: round(value, 4) for stage, value in self.seconds.items()},
        }
        summary["least_confident"] = self.least_confident()
        if self.correct is not None:
            summary["accuracy"] = self.accuracy
            summary["accuracy_by_coverage"] = self.accuracy_by_coverage()
        return summary


class Stopwatch:
    """Accumulates wall time per named stage."""

    def __init__(self) -> None:
        self.seconds: dict[str, float] = {}
        self._last = time.perf_counter()

    def lap(self, stage: str) -> None:
        now = time.perf_counter()
        self.seconds[stage] = self.seconds.get(stage, 0.0) + now - self._last
        self._last = now
