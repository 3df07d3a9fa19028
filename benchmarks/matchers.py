"""Compiled assignment solvers against scipy's on the restore's own first candidate graph (issue 23's rule).

    pip install lap ortools          # benchmark only: neither is a dependency
    python benchmarks/matchers.py [--pairs 60000] [--runs 3]

Builds the candidate graph a restore of PAIRS training pairs (seed 0) solves first, then times, interleaved,
RUNS solves each of the same minimum-cost perfect matching:
* scipy.sparse.csgraph.min_weight_full_bipartite_matching (LAPJVsp), what the runtime uses;
* lap.lapmod (sparse Jonker-Volgenant, float64 costs);
* OR-Tools' SimpleLinearSumAssignment (cost scaling on int64 costs: the scores times 1e6, rounded; a scale of
  1e9 overflows its price bound at 60,000 pairs).
Each solution is compared with scipy's. Also each solver's import as a fresh process beside `import numpy`
(medians of RUNS_IMPORT). Writes benchmarks/results/matchers-PAIRS.json.
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
from scipy.sparse import csr_matrix
from scipy.sparse.csgraph import min_weight_full_bipartite_matching

import amphisbaena as amph
from amphisbaena.datasets import load_split
from amphisbaena.halves import as_images
from amphisbaena.runtime.candidates import stream
from amphisbaena.runtime.features import both_arms
from amphisbaena.runtime.scorer import PairScorer
from amphisbaena.shapes import DEFAULT_K, LARGE_K, LARGE_N

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
from bench_api import commit
from bench_models import write_report

ORTOOLS_SCALE = 1e6


def real_halves(pairs: int) -> tuple[np.ndarray, np.ndarray]:
    """PAIRS digits cut and shuffled with seed 0: the test split up to 10,000, the training split above."""
    halves = amph.cut(load_split("train" if pairs > 10_000 else "test")[0][:pairs], seed=0)
    return halves.left, halves.right


def candidate_graph(left: np.ndarray, right: np.ndarray):
    """(rows, cols, scores) of the candidate graph a restore of these halves solves first."""
    backend = amph.load().backend
    left_features, right_features = both_arms(backend, as_images(left, "left"), as_images(right, "right"))
    graph = stream(PairScorer.pruned(backend, left_features, right_features), LARGE_K if len(left) > LARGE_N else DEFAULT_K)
    return graph.rows, graph.cols, graph.scores


def first_graph(pairs: int):
    """(rows, cols, scores) of the candidate graph the restore of PAIRS pairs (`real_halves`) solves first."""
    return candidate_graph(*real_halves(pairs))


def scipy_solve(rows, cols, scores, n):
    cost = scores.max() - scores + 1.0  # strictly positive: csgraph drops stored zeros
    return min_weight_full_bipartite_matching(csr_matrix((cost, (rows, cols)), shape=(n, n)))[1].astype(np.int64)


def lapmod_solve(rows, cols, scores, n):
    import lap

    order = np.lexsort((cols, rows))
    starts = np.searchsorted(rows[order], np.arange(n + 1)).astype(np.int32)
    return np.asarray(lap.lapmod(n, (scores.max() - scores)[order] + 1.0, starts, cols[order].astype(np.int32), return_cost=False)[0], np.int64)


def ortools_solve(rows, cols, scores, n):
    from ortools.graph.python import linear_sum_assignment

    solver = linear_sum_assignment.SimpleLinearSumAssignment()
    solver.add_arcs_with_cost(rows, cols, np.rint((scores.max() - scores) * ORTOOLS_SCALE).astype(np.int64))
    if solver.solve() != solver.OPTIMAL:
        raise RuntimeError("OR-Tools found no optimal assignment")
    return np.fromiter((solver.right_mate(i) for i in range(n)), np.int64, n)


IMPORTS = {
    "numpy": "import numpy",
    "scipy": "import numpy, scipy.sparse.csgraph",
    "lap": "import lap",
    "ortools": "from ortools.graph.python import linear_sum_assignment",
}


def import_seconds(runs: int) -> dict:
    seconds: dict[str, list[float]] = {name: [] for name in IMPORTS}
    for _ in range(runs):
        for name, statement in IMPORTS.items():
            started = time.perf_counter()
            subprocess.run([sys.executable, "-c", statement], check=True, capture_output=True)
            seconds[name].append(time.perf_counter() - started)
    return {name: {"median": statistics.median(values), "raw": values} for name, values in seconds.items()}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--pairs", type=int, default=60_000)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--runs-import", type=int, default=9)
    parser.add_argument("--out-dir", type=Path, default=HERE / "results")
    args = parser.parse_args()
    rows, cols, scores = first_graph(args.pairs)
    solvers = {"scipy": scipy_solve, "lap.lapmod": lapmod_solve, "ortools": ortools_solve}
    seconds: dict[str, list[float]] = {name: [] for name in solvers}
    same: dict[str, bool] = {}
    reference = None
    for _ in range(args.runs):
        for name, solve in solvers.items():
            started = time.perf_counter()
            matching = solve(rows, cols, scores, args.pairs)
            seconds[name].append(time.perf_counter() - started)
            reference = matching if name == "scipy" else reference
            same[name] = bool(np.array_equal(matching, reference))
    medians = {name: statistics.median(values) for name, values in seconds.items()}
    report = {
        "commit": commit(),
        "date": time.strftime("%Y-%m-%d %H:%M"),
        "pairs": args.pairs,
        "candidate_edges": len(rows),
        "solve_seconds": {name: {"median": medians[name], "raw": values, "same_matching_as_scipy": same[name]} for name, values in seconds.items()},
        "speedup_over_scipy": {name: medians["scipy"] / median for name, median in medians.items()},
        "import_seconds_fresh_process": import_seconds(args.runs_import),
    }
    lines = [f"{args.pairs:,} pairs, {len(rows):,} candidate edges, commit {report['commit'][:12]}", "", "| solver | median s | speed-up | same matching | import s (fresh process) |", "| --- | --- | --- | --- | --- |"]
    imports = report["import_seconds_fresh_process"]
    for name, key in (("scipy", "scipy"), ("lap.lapmod", "lap"), ("ortools", "ortools")):
        lines.append(f"| {name} | {medians[name]:.2f} | {report['speedup_over_scipy'][name]:.2f}x | {same[name]} | {imports[key]['median']:.3f} |")
    lines.append(f"| (`import numpy`) | | | | {imports['numpy']['median']:.3f} |")
    write_report(args.out_dir, f"matchers-{args.pairs}", report, "\n".join(lines) + "\n")


if __name__ == "__main__":
    main()
