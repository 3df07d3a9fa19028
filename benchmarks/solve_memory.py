"""One exact solve of a real candidate graph, old code against new: its time and the memory it takes.

    python benchmarks/solve_memory.py dump --out-dir runs/million --pairs 200000 --solve 2 --graph runs/solve-200k-2.pkl
    python benchmarks/solve_memory.py compare --graph runs/solve-200k-2.pkl --old-checkout <worktree> --runs 5 --name NAME
    python benchmarks/solve_memory.py once --graph runs/solve-1m-2.pkl --name NAME [--warm]
    python benchmarks/solve_memory.py inspect --graph runs/solve-1m-2.pkl --name NAME

`dump` restores the first PAIRS pairs of a set made by `million.py make` (its OUT_DIR/pairs-PAIRS/, which
`million.py restore --pairs` writes) and pickles the graph and the previous round's solution handed to the
SOLVE-th `solve_sparse` call (the second is the first re-solve after the proof added edges), then stops.

`once` runs `duals.solve_sparse` on that graph once, with this checkout only (for graphs whose old solve takes an
hour: a million pairs' second round), and records the seconds, the peak RSS, the total, and after each of the
matcher's phases the time and the rows still unmatched, in benchmarks/results/NAME.json. With --warm, the matcher
starts from the previous round's duals (freeing the rows the added edges break), not from scratch.

`inspect` counts the graph's edges and rows that the previous round's duals break (the rows a warm start frees),
and how far they break them.

`compare` runs `duals.solve_sparse` on that graph (from scratch, as a re-solve with many broken rows is) in fresh
processes, the old checkout and this one taking turns, and records in benchmarks/results/NAME.json each run's
seconds, its peak RSS above the loaded graph, and the matching's total (which must agree), with both commits.
"""

from __future__ import annotations

import argparse
import json
import pickle
import statistics
import subprocess
import sys
import time
from pathlib import Path

from bench_models import commit_of

HERE = Path(__file__).resolve().parent

# One solve in a fresh process, importing amphisbaena from the checkout given first; with "trace" after the graph, it
# also notes the time, the unmatched rows and the working set's edges at each phase's tight matching (stderr as it goes);
# with "warm", the matcher starts from the previous round's duals however many rows the added edges break
ONE_SOLVE = """
import json, pickle, resource, sys, time
sys.path.insert(0, sys.argv[1])
from amphisbaena.runtime import duals, matcher
graph, previous = pickle.load(open(sys.argv[2], "rb"))
traced, warm = "trace" in sys.argv[3:], "warm" in sys.argv[3:]
if warm:
    duals.WARM_START_SHARE, duals.WARM_START_ROWS = 1.0, graph.size
phases = []
if traced:
    tight_matching = matcher._Edges.tight_matching
    def noted(self, *args):
        found = tight_matching(self, *args)
        phases.append((round(time.perf_counter() - started, 2), int((found < 0).sum()), len(self.scores)))
        print(*phases[-1], file=sys.stderr, flush=True)
        return found
    matcher._Edges.tight_matching = noted
loaded = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
started = time.perf_counter()
found = duals.solve_sparse(graph, previous if warm else None)
seconds = time.perf_counter() - started
peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
total = float(graph.scores[graph.chosen(found.right_for_left)].sum())
measured = {"seconds": seconds, "loaded_mb": loaded / 1024, "peak_mb": peak / 1024, "solve_mb": (peak - loaded) / 1024, "total": total}
if traced:
    measured |= {"edges": len(graph.rows), "phases (seconds, rows unmatched, working-set edges)": phases}
print(json.dumps(measured))
"""

# A restore that pickles the graph of the SOLVE-th solve_sparse call and stops there
DUMP = """
import pickle, sys
import amphisbaena.runtime.assignment as assignment
out, solve = sys.argv.pop(1), int(sys.argv.pop(1))
calls = []
def dumping(graph, previous=None):
    calls.append(1)
    if len(calls) == solve:
        pickle.dump((graph, previous), open(out, "wb"), protocol=4)
        raise SystemExit(0)
    return solve_sparse(graph, previous)
solve_sparse, assignment.solve_sparse = assignment.solve_sparse, dumping
from amphisbaena.cli import main
sys.argv[0] = "amphisbaena"
main()
"""


def dump(out_dir: Path, pairs: int, solve: int, graph: Path, k: int | None) -> None:
    provenance = out_dir / "provenance.json"
    whole = provenance.exists() and json.loads(provenance.read_text())["count"] == pairs
    halves = out_dir / ("" if whole else f"pairs-{pairs}") / "halves.npz"  # the whole set, or its first PAIRS pairs
    if not halves.exists():
        raise SystemExit(f"{halves} is missing: run `python benchmarks/million.py restore --out-dir {out_dir} --pairs {pairs}` first")
    subprocess.run([sys.executable, "-c", DUMP, str(graph), str(solve), "restore", str(halves), *(["--k", str(k)] if k else [])], check=True)
    if not graph.exists():
        raise SystemExit(f"the restore made fewer than {solve} solves: nothing dumped")
    print(f"wrote {graph}")


