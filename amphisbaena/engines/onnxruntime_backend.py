"""onnxruntime backends: the CPU fallback that CI and CPU-only users run, and CUDA / TensorRT
execution providers where onnxruntime-gpu and a GPU are present."""

from __future__ import annotations

import os
from functools import partial

import numpy as np
import onnxruntime as ort

from amphisbaena.errors import InputError
from amphisbaena.model_files import ARMS, MODEL_FILES, ModelFiles

PROVIDERS = {
    "ort-cpu": ["CPUExecutionProvider"],
    "ort-cuda": ["CUDAExecutionProvider", "CPUExecutionProvider"],
    "ort-trt": ["TensorrtExecutionProvider", "CUDAExecutionProvider", "CPUExecutionProvider"],
}


class ProviderUnavailable(Exception):
    """The requested execution provider cannot run here; the message says why."""


class OnnxRuntimeBackend:
    """One InferenceSession per graph, created once and reused for every batch and tile."""

    any_thread = True  # InferenceSession.run is thread-safe and releases the GIL

    def __init__(self, model: ModelFiles, threads: int | None = None, name: str = "ort-cpu") -> None:
        self.name = name
        providers = PROVIDERS[name]
        if providers[0] not in ort.get_available_providers():
            raise ProviderUnavailable(f"onnxruntime here has no {providers[0]} (install onnxruntime-gpu)")
        threads = threads or os.cpu_count() or 1
        options = self._options(threads)
        self.precision = model.manifest.get("precision", "fp32")
        self.feature_size = model.feature_size
        # Each tile's top-k is reduced inside the graph (head_topk): on a GPU only candidates cross
        # back to the host, on a CPU the reduction runs multithreaded instead of in numpy.
        self.topk = model.topk
        self.layout = model.layout
        self.model = model
        # The runtime runs the two arms side by side (scoring.both_arms): each gets half the threads.
        arm_options = self._options(max(1, threads // 2))
        # head_topk serves only the unpruned stream, so its session is made when first used.
        self.sessions = {
            graph: self._session(model, graph, arm_options if graph in ARMS else options, providers) for graph in MODEL_FILES if graph != "head_topk"
        }
        self._topk_session = partial(self._session, model, "head_topk", options, providers)
        # Head calls that run in a worker while the host digests the last result (`overlap.one_ahead`) get
        # one thread fewer on the CPU: with every core, onnxruntime's threads and numpy take turns on the
        # cores, and a parallel step waits for its slowest thread (docs/performance.md).
        self.head_beside_host = (
            self._session(model, "head", self._options(threads - 1), providers) if name == "ort-cpu" and threads > 1 else self.sessions["head"]
        )
        active = self.sessions["head"].get_providers()[0]
        if active != providers[0]:  # onnxruntime silently falls back when the device is missing
            raise ProviderUnavailable(f"{providers[0]} is installed but inactive (no usable GPU); onnxruntime fell back to {active}")

    @staticmethod
    def _options(threads: int) -> ort.SessionOptions:
        options = ort.SessionOptions()
        options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        options.intra_op_num_threads = threads
        options.inter_op_num_threads = 1
        options.log_severity_level = 3
        # Threads that spin between runs would steal the cores the numpy work between runs needs.
        options.add_session_config_entry("session.intra_op.allow_spinning", "0")
        return options

    @staticmethod
    def _session(model: ModelFiles, graph: str, options: ort.SessionOptions, providers: list[str]) -> ort.InferenceSession:
        try:
            return ort.InferenceSession(model.read(graph), options, providers=providers)
        except Exception as exc:  # noqa: BLE001  (onnxruntime raises its own types for unreadable graphs)
            raise InputError(f"{model.path(graph)}: onnxruntime cannot load it ({str(exc).splitlines()[0][:200]})") from None

    def arm(self, side: str, halves: np.ndarray) -> np.ndarray:
        return self.sessions[side].run(None, {"halves": halves})[0]

    def head(self, left: np.ndarray, right: np.ndarray, beside_host: bool = False) -> np.ndarray:
        session = self.head_beside_host if beside_host else self.sessions["head"]
        return session.run(None, {"left": left, "right": right})[0]

    def head_topk(self, left: np.ndarray, right: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
        if "head_topk" not in self.sessions:
            self.sessions["head_topk"] = self._topk_session()
        return tuple(self.sessions["head_topk"].run(None, {"left": left, "right": right}))
