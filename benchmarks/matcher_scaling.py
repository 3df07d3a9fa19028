"""The runtime's matcher against scipy's LAPJVsp (what it replaced, at 7b16d13) on a restore's first candidate graph.

    python benchmarks/matcher_scaling.py [--sizes 10000 20000 40000 60000] [--synthetic-dir runs/million
        --synthetic-sizes 100000 150000] [--runs 3] [--runs-large 1]

For each size, builds the candidate graph a restore solves first (real digits: the test split up to 10,000
pairs, the training split above, seed 0; synthetic: the first pairs of `million.py make`'s set, shuffled with
seed 1), then times, interleaved, solves of its maximum-score perfect matching by
* scipy.sparse.csgraph.min_weight_full_bipartite_matching (`duals._matching`), as the runtime calls it below 30,000 pairs;
* amphisbaena.runtime.matcher.optimal_matching, as it does from there up.
Sizes above 60,000 get RUNS_LARGE solves each (scipy takes minutes there). Every solution is compared with
scipy's. Writes benchmarks/results/matcher-scaling.json and .md.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

import numpy as np

from amphisbaena.runtime import duals
from amphisbaena.runtime.matcher import optimal_matching

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
from bench_api import commit
from bench_models import machine_facts, write_report
from matchers import candidate_graph, real_halves


def synthetic_halves(directory: Path, pairs: int) -> tuple[np.ndarray, np.ndarray]:
    """The first PAIRS lefts of `million.py make`'s set with their own rights, the rights shuffled."""
    halves = np.load(directory / "halves.npz", allow_pickle=False)
    key = np.load(directory / "key.npz", allow_pickle=False)["right_for_left"]
    right = halves["right"][key[:pairs]]
    return halves["left"][:pairs], right[np.random.default_rng(1).permutation(pairs)]


def scipy_solve(rows: np.ndarray, cols: np.ndarray, scores: np.ndarray, n: int) -> np.ndarray:
    """scipy's LAPJVsp as the runtime calls it (below `duals.PHASES_FROM` it still does)."""
    matching = duals._matching(rows, cols, -scores, n)
    if matching is None:
        raise RuntimeError("no perfect matching")
    return matching


def matcher_solve(rows: np.ndarray, cols: np.ndarray, scores: np.ndarray, n: int) -> np.ndarray:
    found = optimal_matching(rows, cols, scores, n)
    if found is None:
        raise RuntimeError("no perfect matching")
    return found[0]


def measure(label: str, rows: np.ndarray, cols: np.ndarray, scores: np.ndarray, n: int, runs: int) -> dict:
    seconds: dict[str, list[float]] = {"scipy": [], "matcher": []}
    same = True
    for _ in range(runs):
        matchings = {}
        for name, solve in (("scipy", scipy_solve), ("matcher", matcher_solve)):
            started = time.perf_counter()
            matchings[name] = solve(rows, cols, scores, n)
            seconds[name].append(time.perf_counter() - started)
        same = same and bool(np.array_equal(matchings["scipy"], matchings["matcher"]))
    medians = {name: statistics.median(values) for name, values in seconds.items()}
    print(f"{label}: scipy {medians['scipy']:.2f} s, matcher {medians['matcher']:.2f} s, same {same}", flush=True)
    return {
        "set": label,
        "pairs": n,
        "candidate_edges": len(rows),
        "runs": runs,
        "seconds": {name: {"median": medians[name], "raw": values} for name, values in seconds.items()},
        "speedup": medians["scipy"] / medians["matcher"],
        "same_matching": same,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", type=int, nargs="*", default=[10_000, 20_000, 40_000, 60_000])
    parser.add_argument("--synthetic-dir", type=Path, default=None, help="a set written by `million.py make`")
    parser.add_argument("--synthetic-sizes", type=int, nargs="*", default=[100_000, 150_000])
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--runs-large", type=int, default=1)
    parser.add_argument("--out-dir", type=Path, default=HERE / "results")
    args = parser.parse_args()
    results = []
    for pairs in args.sizes:
        results.append(
            measure("real", *candidate_graph(*real_halves(pairs)), pairs, args.runs if pairs <= 60_000 else args.runs_large)
        )
    if args.synthetic_dir is not None:
        for pairs in args.synthetic_sizes:
            results.append(
                measure("synthetic", *candidate_graph(*synthetic_halves(args.synthetic_dir, pairs)), pairs, args.runs_large)
            )
    report = {
        "commit": commit(),
        "date": time.strftime("%Y-%m-%d %H:%M"),
        "machine": machine_facts(),
        "results": results,
    }
    lines = [
        f"commit {report['commit'][:12]}; medians of the runs shown",
        "",
        "| set | pairs | candidate edges | runs | scipy s | matcher s | speed-up | same matching |",
        "| --- | --- | --- | --- | --- | --- | --- | --- |",
    ]
    for row in results:
        lines.append(
            f"| {row['set']} | {row['pairs']:,} | {row['candidate_edges']:,} | {row['runs']} | {row['seconds']['scipy']['median']:.2f} "
            f"| {row['seconds']['matcher']['median']:.2f} | {row['speedup']:.1f}x | {row['same_matching']} |"
        )
    write_report(args.out_dir, "matcher-scaling", report, "\n".join(lines) + "\n")


if __name__ == "__main__":
    main()
