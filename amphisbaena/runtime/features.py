"""Arm features: each half runs through its arm exactly once; every later stage reuses the features."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor

import numpy as np

from amphisbaena.engines.base import Backend
from amphisbaena.progress import Progress, Stage
from amphisbaena.shapes import ARM_BATCH


def arm_features(backend: Backend, side: str, halves: np.ndarray, batch: int = ARM_BATCH, stage: Stage | None = None) -> np.ndarray:
    """(N, D) float32 features of every half of SIDE ((N, 28, 14) uint8), computed in batches and kept
    for all later tiles: each arm runs once per half. STAGE hears each batch's halves."""
    parts = []
    for start in range(0, len(halves), batch):
        parts.append(backend.arm(side, halves[start : start + batch]))
        if stage is not None:
            stage.advance(len(parts[-1]))
    return np.ascontiguousarray(np.concatenate(parts), dtype=np.float32)


def both_arms(backend: Backend, left: np.ndarray, right: np.ndarray, progress: Progress | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Features of the lefts and of the rights; the two arms run side by side where the backend
    allows threads (onnxruntime gives each arm half of its threads)."""
    with (progress or Progress()).stage("arms: halves", total=len(left) + len(right)) as stage:
        if not backend.any_thread:
            return arm_features(backend, "left", left, stage=stage), arm_features(backend, "right", right, stage=stage)
        with ThreadPoolExecutor(max_workers=1) as worker:
            right_features = worker.submit(arm_features, backend, "right", right, ARM_BATCH, stage)
            return arm_features(backend, "left", left, stage=stage), right_features.result()
