"""The shipped model and code against an earlier checkout, measured in one run, interleaved.

    git worktree add ../amphisbaena-dd923fb dd923fb
    python3 -m venv ../venv-dd923fb && ../venv-dd923fb/bin/pip install numpy scipy onnxruntime typer rich
    python benchmarks/bench_models.py --old-checkout ../amphisbaena-dd923fb --old-python ../venv-dd923fb/bin/python

Every restore is a fresh `python -m amphisbaena restore` process, timed from start to exit, with
its own peak RSS; old and new alternate, RUNS times each at up to 10,000 pairs and RUNS_LARGE times each
above. The old checkout runs in the interpreter --old-python (default: this one), so that each side has the
dependencies its own pyproject.toml resolves to today (dd923fb's `typer>=0.12` brings typer 0.29 and
pydantic). Reported: both commits, every run's seconds, peak RSS and stages, and their medians with min and
max, the old/new ratio of the medians, pairs restored per second and pairs scored per second of head time.
Writes benchmarks/results/NAME.json and NAME.md. (The warm in-process costs of the Python API, a `pool.best`
query among them, are `bench_api.py`'s.)
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from amphisbaena.datasets import load_split
from amphisbaena.files import save_npz
from amphisbaena.halves import make_halves

HERE = Path(__file__).resolve().parent


def spread(values: list[float]) -> dict:
    return {"median": statistics.median(values), "min": min(values), "max": max(values), "runs": len(values)}


def restore_process(halves: Path, key: Path, checkout: Path, python: str, options: tuple[str, ...] = (), prefix: tuple[str, ...] = ()) -> dict:
    """One whole `restore` process of CHECKOUT's code and shipped model under the interpreter PYTHON, with
    the extra restore OPTIONS, started through PREFIX (a command such as taskset): wall seconds, peak RSS
    (MB) and its JSON summary. It runs in CHECKOUT, whose package `python -m` finds first."""
    env = {**os.environ, "PYTHONPATH": str(checkout)}
    command = [*prefix, python, "-m", "amphisbaena", "restore", str(halves), "--key", str(key), "--json", *options]
    started = time.perf_counter()
    process = subprocess.Popen(command, env=env, cwd=checkout, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL)
    output = process.stdout.read()
    _, status, usage = os.wait4(process.pid, 0)
    seconds = time.perf_counter() - started
    if status != 0:
        raise RuntimeError(f"{' '.join(command)} failed with status {status}")
    return {"seconds": seconds, "peak_rss_mb": usage.ru_maxrss / 1024, "summary": json.loads(output)}


def run_figures(measured: list[dict]) -> dict:
    """What every sitting records of one configuration's runs (`restore_process` results): wall seconds and
    peak RSS as spreads, the median of each stage, and every run's own figures."""
    return {
        "seconds": spread([m["seconds"] for m in measured]),
        "peak_rss_mb": spread([m["peak_rss_mb"] for m in measured]),
        "stages_median": {stage: statistics.median(m["summary"]["seconds"][stage] for m in measured) for stage in measured[-1]["summary"]["seconds"]},
        "raw": [{"seconds": m["seconds"], "peak_rss_mb": m["peak_rss_mb"], "stages": m["summary"]["seconds"]} for m in measured],
    }


def machine_facts() -> dict:
    return {"cpus": os.cpu_count(), "python": platform.python_version(), "processor": platform.processor()}


def halves_of_size(size: int, directory: Path) -> tuple[Path, Path]:
    """SIZE pairs (the test digits up to 10,000, the training digits above) cut and shuffled with seed 0, written
    to DIRECTORY as a halves file and a key file."""
    digits = load_split("test")[0] if size <= 10_000 else load_split("train")[0]
    left, right, key = make_halves(digits[:size], seed=0)
    halves_path, key_path = directory / f"h{size}.npz", directory / f"k{size}.npz"
    save_npz(halves_path, left=left, right=right)
    save_npz(key_path, right_for_left=key)
    return halves_path, key_path


def write_report(out_dir: Path, name: str, report: dict, table: str) -> None:
    """REPORT as OUT_DIR/NAME.json and its TABLE as NAME.md; the table is printed too."""
    out_dir.mkdir(exist_ok=True)
    (out_dir / f"{name}.json").write_text(json.dumps(report, indent=2) + "\n")
    (out_dir / f"{name}.md").write_text(table)
    print(table)


def dependency_versions(python: str) -> dict:
    """The versions of the runtime dependencies PYTHON imports (None where one is missing)."""
    probe = (
        "import importlib.metadata as m, json\n"
        "names = ['numpy', 'scipy', 'onnxruntime', 'typer', 'pydantic']\n"
        "def version(name):\n"
        "    try:\n"
        "        return m.version(name)\n"
        "    except m.PackageNotFoundError:\n"
        "        return None\n"
        "print(json.dumps({name: version(name) for name in names}))"
    )
    return json.loads(subprocess.run([python, "-c", probe], check=True, capture_output=True, text=True).stdout)


