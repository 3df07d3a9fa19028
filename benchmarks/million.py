"""A million pairs on one machine: a duplicate-free synthetic set, and one timed restore of it.

    python benchmarks/million.py make --out-dir runs/million [--count 1000000] [--seed 0]
    python benchmarks/million.py restore --out-dir runs/million [--pairs 100000] [--timeout S] [--name NAME]

`make` draws training digits at random (seed SEED), distorts each by its own random affine map (rotation up
to 12 degrees, shear up to 0.2, one axis stretched against the other by up to 15%) and renormalises it as MNIST
made its digits (`train.augment.distorted`: ink box scaled so its larger side is 20 pixels, centre of mass
shifted to within half a pixel of 14). It keeps only digits that obey those rules, and drops every digit
whose whole image, left half or right half repeats an earlier one's, so the set has no exact duplicates and
no tied halves. It cuts and shuffles them (`amphisbaena.cut`) and writes OUT_DIR/halves.npz, key.npz and
provenance.json (what was drawn, rejected and dropped). Needs torch (the `train` extra).

`restore` runs `amphisbaena restore OUT_DIR/halves.npz --key OUT_DIR/key.npz --json` once as a fresh process (the
command's own code, which piped prints only its estimate, made to print a line as each stage and each step of the
assignment starts and ends) and
records its commit, wall time, peak RSS, its RSS every 10 s, every line it prints on stderr (the estimate
first) with its time, and its summary in benchmarks/results/million.json. With --timeout it interrupts the
restore (SIGINT) after that many seconds and records how far it got, marked `"completed": false`. With
--pairs N it restores the set's first N lefts and their rights instead, the rights shuffled anew (seed 1),
written once to OUT_DIR/pairs-N/, and records benchmarks/results/scale-N.json: the scaling curve's
synthetic points between 60,000 real pairs and the million.
"""

from __future__ import annotations

import argparse
import json
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import numpy as np
from bench_models import commit_of

HERE = Path(__file__).resolve().parent
BATCH = 50_000  # digits distorted at once
SAMPLE_SECONDS = 10  # how often the restore's memory is sampled
# `python -m amphisbaena` with one change for the record: piped, it also prints a line as each stage starts and ends
# The restore, printing each stage's start and end. It takes SIGINT as a terminal's Ctrl-C would even where this
# script runs as a background job of a non-interactive shell, which starts its children with SIGINT ignored.
WITH_STAGE_LINES = """
import signal, sys, time
from contextlib import contextmanager
import amphisbaena.progress as progress

signal.signal(signal.SIGINT, signal.default_int_handler)

class StageLines(progress.NotesOnly):
    @contextmanager
    def stage(self, description, total=None):
        started = time.perf_counter()
        self.note(f"stage start: {description}")
        yield progress.Stage()
        self.note(f"stage end: {description} ({time.perf_counter() - started:.1f} s)")

progress.for_terminal = lambda notes_only=False: StageLines()

import amphisbaena.runtime.assignment as assignment
import amphisbaena.runtime.proof as proof
import amphisbaena.runtime.repair as repair

DETAILS = {
    "deficit": lambda found: f"unmatched {len(found.unmatched)}, S {len(found.hall_rows)}, R {len(found.reach_cols)}",
    "_best_across": lambda found: f"pairs scored {found[3]}, added {len(found[0])}",
    "solve_sparse": lambda found: "no matching" if found is None else f"perfect {found.perfect}, unmatched rows {int((found.right_for_left < 0).sum())}",
    "with_a_perfect_matching": lambda found: f"rows {found.rows}, k {found.k}, edges {len(found.graph.rows)}",
    "check": lambda found: f"violated {found.violated}, pairs kept {len(found.rows)}, pairs scored {found.scored}",
    "uncovered": lambda plan: f"{len(plan.rows)} prefixes, {int(plan.length.sum())} pairs, {int(plan.length.clip(max=proof.PROBE_COLUMNS).sum())} in a probe",
}

def step_lines(module, name):
    step = getattr(module, name)
    def timed(*args, **kwargs):
        started = time.perf_counter()
        print(f"step start: {name}", file=sys.stderr, flush=True)
        result = step(*args, **kwargs)
        print(f"step end: {name} ({time.perf_counter() - started:.1f} s; {DETAILS[name](result) if name in DETAILS else ''})", file=sys.stderr, flush=True)
        return result
    setattr(module, name, timed)

for name in ("with_a_perfect_matching", "solve_sparse", "check", "regrets_with_counts"):
    step_lines(assignment, name)
step_lines(proof, "uncovered")
for name in ("deficit", "_best_across"):
    step_lines(repair, name)

import amphisbaena.runtime.matcher as matcher

def phase_lines(owner, name, describe):
    method = getattr(owner, name)
    def timed(self, *args, **kwargs):
        started = time.perf_counter()
        result = method(self, *args, **kwargs)
        print(f"phase: {name} {describe(self, args, result)} ({time.perf_counter() - started:.1f} s)", file=sys.stderr, flush=True)
        return result
    setattr(owner, name, timed)

# each of the matcher's searches (its rows, limit and edges) and each working set it takes
phase_lines(matcher._ResidualGraph, "_search", lambda self, args, found: f"from {len(args[1])} rows, limit {args[2]:.3g}, {self.edges} edges")
phase_lines(matcher._Edges, "within", lambda self, args, taken: f"reach {args[2]:.3g}: {len(taken.scores)} of {len(self.scores)} edges")
from amphisbaena.cli import main
sys.argv[0] = "amphisbaena"
main()
"""


