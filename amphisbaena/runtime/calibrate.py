"""The no-partner threshold, chosen from the score distribution on held-out training digits.

Below the threshold a (left, right) pair is not worth making: leaving both
halves alone scores more. It is chosen where the F1 of the pairs made is best
on a validation pool with a fraction of the partners removed on each side, and
recorded in the model's manifest; never on the test set.
"""

from __future__ import annotations

import numpy as np

from amphisbaena.engines.base import Backend
from amphisbaena.halves import drop_partners, make_halves
from amphisbaena.progress import Progress
from amphisbaena.runtime.features import both_arms
from amphisbaena.runtime.partial import precision_recall, solve_with_no_partner
from amphisbaena.runtime.scorer import PairScorer
from amphisbaena.shapes import DEFAULT_K

QUANTILES = np.linspace(0.0, 0.3, 31)  # of each left's best candidate score


def calibrate_no_partner(backend: Backend, images: np.ndarray, drop: float = 0.05, seed: int = 0, progress: Progress | None = None) -> dict:
    """Sweep thresholds over the low tail of the best-candidate scores; keep the best F1."""
    left, right, key = make_halves(images, seed)
    left, right, key = drop_partners(left, right, key, drop, drop, seed)
    left_features, right_features = both_arms(backend, left, right, progress)
    graph = PairScorer.pruned(backend, left_features, right_features, progress=progress).candidates(DEFAULT_K)
    best_per_left = np.full(len(left), -np.inf)
    np.maximum.at(best_per_left, graph.rows, graph.scores)
    best = {"f1": -1.0}
    for threshold in np.unique(np.quantile(best_per_left, QUANTILES)):
        right_for_left = solve_with_no_partner(graph.rows, graph.cols, graph.scores, len(left), len(right), float(threshold))
        correct, made, present = precision_recall(right_for_left, key)
        precision = correct / max(made, 1)
        recall = correct / max(present, 1)
        f1 = 2 * precision * recall / max(precision + recall, 1e-12)
        if f1 > best["f1"]:
            best = {"score": float(threshold), "precision": precision, "recall": recall, "f1": f1}
    return {**best, "drop": drop, "pool_size": len(images), "split": "train (held out)"}
