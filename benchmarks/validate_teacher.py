"""The teacher's accuracy on the students' validation pool, for the size sweep's reference row.

    git worktree add ../amphisbaena-dd923fb dd923fb
    python benchmarks/validate_teacher.py --model-dir ../amphisbaena-dd923fb/amphisbaena/models/mnist

The pool is the 5,000 writer-disjoint held-out training digits the students validate on. The teacher
trained on all but the last 500 training digits, which include every digit of this pool: its figure
here is an upper reference, not a held-out one. Writes benchmarks/results/validation-teacher-dd923fb.json.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from amphisbaena.datasets import load_split
from amphisbaena.engines.select import BackendChoice
from amphisbaena.halves import make_halves
from amphisbaena.model_files import load_model_files
from amphisbaena.runtime.restore import restore
from amphisbaena.train.loop import split_train_val
from amphisbaena.train.recipe import Recipe

HERE = Path(__file__).resolve().parent


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--model-dir", type=Path, required=True)
    args = parser.parse_args()
    images, _ = load_split("train")
    _, pool_index = split_train_val(len(images), Recipe(val_size=5000, val_pool="writers"))
    left, right, key = make_halves(images[pool_index], seed=0)
    report = {"pool": "5,000 writer-disjoint held-out training digits (val_pool writers)", "teacher_trained_on_pool_digits": int((pool_index < len(images) - 500).sum())}
    for precision in ("fp32", "int8"):
        backend, _ = BackendChoice(precision=precision).create(load_model_files(args.model_dir, verify=False))
        report[precision] = restore(backend, left, right, key).accuracy
    out = HERE / "results" / "validation-teacher-dd923fb.json"
    out.write_text(json.dumps(report, indent=2) + "\n")
    print(json.dumps(report))


if __name__ == "__main__":
    main()