def unique_first(rows: np.ndarray) -> np.ndarray:
    """(N,) bool: rows (N, ...) uint8 whose bytes no row before them has."""
    flat = np.ascontiguousarray(rows.reshape(len(rows), -1))
    keys = flat.view(np.dtype((np.void, flat.shape[1]))).ravel()
    _, first = np.unique(keys, return_index=True)
    keep = np.zeros(len(rows), dtype=bool)
    keep[first] = True
    return keep


def make(out_dir: Path, count: int, seed: int) -> None:
    import torch

    import amphisbaena as amph
    from amphisbaena.datasets import load_split
    from amphisbaena.train.augment import distorted, obeys_mnist_rules

    sources = load_split("train")[0]
    rng = np.random.default_rng(seed)
    generator = torch.Generator().manual_seed(seed)
    digits = np.empty((0, 28, 28), dtype=np.uint8)
    drawn = rejected = 0
    while True:
        chosen = rng.integers(0, len(sources), BATCH)
        made = distorted(torch.from_numpy(sources[chosen]).float(), generator).numpy().astype(np.uint8)
        drawn += len(made)
        good = obeys_mnist_rules(made)
        rejected += int((~good).sum())
        digits = np.concatenate([digits, made[good]])
        distinct = unique_first(digits) & unique_first(digits[:, :, :14]) & unique_first(digits[:, :, 14:])
        digits = digits[distinct]
        print(f"{len(digits):,} distinct digits from {drawn:,} drawn", flush=True)
        if len(digits) >= count:
            break
    distinct_found = len(digits)
    digits = digits[:count]
    out_dir.mkdir(parents=True, exist_ok=True)
    amph.cut(digits, seed=seed).save(out_dir / "halves.npz", key=out_dir / "key.npz")
    provenance = {
        "count": count,
        "seed": seed,
        "source": "MNIST training digits, drawn with repeats",
        "distortion": "train.augment.distorted: rotation <= 12 degrees, shear <= 0.2, stretch <= 15%, then renormalised",
        "drawn": drawn,
        "rejected_breaking_mnist_rules": rejected,
        "dropped_as_duplicates": drawn - rejected - distinct_found,
        "distinct_found": distinct_found,
        "command": f"python benchmarks/million.py make --out-dir {out_dir} --count {count} --seed {seed}",
    }
    (out_dir / "provenance.json").write_text(json.dumps(provenance, indent=2) + "\n")
    print(f"wrote {out_dir / 'halves.npz'}, {out_dir / 'key.npz'} and provenance.json")


def first_pairs(out_dir: Path, pairs: int) -> Path:
    """OUT_DIR's first PAIRS lefts with their rights, the rights shuffled anew (seed 1), written once to
    OUT_DIR/pairs-PAIRS/ (halves.npz and key.npz); that folder."""
    subset = out_dir / f"pairs-{pairs}"
    if (subset / "key.npz").exists():
        return subset
    import amphisbaena as amph

    whole = amph.load_halves(out_dir / "halves.npz", key=out_dir / "key.npz")
    left, right = whole.left[:pairs], whole.right[whole.key[:pairs]]
    order = np.random.default_rng(1).permutation(pairs)  # shuffled right p is right order[p]
    subset.mkdir(exist_ok=True)
    amph.Halves(left, right[order], np.argsort(order)).save(subset / "halves.npz", key=subset / "key.npz")
    return subset


