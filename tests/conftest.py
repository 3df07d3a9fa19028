from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest

SHARED_MNIST = Path(__file__).resolve().parents[2] / "shared" / "datasets" / "mnist"


@pytest.fixture(scope="session")
def mnist_dir() -> Path:
    """The real MNIST idx files: $AMPHISBAENA_DATA (set by .ci/run), else ../shared beside the repo."""
    directory = Path(os.environ.get("AMPHISBAENA_DATA", SHARED_MNIST))
    if not (directory / "t10k-images-idx3-ubyte.gz").exists() and not (directory / "t10k-images-idx3-ubyte").exists():
        pytest.fail(f"MNIST idx files not found in {directory}; set AMPHISBAENA_DATA")
    return directory


@pytest.fixture(scope="session")
def test_digits(mnist_dir: Path) -> np.ndarray:
    from amphisbaena.datasets import load_split

    return load_split("test", mnist_dir)[0]


@pytest.fixture(scope="module")
def shipped():
    """The shipped MNIST model on onnxruntime's CPU provider (fp32)."""
    from amphisbaena.engines.onnxruntime_backend import OnnxRuntimeBackend
    from amphisbaena.model_files import load_model_files

    return OnnxRuntimeBackend(load_model_files())


class NumpyBackend:
    """Features are the flattened halves projected at random; the head is a bilinear form plus a relu term."""

    name = "numpy"
    precision = "fp32"
    topk = None  # no in-graph top-k: stream_candidates filters whole tiles
    layout = None  # not Amphisbaena's head: nothing to prune
    model = None  # no model files behind it
    any_thread = True

    def __init__(self, seed: int = 0, dim: int = 24, hidden: int = 4, sharpness: float = 1.0) -> None:
        rng = np.random.default_rng(seed)
        self.projection = {side: rng.normal(size=(28 * 14, dim)).astype(np.float32) / 40 for side in ("left", "right")}
        self.hidden = hidden
        self.feature_size = dim
        self.out = rng.normal(size=hidden).astype(np.float32)
        self.sharpness = sharpness
        self.head_calls = 0

    def arm(self, side: str, halves: np.ndarray) -> np.ndarray:
        return halves.reshape(len(halves), -1).astype(np.float32) / 255 @ self.projection[side]

    def head(self, left: np.ndarray, right: np.ndarray, beside_host: bool = False) -> np.ndarray:
        self.head_calls += 1
        h = self.hidden
        bilinear = left[:, h:] @ right[:, h:].T
        pairwise = np.maximum(left[:, None, :h] + right[None, :, :h], 0) @ self.out
        return (self.sharpness * bilinear + pairwise).astype(np.float32)


def halves_file(path: Path, digits: np.ndarray, seed: int) -> Path:
    """DIGITS cut and shuffled with SEED, written as a halves npz at PATH (no key)."""
    from amphisbaena.files import save_npz
    from amphisbaena.halves import make_halves

    left, right, _ = make_halves(digits, seed=seed)
    save_npz(path, left=left, right=right)
    return path


def random_halves(n: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    return rng.integers(0, 256, (n, 28, 14), dtype=np.uint8), rng.integers(0, 256, (n, 28, 14), dtype=np.uint8)


class DeviceTopKBackend(NumpyBackend):
    """NumpyBackend plus a head_topk that reduces each tile to its best TOPK per row and column,
    as head_topk.onnx does on a GPU."""

    topk = 7

    def head_topk(self, left: np.ndarray, right: np.ndarray):
        assert len(left) >= self.topk and len(right) >= self.topk  # the graph's contract
        scores = self.head(left, right)
        rows = np.argsort(-scores, axis=1, kind="stable")[:, : self.topk]
        cols = np.argsort(-scores.T, axis=1, kind="stable")[:, : self.topk]
        return np.take_along_axis(scores, rows, 1), rows, np.take_along_axis(scores.T, cols, 1), cols
