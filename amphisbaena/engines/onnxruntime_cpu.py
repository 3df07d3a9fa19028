"""onnxruntime backend: the portable fallback that CI and CPU-only users run."""

from __future__ import annotations

import os

import numpy as np
import onnxruntime as ort

from amphisbaena.data import InputError
from amphisbaena.export.manifest import MODEL_FILES, ModelFiles


class OnnxRuntimeBackend:
    """Three InferenceSessions, one per graph, created once and reused for every batch and tile."""

    name = "ort-cpu"

    def __init__(self, model: ModelFiles, threads: int | None = None) -> None:
        options = ort.SessionOptions()
        options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        options.intra_op_num_threads = threads or os.cpu_count() or 1
        options.inter_op_num_threads = 1
        options.log_severity_level = 3
        self.precision = model.manifest.get("precision", "fp32")
        self.feature_size = model.feature_size
        self.geometry = model.geometry
        self.sessions = {name: self._session(model, name, options) for name in MODEL_FILES}

    @staticmethod
    def _session(model: ModelFiles, name: str, options: ort.SessionOptions) -> ort.InferenceSession:
        try:
            return ort.InferenceSession(str(model.path(name)), options, providers=["CPUExecutionProvider"])
        except Exception as exc:  # onnxruntime raises its own exception types for unreadable graphs
            raise InputError(f"{model.path(name)}: onnxruntime cannot load it ({str(exc).splitlines()[0][:200]})") from None

    def arm(self, side: str, halves: np.ndarray) -> np.ndarray:
        return self.sessions[side].run(None, {"halves": halves})[0]

    def head(self, left: np.ndarray, right: np.ndarray) -> np.ndarray:
        return self.sessions["head"].run(None, {"left": left, "right": right})[0]

    def head_bound(self, left: np.ndarray, right: np.ndarray) -> np.ndarray:
        return self.sessions["head_bound"].run(None, {"left": left, "right": right})[0]
