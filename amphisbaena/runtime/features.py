"""Arm features: each half runs through its arm exactly once; every later stage reuses the features."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor

import numpy as np

from amphisbaena.engines.base import Backend
from amphisbaena.shapes import ARM_BATCH


def arm_features(backend: Backend, side: str, halves: np.ndarray, batch: int = ARM_BATCH) -> np.ndarray:
    """(N, D) float32 features of every half of SIDE ((N, 28, 14) uint8), computed in batches and kept
    for all later tiles: each arm runs once per half."""
    parts = [backend.arm(side, halves[i : i + batch]) for i in range(0, len(halves), batch)]
    return np.ascontiguousarray(np.concatenate(parts), dtype=np.float32)


def both_arms(backend: Backend, left: np.ndarray, right: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Features of the lefts and of the rights; the two arms run side by side where the backend
    allows threads (onnxruntime gives each arm half of its threads)."""
    if not backend.any_thread:
        return arm_features(backend, "left", left), arm_features(backend, "right", right)
    with ThreadPoolExecutor(max_workers=1) as worker:
        right_features = worker.submit(arm_features, backend, "right", right)
        return arm_features(backend, "left", left), right_features.result()
