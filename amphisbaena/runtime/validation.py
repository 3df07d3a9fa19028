"""Validating an exported variant through its own graphs: the accuracy of a full restore of a held-out
pool, and the no-partner threshold calibrated on it. `export` records both in the variant's manifest."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from amphisbaena.engines.onnxruntime_backend import OnnxRuntimeBackend
from amphisbaena.halves import make_halves
from amphisbaena.model_files import load_model_files
from amphisbaena.progress import Progress
from amphisbaena.runtime.calibrate import calibrate_no_partner
from amphisbaena.runtime.restore import restore


def validate_variant(directory: Path, images: np.ndarray, progress: Progress | None = None) -> tuple[float, dict]:
    """(assignment accuracy, no-partner calibration) of the model in DIRECTORY on held-out IMAGES (N, 28, 28)."""
    backend = OnnxRuntimeBackend(load_model_files(directory))
    left, right, key = make_halves(images, seed=0)
    accuracy = float(restore(backend, left, right, key, progress=progress).accuracy)
    return accuracy, calibrate_no_partner(backend, images, progress=progress)
