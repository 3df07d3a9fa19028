"""The Python API's costs, in one run: what a library user pays, beside the one-shot command.

    python benchmarks/bench_api.py [--runs 9] [--calls 9] [--queries 300]

1. `import amphisbaena` and `amph.load()`, each as fresh processes, interleaved with `import numpy` (the
   floor every numpy program pays): medians, min and max of RUNS each.
2. A warm 10,000-halves `model.restore` of the MNIST test halves (seed 0) in this process: CALLS timed calls
   after one untimed first call (which also imports scipy), interleaved one for one with whole-process
   `amphisbaena restore` of the same halves file. p50 and p99 of each, and their ratio.
3. A warm `pool.best` of one left against the 10,000 rights: p50 and p99 over QUERIES single queries.

Writes benchmarks/results/api.json (the commit measured, every raw figure) and api.md.
"""

from __future__ import annotations

import argparse
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

import amphisbaena as amph

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
from bench_models import write_report


def percentiles(values: list[float]) -> dict:
    """p50 and p99 (numpy's linear interpolation), min and max, and every value."""
    return {
        "p50": float(np.percentile(values, 50)),
        "p99": float(np.percentile(values, 99)),
        "min": min(values),
        "max": max(values),
        "runs": len(values),
        "raw": values,
    }


def process_seconds(command: list[str]) -> float:
    started = time.perf_counter()
    subprocess.run(command, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    return time.perf_counter() - started


def startup(runs: int) -> dict:
    """Fresh-process seconds of `import numpy`, `import amphisbaena` and `amph.load()`, interleaved."""
    commands = {
        "import numpy": [sys.executable, "-c", "import numpy"],
        "import amphisbaena": [sys.executable, "-c", "import amphisbaena"],
        "amph.load()": [sys.executable, "-c", "import amphisbaena; amphisbaena.load()"],
    }
    seconds: dict[str, list[float]] = {name: [] for name in commands}
    for _ in range(runs):
        for name, command in commands.items():
            seconds[name].append(process_seconds(command))
    return {name: {"median": statistics.median(values), "min": min(values), "max": max(values), "raw": values} for name, values in seconds.items()}


def restores(calls: int, halves_path: Path, model: amph.Model, halves: amph.Halves) -> dict:
    """Warm in-process restores and whole-process `amphisbaena restore` of the same file, alternating."""
    command = [sys.executable, "-m", "amphisbaena", "restore", str(halves_path)]
    started = time.perf_counter()
    first = model.restore(halves.left, halves.right)
    first_seconds = time.perf_counter() - started
    warm, whole = [], []
    for _ in range(calls):
        started = time.perf_counter()
        restored = model.restore(halves.left, halves.right)
        warm.append(time.perf_counter() - started)
        assert np.array_equal(restored.right_for_left, first.right_for_left)
        whole.append(process_seconds(command))
    warm_stats, whole_stats = percentiles(warm), percentiles(whole)
    return {
        "first_call_seconds": first_seconds,
        "warm_restore_seconds": warm_stats,
        "whole_process_restore_seconds": whole_stats,
        "warm_over_whole_process_p50": warm_stats["p50"] / whole_stats["p50"],
        "accuracy": first.accuracy(halves.key),
    }


def pool_latency(model: amph.Model, halves: amph.Halves, queries: int) -> dict:
    """Milliseconds of one `pool.best` query (one left against the 10,000 rights), warm."""
    pool = model.pool(halves.right, side="right")
    for index in range(3):
        pool.best(halves.left[index : index + 1], k=5)
    milliseconds = []
    for index in range(queries):
        started = time.perf_counter()
        pool.best(halves.left[index : index + 1], k=5)
        milliseconds.append(1000 * (time.perf_counter() - started))
    return percentiles(milliseconds)


def commit() -> str:
    done = subprocess.run(["git", "rev-parse", "HEAD"], capture_output=True, text=True, check=False, cwd=HERE)
    dirty = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no"], capture_output=True, text=True, check=False, cwd=HERE)
    return done.stdout.strip() + ("+uncommitted" if dirty.stdout.strip() else "")


def table(report: dict) -> str:
    start, run, pool = report["startup_seconds"], report["restore_10k"], report["pool_best_ms"]
    floor = start["import numpy"]["median"]
    rows = [
        "| what | figure |",
        "| --- | --- |",
        f"| `import numpy`, fresh process (median of {len(start['import numpy']['raw'])}) | {floor:.3f} s |",
        f"| `import amphisbaena`, fresh process | {start['import amphisbaena']['median']:.3f} s ({start['import amphisbaena']['median'] - floor:+.3f} s over numpy) |",
        f"| `amph.load()`, fresh process | {start['amph.load()']['median']:.3f} s |",
        f"| warm 10k `model.restore`, p50 / p99 of {run['warm_restore_seconds']['runs']} | {run['warm_restore_seconds']['p50']:.3f} / {run['warm_restore_seconds']['p99']:.3f} s |",
        f"| whole-process `amphisbaena restore` of the same file, p50 / p99 | {run['whole_process_restore_seconds']['p50']:.3f} / {run['whole_process_restore_seconds']['p99']:.3f} s |",
        f"| warm / whole process (p50) | {run['warm_over_whole_process_p50']:.2f} |",
        f"| warm `pool.best`, 1 left against 10,000 rights, p50 / p99 of {pool['runs']} | {pool['p50']:.2f} / {pool['p99']:.2f} ms |",
    ]
    return f"API costs at {report['commit'][:12]} on {report['machine']}\n\n" + "\n".join(rows) + "\n"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=9)
    parser.add_argument("--calls", type=int, default=9)
    parser.add_argument("--queries", type=int, default=300)
    parser.add_argument("--out-dir", type=Path, default=HERE / "results")
    args = parser.parse_args()
    model = amph.load()
    halves = amph.test_halves(seed=0)
    with tempfile.TemporaryDirectory() as scratch:
        halves_path = Path(scratch) / "test-halves.npz"
        halves.save(halves_path)
        report = {
            "commit": commit(),
            "date": time.strftime("%Y-%m-%d %H:%M"),
            "machine": f"{platform.machine()}, {os.cpu_count()} cores, Python {platform.python_version()}",
            "backend": str(model),
            "startup_seconds": startup(args.runs),
            "restore_10k": restores(args.calls, halves_path, model, halves),
            "pool_best_ms": pool_latency(model, halves, args.queries),
        }
    write_report(args.out_dir, "api", report, table(report))


if __name__ == "__main__":
    main()