def commit_of(checkout: Path) -> str:
    """CHECKOUT's commit, marked where tracked files differ from it."""
    head = subprocess.run(["git", "rev-parse", "HEAD"], capture_output=True, text=True, check=True, cwd=checkout).stdout.strip()
    dirty = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no"], capture_output=True, text=True, check=True, cwd=checkout).stdout
    return head + ("+uncommitted" if dirty.strip() else "")


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--old-checkout", type=Path, required=True, help="a checkout of the earlier code with its shipped model")
    parser.add_argument("--old-python", default=sys.executable, help="the interpreter (and so the dependencies) the old checkout runs with")
    parser.add_argument("--runs", type=int, default=5, help="runs of each side at up to 10,000 pairs")
    parser.add_argument("--runs-large", type=int, default=3, help="runs of each side above 10,000 pairs")
    parser.add_argument("--sizes", type=int, nargs="+", default=[20, 10_000, 60_000])
    parser.add_argument("--out-dir", type=Path, default=HERE / "results")
    parser.add_argument("--name", default="models", help="result files NAME.json and NAME.md")
    args = parser.parse_args()
    old = args.old_checkout.resolve()
    report = {
        "commits": {"old": commit_of(old), "new": commit_of(HERE.parent)},
        "date": time.strftime("%Y-%m-%d %H:%M"),
        "machine": machine_facts(),
        "interpreters": {"old": dependency_versions(args.old_python), "new": dependency_versions(sys.executable)},
        "sizes": {},
    }
    interpreter = {"old": args.old_python, "new": sys.executable}
    with tempfile.TemporaryDirectory() as tmp:
        for size in args.sizes:
            halves_path, key_path = halves_of_size(size, Path(tmp))
            runs: dict[str, list[dict]] = {"old": [], "new": []}
            for run in range(args.runs if size <= 10_000 else args.runs_large):
                for name, path in (("old", old), ("new", HERE.parent)) if run % 2 == 0 else (("new", HERE.parent), ("old", old)):
                    runs[name].append(restore_process(halves_path, key_path, path, interpreter[name]))
                    print(f"{size} {name} run {run + 1}: {runs[name][-1]['seconds']:.2f} s", flush=True)
            entry = {}
            for name, measured in runs.items():
                summary = measured[-1]["summary"]
                figures = run_figures(measured)
                head, wall = figures["stages_median"]["head"], figures["seconds"]
                entry[name] = {
                    **figures,
                    "accuracy": summary["accuracy"],
                    "precision": summary["precision"],
                    "pairs_per_second": size / wall["median"],
                    "scored_pairs_per_head_second": summary["assignment"].get("scored_pairs", size * size) / head,
                    "scored_fraction": summary["assignment"].get("scored_pairs", size * size) / size**2,
                    "assignment": {key: summary["assignment"].get(key) for key in ("k", "rounds", "candidate_edges", "rescored_rows", "scored_pairs", "regrets")},
                }
            entry["speedup"] = entry["old"]["seconds"]["median"] / entry["new"]["seconds"]["median"]
            report["sizes"][str(size)] = entry
    write_report(args.out_dir, args.name, report, markdown(report))


def markdown(report: dict) -> str:
    commits = report["commits"]
    lines = [
        f"old: {commits['old'][:12]}, new: {commits['new'][:12]}, {report['date']}",
        "",
        "| pairs | old s (median, min-max) | new s (median, min-max) | speed-up | old / new peak RSS MB | new pairs/s | pairs scored, old / new | new pairs scored/s of head time | accuracy old / new |",
        "| --- | --- | --- | --- | --- | --- | --- | --- | --- |",
    ]
    for size, entry in report["sizes"].items():
        old, new = entry["old"], entry["new"]
        lines.append(
            f"| {int(size):,} | {old['seconds']['median']:.2f} ({old['seconds']['min']:.2f}-{old['seconds']['max']:.2f}) "
            f"| {new['seconds']['median']:.2f} ({new['seconds']['min']:.2f}-{new['seconds']['max']:.2f}) | {entry['speedup']:.2f}x "
            f"| {old['peak_rss_mb']['median']:.0f} / {new['peak_rss_mb']['median']:.0f} | {new['pairs_per_second']:,.0f} "
            f"| {old['scored_fraction']:.1%} / {new['scored_fraction']:.1%} "
            f"| {new['scored_pairs_per_head_second']:.3g} | {old['accuracy']:.4f} / {new['accuracy']:.4f} |"
        )
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    main()
