"""How a whole restore scales with cores: `--threads` 1 against all, and one core against all, interleaved.

    python benchmarks/threads.py --sizes 10000 60000 --runs 5 --runs-large 3

Each configuration is a fresh `python -m amphisbaena restore --json` process, timed from start to exit with
its peak RSS; the configurations take turns, run after run. `--threads T` sets onnxruntime's intra-op
threads only: the two arms still run side by side and two head blocks stay in flight in worker threads, so
`--threads 1` alone still uses more than one core. `taskset -c 0` (where taskset exists) holds the whole
process to one core. On a machine with more cores, `--threads 1 4 8 16` measures them all. Writes
benchmarks/results/NAME.json and NAME.md, with the commit and every run's figures.
"""

from __future__ import annotations

import argparse
import os
import shutil
import sys
import tempfile
import time
from pathlib import Path

from bench_models import commit_of, halves_of_size, machine_facts, restore_process, run_figures, write_report

HERE = Path(__file__).resolve().parent


def configurations(threads: list[int], one_core: bool) -> list[tuple[str, tuple[str, ...], tuple[str, ...]]]:
    """(label, restore options, command prefix) of every configuration measured."""
    chosen = [(f"--threads {t}", ("--threads", str(t)), ()) for t in threads]
    if one_core and shutil.which("taskset"):
        chosen.append(("--threads 1, one core (taskset -c 0)", ("--threads", "1"), ("taskset", "-c", "0")))
    return chosen


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--threads", type=int, nargs="+", default=[1, os.cpu_count() or 1])
    parser.add_argument("--no-one-core", action="store_true", help="skip the run held to one core")
    parser.add_argument("--runs", type=int, default=5, help="runs of each configuration at up to 10,000 pairs")
    parser.add_argument("--runs-large", type=int, default=3, help="runs of each configuration above 10,000 pairs")
    parser.add_argument("--sizes", type=int, nargs="+", default=[10_000, 60_000])
    parser.add_argument("--out-dir", type=Path, default=HERE / "results")
    parser.add_argument("--name", default="threads")
    args = parser.parse_args()
    chosen = configurations(args.threads, not args.no_one_core)
    report = {
        "commit": commit_of(HERE.parent),
        "date": time.strftime("%Y-%m-%d %H:%M"),
        "machine": machine_facts(),
        "sizes": {},
    }
    with tempfile.TemporaryDirectory() as tmp:
        for size in args.sizes:
            halves_path, key_path = halves_of_size(size, Path(tmp))
            runs: dict[str, list[dict]] = {label: [] for label, _, _ in chosen}
            for run in range(args.runs if size <= 10_000 else args.runs_large):
                for label, options, prefix in chosen if run % 2 == 0 else chosen[::-1]:
                    runs[label].append(restore_process(halves_path, key_path, HERE.parent, sys.executable, options, prefix))
                    print(f"{size} {label} run {run + 1}: {runs[label][-1]['seconds']:.2f} s", flush=True)
            entry = {}
            for label, measured in runs.items():
                entry[label] = {**run_figures(measured), "right_for_left_accuracy": measured[-1]["summary"]["accuracy"]}
            fastest = min(entry.values(), key=lambda e: e["seconds"]["median"])["seconds"]["median"]
            for measured in entry.values():
                measured["slowdown_against_fastest"] = measured["seconds"]["median"] / fastest
            report["sizes"][str(size)] = entry
    write_report(args.out_dir, args.name, report, markdown(report))


def markdown(report: dict) -> str:
    lines = [
        f"commit {report['commit'][:12]}, {report['date']}, {report['machine']['cpus']} cpus",
        "",
        "| pairs | configuration | whole restore s (median, min-max) | against the fastest | arms s | head s | assignment s | peak RSS MB |",
        "| --- | --- | --- | --- | --- | --- | --- | --- |",
    ]
    for size, entry in report["sizes"].items():
        for label, m in entry.items():
            s, stages = m["seconds"], m["stages_median"]
            lines.append(
                f"| {int(size):,} | {label} | {s['median']:.2f} ({s['min']:.2f}-{s['max']:.2f}) | {m['slowdown_against_fastest']:.2f}x "
                f"| {stages.get('arms', 0):.2f} | {stages.get('head', 0):.2f} | {stages.get('assignment', 0):.2f} | {m['peak_rss_mb']['median']:.0f} |"
            )
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    main()
