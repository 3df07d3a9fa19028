"""Where a scored pair's cost goes: the head's learned part, its geometry penalty, and the stream's bookkeeping.

    python benchmarks/head_ops.py [--size 10000] [--runs 20]

On SIZE halves (the test set up to 10,000, else the training set) with the shipped MNIST model, in one
process: the pruned stream's blocks (each group of lefts against the rights its bound keeps) are run
through the head with onnxruntime's profiler on one thread (the session the stream's workers use), RUNS
times, and each operator's kernel time is put to one of the two parts of `train.model.PairHead`'s score:

* learned: the matrix products and the per-half square terms (the nodes the final Sub's first input
  depends on);
* penalty: the geometry penalty (the nodes only its second input depends on), all elementwise over the
  block, and the final Sub.

Beside it, on the same blocks and one thread, the two bookkeeping steps of each block in a worker:
each left's best k + 1 (`topk.best_of_each_row`) and the rights' offer (`topk.block_offer`, with every
right fresh: an upper figure). Writes benchmarks/results/head-ops-SIZE.json with nanoseconds per pair.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path

import numpy as np
import onnx
import onnxruntime as ort

import amphisbaena as amph
from amphisbaena.runtime.features import both_arms
from amphisbaena.runtime.pruning import PRUNE_FLOOR, GeometryPruner
from amphisbaena.runtime.topk import best_of_each_row, block_offer
from amphisbaena.shapes import DEFAULT_K

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
from bench_api import commit
from matchers import real_halves


def penalty_nodes(graph: onnx.GraphProto) -> set[str]:
    """Names of the nodes that only the final Sub's second input (the penalty) depends on, and that Sub."""
    producer = {output: node for node in graph.node for output in node.output}

    def ancestors(tensor: str) -> set[str]:
        seen, pending = set(), [tensor]
        while pending:
            node = producer.get(pending.pop())
            if node is not None and node.name not in seen:
                seen.add(node.name)
                pending.extend(node.input)
        return seen

    final = producer[graph.output[0].name]
    return (ancestors(final.input[1]) - ancestors(final.input[0])) | {final.name}


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--size", type=int, default=10_000)
    parser.add_argument("--runs", type=int, default=20)
    args = parser.parse_args()
    backend = amph.load().backend
    left_features, right_features = both_arms(backend, *real_halves(args.size))
    pruner = GeometryPruner(backend, left_features, right_features)
    blocks = [(left_features[m], right_features[np.flatnonzero(upper >= PRUNE_FLOOR)]) for m, upper in zip(pruner.groups, pruner.bounds(pruner.groups))]
    pairs = sum(len(a) * len(b) for a, b in blocks)

    head_bytes = backend.model.read("head")
    graph = onnx.load_from_string(head_bytes).graph
    in_penalty = penalty_nodes(graph)
    op_of = {node.name: node.op_type for node in graph.node}
    options = ort.SessionOptions()
    options.intra_op_num_threads = 1
    options.add_session_config_entry("session.intra_op.allow_spinning", "0")
    options.enable_profiling = True
    with tempfile.TemporaryDirectory() as scratch:
        options.profile_file_prefix = str(Path(scratch) / "head")
        session = ort.InferenceSession(head_bytes, options, providers=["CPUExecutionProvider"])
        wall = []
        for _ in range(args.runs):
            start = time.perf_counter()
            for tile_left, tile_right in blocks:
                session.run(None, {"left": tile_left, "right": tile_right})
            wall.append(time.perf_counter() - start)
        events = json.loads(Path(session.end_profiling()).read_text())
    by_part: Counter[str] = Counter()
    by_op: Counter[str] = Counter()
    for event in events:
        if event.get("cat") != "Node" or not event["name"].endswith("_kernel_time"):
            continue
        node = event["name"][: -len("_kernel_time")]
        op = event["args"]["op_name"]
        # onnxruntime fuses MatMul + Add into Gemm under a new name: a matrix product is the learned part's
        part = "penalty" if node in in_penalty else "learned" if node in op_of or op in ("Gemm", "MatMul", "FusedGemm") else "other"
        by_part[part] += event["dur"]
        by_op[f"{part}: {op}"] += event["dur"]
    per_pair_ns = {part: round(1e3 * micros / (args.runs * pairs), 2) for part, micros in by_part.items()}

    count = DEFAULT_K + 1
    scored = [backend.head(tile_left, tile_right) for tile_left, tile_right in blocks]
    bookkeeping = {}
    for name, step in {
        "best_of_each_row": lambda s: best_of_each_row(s, count),
        "block_offer (every right fresh)": lambda s: block_offer(s, np.full(s.shape[1], -np.inf, dtype=np.float32), count),
    }.items():
        times = []
        for _ in range(max(3, args.runs // 4)):
            start = time.perf_counter()
            for block in scored:
                step(block)
            times.append(time.perf_counter() - start)
        bookkeeping[name] = round(1e9 * statistics.median(times) / pairs, 2)

    result = {
        "halves": args.size,
        "runs": args.runs,
        "commit": commit(),
        "onnxruntime": ort.__version__,
        "blocks": len(blocks),
        "pairs_in_blocks": pairs,
        "head_wall_ns_per_pair_one_thread_median": round(1e9 * statistics.median(wall) / pairs, 2),
        "head_kernel_ns_per_pair_by_part": per_pair_ns,
        "head_kernel_ns_per_pair_by_operator": {key: round(1e3 * value / (args.runs * pairs), 3) for key, value in by_op.most_common()},
        "bookkeeping_ns_per_pair_one_thread": bookkeeping,
    }
    out = HERE / "results" / f"head-ops-{args.size}.json"
    out.write_text(json.dumps(result, indent=2) + "\n")
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
