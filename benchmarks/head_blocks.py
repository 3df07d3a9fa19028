"""The head stage's blocks: how the head is best run beside the host, what a call costs by shape, and how
many pairs the geometry bound keeps by group size.

    python benchmarks/head_blocks.py [--size 10000] [--runs 5]

With the shipped MNIST model, on SIZE halves (the test set up to 10,000, else the training set), in one
process with the features computed once:

* head only: every pruned block (each group of lefts against the rights its bound keeps) run through the
  head and thrown away, three ways: one call at a time with all of onnxruntime's threads, and in workers
  (`overlap.one_ahead`) with the session that leaves the host a core (`beside_host`), one or two calls at
  once. Medians of RUNS, interleaved.
* one call's cost by tile shape (lefts x rights): milliseconds and pairs per second, all threads, medians.
* pairs kept by the geometry bound (`pruning`) for groups of 256 (the runtime's), 64, 16, 4 and 1 lefts.

Writes benchmarks/results/head-blocks-SIZE.json.
"""

from __future__ import annotations

import argparse
import json
import statistics
import time
from functools import partial
from pathlib import Path

import numpy as np

from amphisbaena.datasets import load_split
from amphisbaena.engines.select import BackendChoice
from amphisbaena.halves import make_halves
from amphisbaena.model_files import load_model_files, shipped_model_dir
from amphisbaena.runtime.features import both_arms
from amphisbaena.runtime.overlap import one_ahead
from amphisbaena.runtime.pruning import PRUNE_FLOOR, GeometryPruner
from amphisbaena.runtime.scorer import PairScorer

HERE = Path(__file__).resolve().parent
SHAPES = [(256, 2600), (156, 2600), (64, 1500), (32, 1000), (16, 1000), (16, 300), (8, 300)]


def seconds(run) -> float:
    start = time.perf_counter()
    run()
    return time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--size", type=int, default=10_000)
    parser.add_argument("--runs", type=int, default=5)
    args = parser.parse_args()
    digits = load_split("test")[0] if args.size <= 10_000 else load_split("train")[0]
    left, right, _ = make_halves(digits[: args.size], seed=0)
    backend, _ = BackendChoice().create(load_model_files(shipped_model_dir("mnist"), verify=False))
    left_features, right_features = both_arms(backend, left, right)
    scorer = PairScorer.pruned(backend, left_features, right_features)
    pruner = scorer.pruner
    blocks = [(members, np.flatnonzero(upper >= PRUNE_FLOOR)) for members, upper in zip(pruner.groups, pruner.bounds(pruner.groups))]

    ways = {
        "all threads, one call at a time": lambda: [scorer.columns(members, cols) for members, cols in blocks],
        "one thread fewer, one call beside the host": lambda: list(one_ahead((partial(scorer.block, m, c) for m, c in blocks), True, 1)),
        "one thread fewer, two calls beside the host": lambda: list(one_ahead((partial(scorer.block, m, c) for m, c in blocks), True, 2)),
    }
    timings: dict[str, list[float]] = {name: [] for name in ways}
    for _ in range(args.runs):
        for name, run in ways.items():
            timings[name].append(seconds(run))

    shapes = {}
    for rows, cols in SHAPES:
        tile_left, tile_right = left_features[:rows], right_features[:cols]
        calls = max(5, int(2e7 // (rows * cols)))
        backend.head(tile_left, tile_right)
        per_call = statistics.median(seconds(partial(backend.head, tile_left, tile_right)) for _ in range(calls))
        shapes[f"{rows}x{cols}"] = {"ms_per_call": round(1e3 * per_call, 3), "million_pairs_per_s": round(rows * cols / per_call / 1e6, 1)}

    kept = {}
    for group_size in (256, 64, 16, 4, 1):
        grouped = GeometryPruner(backend, left_features, right_features, group_size)
        kept[str(group_size)] = sum(int((upper >= PRUNE_FLOOR).sum()) * len(m) for m, upper in zip(grouped.groups, grouped.bounds(grouped.groups)))

    result = {
        "halves": args.size,
        "runs": args.runs,
        "pairs_in_blocks": int(sum(len(m) * len(c) for m, c in blocks)),
        "head_only_seconds_median": {name: round(statistics.median(values), 3) for name, values in timings.items()},
        "one_call_by_shape_all_threads": shapes,
        "pairs_kept_by_group_size": kept,
        "all_pairs": args.size * args.size,
    }
    out = HERE / "results" / f"head-blocks-{args.size}.json"
    out.write_text(json.dumps(result, indent=2) + "\n")
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
