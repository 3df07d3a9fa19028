"""The repair's scoring of S x R (`repair._best_across`), the code at an older commit against this checkout's.

    python benchmarks/best_across.py --halves runs/million/halves.npz --rows 512 --against a3c0a62 --runs 5 --name NAME

With the shipped MNIST model, the arms run once on HALVES (a set from `million.py make`: at a million pairs the
repair's R is nearly every right). ROWS lefts drawn at random stand for the Hall set S, and every right for R, as
at a million pairs where |S| is a few thousand and |R| about 990,000. Both versions of `_best_across` take turns
RUNS times each in this one process: the one at AGAINST (read with `git show`) and this checkout's. Each run's
seconds, the medians, their ratio, and whether both chose the same scores for every row go to
benchmarks/results/NAME.json with both commits.
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
from bench_models import commit_of

from amphisbaena.engines.select import BackendChoice
from amphisbaena.model_files import load_model_files, shipped_model_dir
from amphisbaena.runtime import repair
from amphisbaena.runtime.features import both_arms
from amphisbaena.runtime.scorer import PairScorer

HERE = Path(__file__).resolve().parent


def repair_at(commit: str):
    """`runtime/repair.py` as it was at COMMIT, imported beside today's package (its imports are today's)."""
    source = subprocess.run(["git", "show", f"{commit}:amphisbaena/runtime/repair.py"], cwd=HERE.parent, check=True, capture_output=True, text=True).stdout
    path = Path(tempfile.mkdtemp()) / "repair_then.py"
    path.write_text(source)
    spec = importlib.util.spec_from_file_location("repair_then", path)
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # its dataclasses look their module up
    spec.loader.exec_module(module)
    return module


def chosen_scores(found: tuple[np.ndarray, np.ndarray, np.ndarray, int]) -> np.ndarray:
    """Each row's chosen scores, sorted: (rows, partners)."""
    rows, _, scores, _ = found
    order = np.lexsort((scores, rows))
    return scores[order].reshape(len(np.unique(rows)), -1)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--halves", type=Path, required=True)
    parser.add_argument("--rows", type=int, default=512)
    parser.add_argument("--against", required=True, help="the older commit")
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--name", required=True)
    args = parser.parse_args()
    ways = {"then": repair_at(args.against)._best_across, "now": repair._best_across}
    with np.load(args.halves, allow_pickle=False) as halves:
        left, right = halves["left"], halves["right"]
    backend, _ = BackendChoice().create(load_model_files(shipped_model_dir("mnist"), verify=False))
    left_features, right_features = both_arms(backend, left, right)
    scorer = PairScorer(backend, left_features, right_features)
    rows = np.sort(np.random.default_rng(0).choice(len(left), args.rows, replace=False))
    cols = np.arange(len(right))
    seconds: dict[str, list[float]] = {way: [] for way in ways}
    chosen: dict[str, np.ndarray] = {}
    for run in range(args.runs):
        for way, best_across in ways.items():
            started = time.perf_counter()
            found = best_across(scorer, rows, cols)
            seconds[way].append(round(time.perf_counter() - started, 2))
            chosen.setdefault(way, chosen_scores(found))
            print(json.dumps({"run": run, "way": way, "seconds": seconds[way][-1]}), flush=True)
    medians = {way: statistics.median(values) for way, values in seconds.items()}
    report = {
        "commit": commit_of(HERE.parent),
        "against": args.against,
        "date": time.strftime("%Y-%m-%d %H:%M"),
        "halves": str(args.halves),
        "rows": args.rows,
        "cols": len(cols),
        "runs": args.runs,
        "seconds": seconds,
        "medians": medians,
        "ratio": round(medians["then"] / medians["now"], 2),
        "same_scores_chosen": bool(np.array_equal(chosen["then"], chosen["now"])),
    }
    (HERE / "results" / f"{args.name}.json").write_text(json.dumps(report, indent=2) + "\n")
    print(json.dumps({key: report[key] for key in ("medians", "ratio", "same_scores_chosen")}))
    sys.exit(0 if report["same_scores_chosen"] else 1)


if __name__ == "__main__":
    main()
