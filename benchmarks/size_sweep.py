"""The student size sweep: one row per exported model, measured in one sitting.

    python benchmarks/size_sweep.py NAME=MODEL_DIR [NAME=MODEL_DIR ...] [--runs 5] [--out size-sweep]

For each model: its validation accuracy (recorded by `export`, restored through the model's own graphs
over its held-out pool), feature size, multiply-adds per half (arm trunk, projections and seam
convolution, from the recorded shape), bytes of its fp32 and int8 files, and the median of RUNS
whole-process 10,000-halves restores (`restore --key`, default precision), the models interleaved.
Writes benchmarks/results/OUT.json and prints a markdown table.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from amphisbaena.datasets import load_split
from amphisbaena.files import save_npz
from amphisbaena.halves import make_halves
from amphisbaena.train.model import PIXELS, ROWS, ModelConfig

HERE = Path(__file__).resolve().parent


def multiply_adds_per_half(config: ModelConfig) -> int:
    """Multiply-adds of one arm on one half: stem, residual blocks, embedding and head projections, seam."""
    h = config.hidden
    trunk = PIXELS * h + (config.depth - 1) * 2 * h * h + h * (config.embedding + config.head_hidden)
    w = config.seam_width
    seam = ROWS * (7 * config.seam_columns * w + 5 * w * w + 3 * w * config.seam_channels) if config.seam_channels else 0
    return trunk + seam


def model_bytes(directory: Path) -> int:
    return sum(path.stat().st_size for path in directory.rglob("*") if path.is_file())


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("models", nargs="+", help="NAME=MODEL_DIR")
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--out", default="size-sweep", help="result file name, without .json")
    args = parser.parse_args()
    models = dict(item.split("=", 1) for item in args.models)
    left, right, key = make_halves(load_split("test")[0], seed=0)
    seconds: dict[str, list[float]] = {name: [] for name in models}
    with tempfile.TemporaryDirectory() as tmp:
        halves, key_path = Path(tmp) / "h.npz", Path(tmp) / "k.npz"
        save_npz(halves, left=left, right=right)
        save_npz(key_path, right_for_left=key)
        for run in range(args.runs):
            for name, directory in models.items():
                started = time.perf_counter()
                subprocess.run(
                    [sys.executable, "-m", "amphisbaena", "restore", str(halves), "--key", str(key_path), "--model-dir", directory],
                    check=True, stdout=subprocess.DEVNULL, env=dict(os.environ),
                )
                seconds[name].append(time.perf_counter() - started)
    rows = []
    for name, directory in models.items():
        manifest = json.loads((Path(directory) / "manifest.json").read_text())
        config = ModelConfig(**manifest["recipe"]["model"])
        int8 = Path(directory) / "int8" / "manifest.json"
        validation = manifest["validation"]
        rows.append({
            "name": name,
            "model": manifest["recipe"]["model"],
            "distill_temperature": manifest["recipe"].get("distill_temperature"),
            "validation_pool": f"{validation['pool_size']} {validation['split']}",
            "validation_fp32": validation["assignment_accuracy"],
            "validation_int8": json.loads(int8.read_text())["validation"]["assignment_accuracy"] if int8.exists() else None,
            "feature_size": manifest["feature_size"],
            "multiply_adds_per_half": multiply_adds_per_half(config),
            "bytes": model_bytes(Path(directory)),
            "restore_10k_seconds": {"median": statistics.median(seconds[name]), "min": min(seconds[name]), "max": max(seconds[name]), "runs": len(seconds[name])},
        })
    (HERE / "results").mkdir(exist_ok=True)
    (HERE / "results" / f"{args.out}.json").write_text(json.dumps(rows, indent=2) + "\n")
    print("| model | arm (hidden x depth) | embedding / head / seam | temperature | validation fp32 / int8 | feature size | multiply-adds per half | bytes | 10k restore s (median of 5) |")
    print("| --- | --- | --- | --- | --- | --- | --- | --- | --- |")
    for row in rows:
        m = row["model"]
        int8_text = "-" if row["validation_int8"] is None else f"{row['validation_int8']:.2%}"
        print(
            f"| {row['name']} | {m['hidden']} x {m['depth']} | {m['embedding']} / {m['head_hidden']} / {m['seam_channels']} ch x {m['seam_columns']} col (width {m.get('seam_width', 48)}) "
            f"| {row['distill_temperature']} | {row['validation_fp32']:.2%} / {int8_text} | {row['feature_size']} | {row['multiply_adds_per_half'] / 1e6:.2f} M "
            f"| {row['bytes'] / 1e6:.1f} MB | {row['restore_10k_seconds']['median']:.2f} |"
        )


if __name__ == "__main__":
    main()
