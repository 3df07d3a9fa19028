"""How the head stage's time splits between the head graphs and the host's bookkeeping (10,000 test halves).

    python benchmarks/stream_split.py [--model-dir DIR] [--runs 5]

In one process, with the features computed once: the pruned candidate stream as `restore` runs it
(`PairScorer.candidates`), and the same blocks (each group of lefts against the rights its bound keeps)
run through the head and thrown away, with no top-k bookkeeping. Medians of RUNS. Writes
benchmarks/results/stream-split.json.
"""

from __future__ import annotations

import argparse
import json
import statistics
import time
from pathlib import Path

import numpy as np

from amphisbaena.datasets import load_split
from amphisbaena.engines.select import BackendChoice
from amphisbaena.halves import make_halves
from amphisbaena.model_files import load_model_files, shipped_model_dir
from amphisbaena.runtime.features import both_arms
from amphisbaena.runtime.pruning import PRUNE_FLOOR
from amphisbaena.runtime.scorer import PairScorer
from amphisbaena.shapes import DEFAULT_K

HERE = Path(__file__).resolve().parent


def median_seconds(run, runs: int) -> float:
    times = []
    for _ in range(runs):
        start = time.perf_counter()
        run()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--model-dir", type=Path, default=None, help="default: the shipped MNIST model")
    parser.add_argument("--runs", type=int, default=5)
    args = parser.parse_args()
    model_dir = args.model_dir or shipped_model_dir("mnist")
    images, _ = load_split("test")
    left, right, _ = make_halves(images, seed=0)
    backend, _ = BackendChoice().create(load_model_files(model_dir, verify=False))
    scorer = PairScorer.pruned(backend, *both_arms(backend, left, right))
    pruner = scorer.pruner

    def head_only() -> None:
        for members, upper in zip(pruner.groups, pruner.bounds(pruner.groups)):
            scorer.columns(members, np.flatnonzero(upper >= PRUNE_FLOOR))

    stream = median_seconds(lambda: scorer.candidates(DEFAULT_K), args.runs)
    head = median_seconds(head_only, args.runs)
    result = {
        "model_dir": str(model_dir),
        "halves": "make-halves --split test --seed 0 (all 10,000)",
        "runs": args.runs,
        "stream_seconds_median": round(stream, 4),
        "head_graphs_only_seconds_median": round(head, 4),
        "head_share_of_stream": round(head / stream, 3),
    }
    out = HERE / "results" / "stream-split.json"
    out.write_text(json.dumps(result, indent=2) + "\n")
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
