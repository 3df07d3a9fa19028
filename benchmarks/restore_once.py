"""One restore in a fresh process, for the scaling curve: prints its timings and its own peak RSS as JSON.

    python benchmarks/restore_once.py --count 10000 --split test
"""

from __future__ import annotations

import argparse
import hashlib
import json
import tempfile
import time
from pathlib import Path

import numpy as np

from amphisbaena.datasets import load_split
from amphisbaena.engines.onnxruntime_backend import OnnxRuntimeBackend
from amphisbaena.engines.select import model_for
from amphisbaena.export.manifest import load_model_files
from amphisbaena.files import save_npz
from amphisbaena.halves import join_halves, load_halves, make_halves
from amphisbaena.runtime.restore import restore


def peak_rss_mb() -> float:
    """VmHWM: this process's own high-water mark (ru_maxrss would include the parent's before exec)."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--count", type=int, required=True)
    parser.add_argument("--split", default="test")
    parser.add_argument("--method", default="sparse")
    parser.add_argument("--threads", type=int, default=None)
    parser.add_argument("--precision", default="auto", help="as restore's --precision (auto: int8 arms where shipped)")
    args = parser.parse_args()

    digits = load_split(args.split)[0][: args.count]
    left, right, key = make_halves(digits, seed=0)
    with tempfile.TemporaryDirectory() as tmp:
        halves_path = Path(tmp) / "halves.npz"
        save_npz(halves_path, left=left, right=right)
        backend = OnnxRuntimeBackend(model_for("ort-cpu", load_model_files(), args.precision), threads=args.threads)
        rss_before = peak_rss_mb()
        started = time.perf_counter()
        left, right = load_halves(halves_path)
        loaded = time.perf_counter()
        result = restore(backend, left, right, key, method=args.method)
        written_at = time.perf_counter()
        save_npz(Path(tmp) / "restored.npz", right_for_left=result.right_for_left, images=join_halves(left, right, result.right_for_left))
        finished = time.perf_counter()
    seconds = {"load": loaded - started, **result.seconds, "write": finished - written_at}
    print(
        json.dumps(
            {
                "count": args.count,
                "split": args.split,
                "method": result.assignment.method,
                "accuracy": result.accuracy,
                "seconds": seconds,
                "total_seconds": finished - started,
                "peak_rss_mb": peak_rss_mb(),
                "rss_before_restore_mb": rss_before,
                "assignment": result.summary()["assignment"],
                "right_for_left_sha": hashlib.sha256(np.ascontiguousarray(result.right_for_left).tobytes()).hexdigest()[:16],
            }
        )
    )


if __name__ == "__main__":
    main()