def restore(out_dir: Path, timeout: float | None, name: str = "million") -> None:
    """One timed restore of OUT_DIR's set into benchmarks/results/NAME.json. Past TIMEOUT seconds it is
    interrupted (SIGINT, as a user would) and what it reached is recorded, marked as not completed."""
    command = [sys.executable, "-c", WITH_STAGE_LINES, "restore", str(out_dir / "halves.npz"), "--key", str(out_dir / "key.npz"), "--json"]
    commit = commit_of(HERE.parent)  # the code the restore runs: what the tree holds as it starts
    started = time.perf_counter()
    process = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    notes: list[dict] = []  # every line the restore prints on stderr, with when it came
    memory: list[dict] = []  # the process's RSS every SAMPLE_SECONDS
    def read_notes() -> None:  # kept with their times, and echoed as they come
        for line in process.stderr:
            notes.append({"at_s": round(time.perf_counter() - started, 1), "line": line.rstrip()})
            print(f"[{notes[-1]['at_s']:.0f} s] {line.rstrip()}", file=sys.stderr, flush=True)

    reader = threading.Thread(target=read_notes)
    reader.start()
    interrupted, sampled = False, -SAMPLE_SECONDS
    while process.poll() is None:
        elapsed = time.perf_counter() - started
        if elapsed - sampled >= SAMPLE_SECONDS:
            memory.append({"at_s": round(elapsed, 1), "rss_mb": rss_mb(process.pid)})
            sampled = elapsed
        if timeout is not None and elapsed > timeout and not interrupted:
            process.send_signal(signal.SIGINT)
            interrupted = True
        time.sleep(0.1)
    stdout = process.stdout.read()
    reader.join()
    seconds = time.perf_counter() - started
    failed = process.returncode != 0 and not interrupted
    report = {
        "command": " ".join(command[1:]),
        "commit": commit,
        "runs": 1,
        "note": "one run, timed once"
        + (f"; interrupted after the {timeout:g} s limit, not completed" if interrupted else "")
        + (f"; failed with exit status {process.returncode}" if failed else ""),
        "completed": not interrupted and not failed,
        "seconds": seconds,
        "peak_rss_mb": resource_peak_mb(),
        "estimate_line": notes[0]["line"] if notes else None,
        "stderr": notes,
        "rss_samples": memory,
        "summary": json.loads(stdout) if stdout.strip() and not interrupted and not failed else None,
        "date": time.strftime("%Y-%m-%d %H:%M"),
    }
    (HERE / "results" / f"{name}.json").write_text(json.dumps(report, indent=2) + "\n")
    print(json.dumps({key: report[key] for key in ("seconds", "peak_rss_mb", "estimate_line")}, indent=2))
    if failed:
        raise SystemExit(f"restore failed ({process.returncode}): {notes[-1]['line'] if notes else ''}")


def rss_mb(pid: int) -> float | None:
    """PID's resident memory now, in MB (None where /proc cannot say)."""
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    except OSError:
        return None
    return None


def resource_peak_mb() -> float:
    """The largest peak RSS among this process's finished children, in MB."""
    import resource

    return resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("action", choices=("make", "restore"))
    parser.add_argument("--out-dir", type=Path, default=Path("runs/million"))
    parser.add_argument("--count", type=int, default=1_000_000)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--timeout", type=float, default=None, help="restore: interrupt it after this many seconds and record how far it got")
    parser.add_argument("--pairs", type=int, default=None, help="restore: only the set's first PAIRS lefts and their rights")
    parser.add_argument("--name", default=None, help="restore: the result file's name (default million, or scale-PAIRS)")
    args = parser.parse_args()
    if args.action == "make":
        make(args.out_dir, args.count, args.seed)
    elif args.pairs is None:
        restore(args.out_dir, args.timeout, args.name or "million")
    else:
        restore(first_pairs(args.out_dir, args.pairs), args.timeout, args.name or f"scale-{args.pairs}")


if __name__ == "__main__":
    main()
