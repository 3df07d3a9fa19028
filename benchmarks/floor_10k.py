"""What a 10,000-halves restore costs before and after its candidate stream, against the 3x budget.

    python benchmarks/floor_10k.py --old-checkout ../amphisbaena-dd923fb --old-python ../venv-dd923fb/bin/python

Issue 14 asks a whole-process 10k restore to run 3x faster than dd923fb's. This measures, in one sitting,
which parts of today's restore any faster candidate stream would still pay:

* fresh processes, interleaved round by round (RUNS each): the bare interpreter; importing the runtime's
  dependencies (numpy, onnxruntime, scipy.sparse.csgraph, typer); a whole `restore` of 20 pairs (startup:
  the dependencies, this package, reading the model and its onnxruntime sessions, writing the summary);
  a whole 10k `restore` of this code, and of the old checkout;
* in one process, warm, medians of RUNS on the same 10k halves: the arms, the candidate stream, and the
  pieces of the assignment stage (scipy's sparse matching, the dual potentials, the regrets).

The floor without the stream is the 20-pair restore plus the warm arms, matching, potentials and regrets.
Warm in-process figures are lower than a fresh process pays, so the floor is an underestimate. Writes
benchmarks/results/floor-10k.json and floor-10k.md.
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
from bench_models import dependency_versions, restore_process, spread, write_report
from stream_split import median_seconds

from amphisbaena.datasets import load_split
from amphisbaena.engines.select import BackendChoice
from amphisbaena.files import save_npz
from amphisbaena.halves import make_halves
from amphisbaena.model_files import load_model_files, shipped_model_dir
from amphisbaena.runtime import duals
from amphisbaena.runtime.confidence import regrets
from amphisbaena.runtime.features import both_arms
from amphisbaena.runtime.results import Stopwatch
from amphisbaena.runtime.scorer import PairScorer
from amphisbaena.shapes import DEFAULT_K

HERE = Path(__file__).resolve().parent
DEPENDENCIES = "import numpy, onnxruntime, scipy.sparse.csgraph, typer"


def process_seconds(command: list[str]) -> float:
    """Wall seconds of one fresh process, start to exit."""
    started = time.perf_counter()
    subprocess.run(command, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    return time.perf_counter() - started


def warm_median(run: Callable[[], object], runs: int) -> float:
    """Median seconds of RUNS calls, after one call to warm up."""
    run()
    return median_seconds(run, runs)


def final_graph_and_solution(scorer: PairScorer) -> tuple:
    """The candidate graph and solution the sparse path proves optimal, captured from `assign_sparse`."""
    from amphisbaena.runtime import assignment

    captured = {}
    original = assignment.regrets

    def capture(graph, solution, *rest):
        captured["graph"], captured["solution"] = graph, solution
        return original(graph, solution, *rest)

    assignment.regrets = capture
    try:
        assignment.assign_sparse(scorer, DEFAULT_K, Stopwatch())
    finally:
        assignment.regrets = original
    return captured["graph"], captured["solution"]


def in_process(left: np.ndarray, right: np.ndarray, runs: int) -> dict:
    """Warm medians (seconds) of the stages of a 10k restore, this code and the shipped model. The matching,
    the potentials and the regrets run on the final graph of the proof, as `assign_sparse` leaves it."""
    backend, _ = BackendChoice().create(load_model_files(shipped_model_dir("mnist"), verify=False))
    arms = warm_median(lambda: both_arms(backend, left, right), runs)
    scorer = PairScorer.pruned(backend, *both_arms(backend, left, right))
    stream = warm_median(lambda: scorer.candidates(DEFAULT_K), runs)
    graph, solution = final_graph_and_solution(scorer)
    matching = warm_median(lambda: duals._matching(graph.rows, graph.cols, -graph.scores, graph.size), runs)
    potentials = warm_median(lambda: duals.potentials(graph, solution.right_for_left), runs)
    regret = warm_median(lambda: regrets(graph, solution), runs)
    return {"arms": arms, "stream": stream, "matching": matching, "potentials": potentials, "regrets": regret, "candidate_edges": len(graph.rows)}


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--old-checkout", type=Path, required=True, help="a checkout of the earlier code with its shipped model")
    parser.add_argument("--old-python", default=sys.executable, help="the interpreter the old checkout runs with")
    parser.add_argument("--runs", type=int, default=7)
    parser.add_argument("--out-dir", type=Path, default=HERE / "results")
    parser.add_argument("--name", default="floor-10k")
    args = parser.parse_args()
    old, new, python = args.old_checkout.resolve(), HERE.parent, sys.executable
    digits = load_split("test")[0]
    left, right, key = make_halves(digits, seed=0)
    small_left, small_right, small_key = make_halves(digits[:20], seed=0)
    fresh: dict[str, list[float]] = {name: [] for name in ("interpreter", "dependencies", "restore 20 new", "restore 10k new", "restore 10k old")}
    with tempfile.TemporaryDirectory() as tmp:
        paths = {name: Path(tmp) / f"{name}.npz" for name in ("h", "k", "h20", "k20")}
        save_npz(paths["h"], left=left, right=right)
        save_npz(paths["k"], right_for_left=key)
        save_npz(paths["h20"], left=small_left, right=small_right)
        save_npz(paths["k20"], right_for_left=small_key)
        for run in range(args.runs):
            fresh["interpreter"].append(process_seconds([python, "-c", "pass"]))
            fresh["dependencies"].append(process_seconds([python, "-c", DEPENDENCIES]))
            fresh["restore 20 new"].append(restore_process(paths["h20"], paths["k20"], new, python)["seconds"])
            order = (("new", new, python), ("old", old, args.old_python))
            for side, checkout, interpreter in order if run % 2 == 0 else order[::-1]:
                fresh[f"restore 10k {side}"].append(restore_process(paths["h"], paths["k"], checkout, interpreter)["seconds"])
            print(f"round {run + 1}: " + ", ".join(f"{name} {times[-1]:.2f} s" for name, times in fresh.items()), flush=True)
    warm = in_process(left, right, args.runs)
    medians = {name: statistics.median(times) for name, times in fresh.items()}
    budget = medians["restore 10k old"] / 3
    floor = medians["restore 20 new"] + warm["arms"] + warm["matching"] + warm["potentials"] + warm["regrets"]
    report = {
        "interpreters": {"old": dependency_versions(args.old_python), "new": dependency_versions(python)},
        "fresh_processes": {name: spread(times) for name, times in fresh.items()},
        "warm_in_process_median": warm,
        "speedup_10k": medians["restore 10k old"] / medians["restore 10k new"],
        "budget_for_3x": budget,
        "floor_without_stream": floor,
        "floor_over_budget": floor - budget,
        "note": "floor_without_stream = the 20-pair restore + warm arms + matching + potentials + regrets; warm figures understate a fresh process's",
    }
    write_report(args.out_dir, args.name, report, markdown(report))


def markdown(report: dict) -> str:
    fresh, warm = report["fresh_processes"], report["warm_in_process_median"]
    lines = [
        "| fresh process | median s (min-max) |",
        "| --- | --- |",
        *(f"| {name} | {entry['median']:.3f} ({entry['min']:.3f}-{entry['max']:.3f}) |" for name, entry in fresh.items()),
        "",
        "| 10k stage, warm in one process | median s |",
        "| --- | --- |",
        *(f"| {name} | {warm[name]:.3f} |" for name in ("arms", "stream", "matching", "potentials", "regrets")),
        "",
        (
            f"10k speed-up: {report['speedup_10k']:.2f}x. Budget for 3x: {report['budget_for_3x']:.3f} s. "
            "Floor without the stream (20-pair restore + arms + matching + potentials + regrets): "
            f"{report['floor_without_stream']:.3f} s, {report['floor_over_budget']:+.3f} s against the budget."
        ),
    ]
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    main()
