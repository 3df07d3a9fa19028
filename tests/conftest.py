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
