"""Which confidence ranks matches better: the regret (shipped) or the earlier margin, on the same model
and the same 10,000 test halves. Reporting only.

    python benchmarks/confidence.py [--model-dir DIR] [--name NAME]

The margin of match (i, j) is s_ij minus the best other score in row i or column j, from the full score
matrix; the regret is what `restore` reports. Writes benchmarks/results/confidence-NAME.json.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np

from amphisbaena.datasets import load_split
from amphisbaena.engines.select import BackendChoice
from amphisbaena.halves import make_halves
from amphisbaena.model_files import load_model_files, shipped_model_dir
from amphisbaena.runtime.restore import restore
from amphisbaena.runtime.scorer import PairScorer

HERE = Path(__file__).resolve().parent
COVERAGES = (1.0, 0.99, 0.98, 0.95, 0.9, 0.8)


def coverage_table(confidence: np.ndarray, correct: np.ndarray) -> dict[str, float]:
    order = np.argsort(-confidence, kind="stable")
    return {f"{c:.0%}": float(correct[order[: max(1, round(c * len(order)))]].mean()) for c in COVERAGES}


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--model-dir", type=Path, default=shipped_model_dir("mnist"))
    parser.add_argument("--name", default="mnist")
    args = parser.parse_args()
    left, right, key = make_halves(load_split("test")[0], seed=0)
    backend, _ = BackendChoice().create(load_model_files(args.model_dir, verify=False))
    result = restore(backend, left, right, key)
    full = PairScorer(backend, *result.features).all()
    rows = np.arange(len(left))
    chosen = full[rows, result.right_for_left].copy()
    full[rows, result.right_for_left] = -np.inf
    margin = chosen - np.maximum(full.max(axis=1), full.max(axis=0)[result.right_for_left])
    report = {
        "model_dir": str(args.model_dir),
        "precision": backend.precision,
        "halves": "make-halves --split test --seed 0",
        "accuracy": result.accuracy,
        "accuracy_of_most_confident": {"regret": coverage_table(result.confidence, result.correct), "margin": coverage_table(margin, result.correct)},
        "negative_margins": int((margin < 0).sum()),
        "least_margin": float(margin.min()),
    }
    out = HERE / "results" / f"confidence-{args.name}.json"
    out.write_text(json.dumps(report, indent=2) + "\n")
    print(json.dumps(report["accuracy_of_most_confident"], indent=2))


if __name__ == "__main__":
    main()
