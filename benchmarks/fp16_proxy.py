"""CPU proxy for the fp16 TensorRT engines: the fp16 ONNX variant, run by onnxruntime on the CPU over the
full 10,000-digit test set, against the fp32 model on the same halves.

    python benchmarks/fp16_proxy.py            # writes benchmarks/results/fp16_proxy.json
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from amphisbaena.datasets import load_split
from amphisbaena.engines.onnxruntime_backend import OnnxRuntimeBackend
from amphisbaena.halves import make_halves
from amphisbaena.model_files import SHIPPED_MODEL_DIR, load_model_files
from amphisbaena.runtime.restore import restore

HERE = Path(__file__).resolve().parent


def main() -> None:
    left, right, key = make_halves(load_split("test")[0], seed=0)
    report = {}
    pairings = {}
    for precision, directory in (("fp32", SHIPPED_MODEL_DIR), ("fp16", SHIPPED_MODEL_DIR / "fp16")):
        model = load_model_files(directory)
        result = restore(OnnxRuntimeBackend(model), left, right, key)
        pairings[precision] = result.right_for_left
        report[precision] = {"accuracy": result.accuracy, "note": model.manifest["precision_note"], "seconds": result.seconds}
    report["accuracy_change_points"] = 100 * (report["fp16"]["accuracy"] - report["fp32"]["accuracy"])
    report["pairs_that_differ"] = int(np.sum(pairings["fp16"] != pairings["fp32"]))
    (HERE / "results").mkdir(exist_ok=True)
    (HERE / "results" / "fp16_proxy.json").write_text(json.dumps(report, indent=2) + "\n")
    print(json.dumps(report, indent=2))


if __name__ == "__main__":
    main()
