"""Accuracy of a model on a full test set (10,000 halves), with per-class figures and accuracy against
coverage under the confidence, written as a result file. Reporting only: nothing is chosen with it.

    python benchmarks/test_accuracy.py --dataset fashion-mnist --model-dir DIR --name fashion-mnist-teacher

Writes benchmarks/results/test-accuracy-NAME.json.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import numpy as np

from amphisbaena.datasets import load_split
from amphisbaena.engines.select import BackendChoice
from amphisbaena.halves import make_halves
from amphisbaena.model_files import load_model_files, shipped_model_dir
from amphisbaena.runtime.restore import restore

HERE = Path(__file__).resolve().parent


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--dataset", default="mnist")
    parser.add_argument("--model-dir", type=Path, default=None, help="default: the shipped model for --dataset")
    parser.add_argument("--precision", default="auto")
    parser.add_argument("--name", required=True)
    args = parser.parse_args()
    model_dir = args.model_dir or shipped_model_dir(args.dataset)
    images, labels = load_split("test", dataset=args.dataset)
    left, right, key = make_halves(images, seed=0)
    # Each left's class: the same shuffle applied to digits painted with their label.
    painted = np.broadcast_to(labels[:, None, None], images.shape).astype(np.uint8)
    classes = make_halves(painted, seed=0)[0][:, 0, 0]
    backend, _ = BackendChoice(precision=args.precision).create(load_model_files(model_dir, verify=False))
    started = time.perf_counter()
    result = restore(backend, left, right, key)
    seconds = time.perf_counter() - started
    first = make_halves(images[:2000], seed=0)
    first_2000 = restore(backend, first[0], first[1], first[2]).accuracy  # the pool tests/test_user_tools.py restores
    report = {
        "dataset": args.dataset,
        "model_dir": str(model_dir),
        "model_sha256": backend.model.manifest["sha256"],
        "precision": backend.precision,
        "halves": "make-halves --split test --seed 0 (all 10,000)",
        "accuracy": result.accuracy,
        "accuracy_first_2000": first_2000,
        "per_class": {int(c): float(result.correct[classes == c].mean()) for c in np.unique(classes)},
        "accuracy_by_coverage": result.accuracy_by_coverage(),
        "in_process_seconds": seconds,
        "assignment": result.summary()["assignment"],
    }
    out = HERE / "results" / f"test-accuracy-{args.name}.json"
    out.parent.mkdir(exist_ok=True)
    out.write_text(json.dumps(report, indent=2) + "\n")
    print(f"{args.name}: accuracy {result.accuracy:.4f}; wrote {out}")


if __name__ == "__main__":
    main()
