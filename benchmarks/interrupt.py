"""How fast Ctrl-C stops a restore, at several points of it, and that it leaves no output.

    python benchmarks/interrupt.py [--pairs 60000] [--at 6 14 19]

Writes PAIRS training pairs (seed 0), then for each AT starts `amphisbaena restore ... --out`, sends it SIGINT
after AT seconds from this parent process (a shell's background job would ignore SIGINT) and records how long it
took to end, its exit status, its last stderr line and whether an output file appeared. Writes
benchmarks/results/interrupt.json and .md.
"""

from __future__ import annotations

import argparse
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
from bench_api import commit
from bench_models import halves_of_size, machine_facts, write_report


def interrupted_run(halves: Path, out: Path, after: float) -> dict:
    process = subprocess.Popen(
        [sys.executable, "-m", "amphisbaena", "restore", str(halves), "--json", "--out", str(out)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    )
    time.sleep(after)
    signalled = time.perf_counter()
    process.send_signal(signal.SIGINT)
    stderr = process.communicate()[1].strip().splitlines()
    return {
        "sigint_after_s": after,
        "ended_after_sigint_s": time.perf_counter() - signalled,
        "exit_status": process.returncode,
        "last_stderr_line": stderr[-1] if stderr else "",
        "output_written": out.exists(),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--pairs", type=int, default=60_000)
    parser.add_argument("--at", type=float, nargs="+", default=[6.0, 14.0, 19.0], help="seconds after the start")
    parser.add_argument("--out-dir", type=Path, default=HERE / "results")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as scratch:
        halves, _ = halves_of_size(args.pairs, Path(scratch))
        runs = [interrupted_run(halves, Path(scratch) / f"out-{after:g}.npz", after) for after in args.at]
    report = {"commit": commit(), "date": time.strftime("%Y-%m-%d %H:%M"), "machine": machine_facts(), "pairs": args.pairs, "runs": runs}
    lines = [f"{args.pairs:,} pairs, commit {report['commit'][:12]}", "", "| SIGINT at s | ended after s | exit status | output written | last stderr line |", "| --- | --- | --- | --- | --- |"]
    lines += [
        f"| {run['sigint_after_s']:g} | {run['ended_after_sigint_s']:.2f} | {run['exit_status']} | {run['output_written']} | {run['last_stderr_line']} |"
        for run in runs
    ]
    write_report(args.out_dir, "interrupt", report, "\n".join(lines) + "\n")


if __name__ == "__main__":
    main()
