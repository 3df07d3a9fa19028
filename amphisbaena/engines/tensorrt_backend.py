"""TensorRT backend (tensorrt + pycuda): the same Backend interface on an NVIDIA GPU.

Per graph: one execution context, device buffers allocated once at the
profile's largest shapes, page-locked host buffers, one CUDA stream with
asynchronous copies; named I/O tensors (`set_input_shape`, `set_tensor_address`,
`execute_async_v3`) as in TensorRT 10 and 11.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from amphisbaena.engines.tensorrt_build import build_engines, tensorrt_device
from amphisbaena.model_files import MODEL_FILES, ModelFiles


class _Graph:
    """One engine with its context and its preallocated host and device buffers."""

    def __init__(self, trt, cuda, runtime, engine_path: Path) -> None:
        self.cuda = cuda
        self.engine = runtime.deserialize_cuda_engine(engine_path.read_bytes())
        if self.engine is None:
            raise RuntimeError(f"{engine_path}: TensorRT cannot deserialize it")
        self.context = self.engine.create_execution_context()
        self.inputs, self.outputs = [], []
        self.host, self.device = {}, {}
        for index in range(self.engine.num_io_tensors):
            name = self.engine.get_tensor_name(index)
            dtype = np.dtype(trt.nptype(self.engine.get_tensor_dtype(name)))
            if self.engine.get_tensor_mode(name) == trt.TensorIOMode.INPUT:
                self.inputs.append(name)
                largest = tuple(self.engine.get_tensor_profile_shape(name, 0)[2])
            else:
                self.outputs.append(name)
                largest = None
            self.host[name] = (dtype, largest)
        # Outputs are sized from the largest inputs once, by asking the context.
        for name in self.inputs:
            self.context.set_input_shape(name, self.host[name][1])
        for name in self.outputs:
            self.host[name] = (self.host[name][0], tuple(self.context.get_tensor_shape(name)))
        for name, (dtype, shape) in list(self.host.items()):
            buffer = cuda.pagelocked_empty(int(np.prod(shape)), dtype)
            self.device[name] = cuda.mem_alloc(buffer.nbytes)
            self.context.set_tensor_address(name, int(self.device[name]))
            self.host[name] = buffer

    def run(self, stream, feeds: dict[str, np.ndarray]) -> np.ndarray:
        return self.run_all(stream, feeds)[0]

    def run_all(self, stream, feeds: dict[str, np.ndarray]) -> list[np.ndarray]:
        """Every output, in the engine's order, copied back once the stream has finished."""
        for name, array in feeds.items():
            staged = self.host[name][: array.size].reshape(array.shape)
            np.copyto(staged, array, casting="same_kind")
            self.context.set_input_shape(name, array.shape)
            self.cuda.memcpy_htod_async(self.device[name], staged, stream)
        if not self.context.execute_async_v3(stream.handle):
            raise RuntimeError("TensorRT execution failed")
        results = []
        for output in self.outputs:
            shape = tuple(self.context.get_tensor_shape(output))
            result = self.host[output][: int(np.prod(shape))].reshape(shape)
            self.cuda.memcpy_dtoh_async(result, self.device[output], stream)
            results.append(result)
        stream.synchronize()
        return [np.array(result) for result in results]


class TensorRTBackend:
    """Engines from the engine cache (built on first use), run on GPU 0."""

    name = "tensorrt"
    any_thread = False  # pycuda's context is current only on the thread that imported autoprimaryctx

    def __init__(self, model: ModelFiles, engine_cache: Path | None = None) -> None:
        trt, _ = tensorrt_device()
        import pycuda.autoprimaryctx  # noqa: F401  (retains the device's primary context)
        import pycuda.driver as cuda

        paths = build_engines(model.directory, engine_cache)
        runtime = trt.Runtime(trt.Logger(trt.Logger.WARNING))
        self.graphs = {name: _Graph(trt, cuda, runtime, paths[name]) for name in MODEL_FILES}
        self.stream = cuda.Stream()
        self.precision = model.manifest.get("precision", "fp32")
        self.feature_size = model.feature_size
        self.topk = model.topk
        self.layout = model.layout
        self.model = model

    def arm(self, side: str, halves: np.ndarray) -> np.ndarray:
        return self.graphs[side].run(self.stream, {"halves": halves})

    def head(self, left: np.ndarray, right: np.ndarray, beside_host: bool = False) -> np.ndarray:
        return self.graphs["head"].run(self.stream, {"left": left, "right": right})

    def head_topk(self, left: np.ndarray, right: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
        """Only the candidates cross back to the host: 2 x (Tl + Tr) x topk values, not Tl x Tr."""
        graph = self.graphs["head_topk"]
        by_name = dict(zip(graph.outputs, graph.run_all(self.stream, {"left": left, "right": right})))
        return by_name["row_scores"], by_name["row_partners"], by_name["col_scores"], by_name["col_partners"]
