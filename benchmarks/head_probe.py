"""Where the head's time per pair goes, and how many pairs a finer filter would spare (10,000 test halves).

    python benchmarks/head_probe.py [--model-dir DIR]

Measures, for one model: the time of one 256 x 2,700 head tile with and without the geometry penalty
(the penalty-free tile is the same head with every pair's geometry set to a centred, boxed digit, so
the penalty's operations still run: the difference is the arithmetic, not the graph), the fraction of all
pairs the group bounds leave to score against what exact per-left bounds would leave, and how many of the
kept pairs could enter their row's top-33 at all (learned part >= the row's 33rd best exact score).
Writes benchmarks/results/head-probe-NAME.json.
"""

from __future__ import annotations

import argparse
import json
import statistics
import time
from pathlib import Path

import numpy as np
import onnx
import onnxruntime as ort
import torch

from amphisbaena.datasets import load_split
from amphisbaena.engines.select import BackendChoice
from amphisbaena.export.onnx_export import model_from_onnx
from amphisbaena.halves import make_halves
from amphisbaena.model_files import load_model_files, shipped_model_dir
from amphisbaena.runtime.features import both_arms
from amphisbaena.runtime.pruning import PRUNE_FLOOR, GeometryPruner, score_upper_bounds

HERE = Path(__file__).resolve().parent


class LearnedOnly(torch.nn.Module):
    def __init__(self, head: torch.nn.Module) -> None:
        super().__init__()
        self.head = head

    def forward(self, left: torch.Tensor, right: torch.Tensor) -> torch.Tensor:
        return self.head.learned(left, right)


def tile_milliseconds(path: str, left: np.ndarray, right: np.ndarray, repeats: int = 30) -> float:
    options = ort.SessionOptions()
    options.log_severity_level = 3
    session = ort.InferenceSession(path, options)
    timings = []
    for _ in range(repeats):
        started = time.perf_counter()
        session.run(None, {"left": left, "right": right})
        timings.append(1000 * (time.perf_counter() - started))
    return statistics.median(timings)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--model-dir", type=Path, default=shipped_model_dir("mnist"))
    parser.add_argument("--name", default="mnist-student")
    args = parser.parse_args()
    files = load_model_files(args.model_dir)
    backend, _ = BackendChoice(precision="fp32").create(files)
    left, right, _ = make_halves(load_split("test")[0], seed=0)
    fl, fr = both_arms(backend, left, right)
    tile_left, tile_right = fl[:256], fr[:2700]
    model, _ = model_from_onnx(files)
    learned_path = str(Path("/tmp") / "amphisbaena-learned-only.onnx")
    dims = {"left": {0: "tl"}, "right": {0: "tr"}, "scores": {0: "tl", 1: "tr"}}
    example = (torch.zeros(4, fl.shape[1]), torch.zeros(3, fl.shape[1]))
    torch.onnx.export(LearnedOnly(model.head), example, learned_path, input_names=["left", "right"], output_names=["scores"], dynamic_axes=dims, opset_version=18, dynamo=False)
    report = {
        "model": str(args.model_dir),
        "head_tile_ms": tile_milliseconds(str(files.path("head")), tile_left, tile_right),
        "learned_only_tile_ms": tile_milliseconds(learned_path, tile_left, tile_right),
        "head_graph_nodes": len(onnx.load(str(files.path("head"))).graph.node),
    }
    pruner = GeometryPruner(backend, fl, fr)
    kept_by_groups = sum(len(m) * int((u >= PRUNE_FLOOR).sum()) for m, u in zip(pruner.groups, pruner.bounds(pruner.groups)))
    kept_per_left = sum(
        int((score_upper_bounds(pruner.lefts[i : i + 64], pruner.lefts[i : i + 64], pruner.rights, pruner.bound) >= PRUNE_FLOOR).sum())
        for i in range(0, len(fl), 64)
    )
    report["pairs_left_to_score"] = {"group_bounds": kept_by_groups / len(fl) ** 2, "per_left_bounds": kept_per_left / len(fl) ** 2}
    geometry = backend.layout.geometry.start
    neutral_left, neutral_right = fl.copy(), fr.copy()
    neutral_left[:, geometry : geometry + 6] = [1.0, 14.0, 14.0, 4.0, 23.0, 7.0]
    neutral_right[:, geometry : geometry + 6] = [1.0, 14.0, 14.0, 4.0, 23.0, 20.0]
    kept = could_enter = columns_needed = 0
    for index, (members, upper) in enumerate(zip(pruner.groups, pruner.bounds(pruner.groups))):
        if index % 8:
            continue  # every eighth group is enough for a fraction
        cols = np.flatnonzero(upper >= PRUNE_FLOOR)
        exact, learned = backend.head(fl[members], fr[cols]), backend.head(neutral_left[members], neutral_right[cols])
        row_floor = -np.partition(-exact, 32, axis=1)[:, 32]
        enters = learned >= row_floor[:, None]
        kept, could_enter, columns_needed = kept + exact.size, could_enter + int(enters.sum()), columns_needed + len(members) * int(enters.any(axis=0).sum())
    report["kept_pairs_that_could_enter_their_row"] = could_enter / kept
    report["block_columns_a_row_could_use"] = columns_needed / kept
    out = HERE / "results" / f"head-probe-{args.name}.json"
    out.write_text(json.dumps(report, indent=2) + "\n")
    print(json.dumps(report, indent=2))


if __name__ == "__main__":
    main()