def compare(graph: Path, old_checkout: Path, runs: int, name: str) -> None:
    sides = {"old": old_checkout.resolve(), "new": HERE.parent}
    measured: dict[str, list[dict]] = {"old": [], "new": []}
    for turn in range(runs):
        for side in ("old", "new") if turn % 2 == 0 else ("new", "old"):
            done = subprocess.run([sys.executable, "-c", ONE_SOLVE, str(sides[side]), str(graph)], capture_output=True, text=True, check=True)
            measured[side].append(json.loads(done.stdout))
            print(side, measured[side][-1], flush=True)
    with open(graph, "rb") as handle:
        edges = len(pickle.load(handle)[0].rows)
    summary = {
        side: {key: statistics.median(run[key] for run in measured[side]) for key in ("seconds", "solve_mb", "peak_mb")} for side in measured
    }
    report = {
        "commits": {side: commit_of(path) for side, path in sides.items()},
        "date": time.strftime("%Y-%m-%d %H:%M"),
        "graph": {"file": str(graph), "edges": edges},
        "runs": runs,
        "same_total": len({run["total"] for side in measured for run in measured[side]}) == 1,
        "medians": summary,
        "ratios": {
            "seconds_old_over_new": summary["old"]["seconds"] / summary["new"]["seconds"],
            "solve_mb_old_over_new": summary["old"]["solve_mb"] / summary["new"]["solve_mb"],
        },
        "raw": measured,
    }
    (HERE / "results" / f"{name}.json").write_text(json.dumps(report, indent=2) + "\n")
    print(json.dumps({key: report[key] for key in ("same_total", "medians", "ratios")}, indent=2))


def once(graph: Path, name: str, warm: bool) -> None:
    switches = ["trace", *(["warm"] if warm else [])]
    done = subprocess.run([sys.executable, "-c", ONE_SOLVE, str(HERE.parent), str(graph), *switches], stdout=subprocess.PIPE, text=True, check=True)
    report = {"commit": commit_of(HERE.parent), "date": time.strftime("%Y-%m-%d %H:%M"), "graph": str(graph), "start": "warm" if warm else "cold", "runs": 1}
    report |= json.loads(done.stdout)
    (HERE / "results" / f"{name}.json").write_text(json.dumps(report, indent=2) + "\n")
    print(json.dumps({key: report[key] for key in ("seconds", "peak_mb", "total", "edges")}, indent=2))


def inspect(graph: Path, name: str) -> None:
    """How far the previous round's duals are from the dumped graph: the edges and rows they break, and by how much."""
    import numpy as np

    with open(graph, "rb") as handle:
        candidates, previous = pickle.load(handle)
    slack = previous.row_potential[candidates.rows] + previous.col_potential[candidates.cols] - candidates.scores
    broken = slack < -candidates.tolerance
    report = {
        "commit": commit_of(HERE.parent), "date": time.strftime("%Y-%m-%d %H:%M"), "graph": str(graph), "pairs": candidates.size,
        "edges": len(candidates.rows), "previous_perfect": bool(previous.perfect), "broken_edges": int(broken.sum()),
        "broken_rows": len(np.unique(candidates.rows[broken])),
        "broken_slack_quantiles (0, 0.1, 0.5, 0.9, 1)": np.quantile(slack[broken], [0, 0.1, 0.5, 0.9, 1]).tolist() if broken.any() else [],
    }
    (HERE / "results" / f"{name}.json").write_text(json.dumps(report, indent=2) + "\n")
    print(json.dumps(report, indent=2))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("mode", choices=["dump", "once", "compare", "inspect"])
    parser.add_argument("--graph", type=Path, required=True)
    parser.add_argument("--out-dir", type=Path)
    parser.add_argument("--pairs", type=int, default=200_000)
    parser.add_argument("--solve", type=int, default=2)
    parser.add_argument("--k", type=int, help="candidates kept per half (dump; the restore's default otherwise)")
    parser.add_argument("--old-checkout", type=Path)
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--name", default="solve-memory")
    parser.add_argument("--warm", action="store_true", help="once: start from the previous round's duals, whatever the rows they break")
    args = parser.parse_args()
    if args.mode == "dump":
        if args.out_dir is None:
            parser.error("dump needs --out-dir")
        dump(args.out_dir, args.pairs, args.solve, args.graph, args.k)
    elif args.mode == "inspect":
        inspect(args.graph, args.name)
    elif args.mode == "once":
        once(args.graph, args.name, args.warm)
    else:
        if args.old_checkout is None:
            parser.error("compare needs --old-checkout")
        compare(args.graph, args.old_checkout, args.runs, args.name)


if __name__ == "__main__":
    main()
