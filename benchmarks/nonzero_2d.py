"""np.nonzero against `arrays.nonzero_2d` on the masks the candidate stream makes (10,000 test halves).

    python benchmarks/nonzero_2d.py [--runs 7]

The masks: every pruned block of the shipped MNIST model (each group of lefts against the rights its
bound keeps), each entry kept if it reaches its row's or its column's 33rd best within the block, as a
block seen first does in `candidates`. Both calls run on all of them in turn, alternating, RUNS times;
the medians of the per-run totals and their ratio go to benchmarks/results/nonzero-2d.json, after a
check that both give the same indices.
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
from amphisbaena.runtime.arrays import nonzero_2d
from amphisbaena.runtime.features import both_arms
from amphisbaena.runtime.pruning import PRUNE_FLOOR
from amphisbaena.runtime.scorer import PairScorer
from amphisbaena.shapes import DEFAULT_K

HERE = Path(__file__).resolve().parent


def stream_masks() -> list[np.ndarray]:
    images, _ = load_split("test")
    left, right, _ = make_halves(images, seed=0)
    backend, _ = BackendChoice().create(load_model_files(shipped_model_dir("mnist"), verify=False))
    scorer = PairScorer.pruned(backend, *both_arms(backend, left, right))
    pruner, count = scorer.pruner, DEFAULT_K + 1
    masks = []
    for members, upper in zip(pruner.groups, pruner.bounds(pruner.groups)):
        scores = scorer.columns(members, np.flatnonzero(upper >= PRUNE_FLOOR))
        row_floor = -np.partition(-scores, count - 1, axis=1)[:, count - 1]
        col_floor = -np.partition(-scores, count - 1, axis=0)[count - 1]
        masks.append((scores >= row_floor[:, None]) | (scores >= col_floor[None, :]))
    return masks


def total_seconds(find, masks: list[np.ndarray]) -> float:
    start = time.perf_counter()
    for mask in masks:
        find(mask)
    return time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--runs", type=int, default=7)
    args = parser.parse_args()
    masks = stream_masks()
    for mask in masks:
        for got, want in zip(nonzero_2d(mask), np.nonzero(mask)):
            if not np.array_equal(got, want):
                raise SystemExit("nonzero_2d differs from np.nonzero")
    numpy_seconds, ours_seconds = [], []
    for _ in range(args.runs):
        numpy_seconds.append(total_seconds(np.nonzero, masks))
        ours_seconds.append(total_seconds(nonzero_2d, masks))
    result = {
        "masks": len(masks),
        "cells": int(sum(mask.size for mask in masks)),
        "entries": int(sum(int(mask.sum()) for mask in masks)),
        "runs": args.runs,
        "np_nonzero_s_median": statistics.median(numpy_seconds),
        "nonzero_2d_s_median": statistics.median(ours_seconds),
        "speedup": statistics.median(numpy_seconds) / statistics.median(ours_seconds),
    }
    (HERE / "results" / "nonzero-2d.json").write_text(json.dumps(result, indent=2) + "\n")
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
