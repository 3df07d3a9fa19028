"""ONNX -> TensorRT engines, cached by everything that makes an engine valid.

TensorRT 10.12+ and 11 build strongly typed networks: precision comes from the
ONNX graph itself, so an fp16 engine is built from the fp16 ONNX variant that
`export --fp16` writes (and that onnxruntime can run on a CPU as a proxy).

An engine is only valid for the TensorRT version, GPU model and compute
capability it was built on, and for the exact ONNX bytes and precision: all of
them go into the cache key, and a cached engine whose recorded key differs is
rebuilt, never loaded.
"""

from __future__ import annotations

import hashlib
import json
import os
from dataclasses import asdict, dataclass
from pathlib import Path

from amphisbaena.files import atomic_path
from amphisbaena.model_files import ARMS, MODEL_FILES, load_model_files
from amphisbaena.shapes import ARM_BATCH, TILE_COLS, TILE_ROWS, TOPK, TOPK_TILE

WORKSPACE_BYTES = 2 << 30


class EngineUnavailable(Exception):
    """No engine can be built or run here; the message says why in one line."""


@dataclass(frozen=True)
class Device:
    tensorrt: str
    gpu: str
    compute_capability: str


def profile_shapes(name: str, feature_size: int) -> dict[str, tuple[tuple[int, ...], tuple[int, ...], tuple[int, ...]]]:
    """min / opt / max shape of each input of graph NAME, matching how the runtime calls it (`shapes`):
    arm batches up to ARM_BATCH halves, head tiles of TILE_ROWS x TILE_COLS features (or TILE_COLS x
    TILE_ROWS when a column block is scored), head_topk tiles of TOPK_TILE."""
    if name in ARMS:
        return {"halves": ((1, 28, 14), (ARM_BATCH, 28, 14), (ARM_BATCH, 28, 14))}
    if name == "head_topk":  # a top-k of TOPK needs tiles at least TOPK tall and wide
        return {
            "left": ((TOPK, feature_size), (TOPK_TILE, feature_size), (TOPK_TILE, feature_size)),
            "right": ((TOPK, feature_size), (TOPK_TILE, feature_size), (TOPK_TILE, feature_size)),
        }
    return {
        "left": ((1, feature_size), (TILE_ROWS, feature_size), (TILE_COLS, feature_size)),
        "right": ((1, feature_size), (TILE_COLS, feature_size), (TILE_COLS, feature_size)),
    }


def engine_key(device: Device, onnx_sha256: str, precision: str, shapes: dict) -> dict:
    """Everything an engine depends on; its hash names the cache file."""
    return {**asdict(device), "onnx_sha256": onnx_sha256, "precision": precision, "profile": {k: [list(s) for s in v] for k, v in shapes.items()}}


def key_digest(key: dict) -> str:
    return hashlib.sha256(json.dumps(key, sort_keys=True).encode()).hexdigest()[:20]


def default_cache_dir() -> Path:
    return Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache")) / "amphisbaena" / "engines"


def tensorrt_device() -> tuple[object, Device]:
    """(tensorrt module, the GPU it would build for), or EngineUnavailable with the reason."""
    try:
        import tensorrt as trt
    except Exception as exc:  # noqa: BLE001  (missing package, or bindings without libnvinfer)
        raise EngineUnavailable(f"tensorrt cannot be imported ({exc.__class__.__name__}: {str(exc).splitlines()[0][:120]})") from None
    try:
        import pycuda.driver as cuda

        cuda.init()
        if cuda.Device.count() == 0:
            raise EngineUnavailable("no CUDA GPU is visible")
        gpu = cuda.Device(0)
        major, minor = gpu.compute_capability()
    except EngineUnavailable:
        raise
    except Exception as exc:  # noqa: BLE001  (pycuda missing, no driver, no device)
        raise EngineUnavailable(f"no usable CUDA GPU through pycuda ({exc.__class__.__name__}: {str(exc).splitlines()[0][:120]})") from None
    return trt, Device(trt.__version__, gpu.name(), f"{major}.{minor}")


def build_engine(trt, onnx_path: Path, shapes: dict, timing_cache: Path) -> bytes:
    """One serialized engine from one ONNX file, with an explicit optimisation profile and a
    persistent timing cache shared by every build on this machine."""
    logger = trt.Logger(trt.Logger.WARNING)
    builder = trt.Builder(logger)
    flags = 0
    if hasattr(trt.NetworkDefinitionCreationFlag, "STRONGLY_TYPED"):  # required on 10.x, implied on 11.x
        flags |= 1 << int(trt.NetworkDefinitionCreationFlag.STRONGLY_TYPED)
    network = builder.create_network(flags)
    parser = trt.OnnxParser(network, logger)
    if not parser.parse(onnx_path.read_bytes()):
        errors = "; ".join(str(parser.get_error(i)) for i in range(parser.num_errors))
        raise RuntimeError(f"{onnx_path}: TensorRT cannot parse it: {errors}")
    config = builder.create_builder_config()
    config.set_memory_pool_limit(trt.MemoryPoolType.WORKSPACE, WORKSPACE_BYTES)
    profile = builder.create_optimization_profile()
    for name, (smallest, optimal, largest) in shapes.items():
        profile.set_shape(name, smallest, optimal, largest)
    config.add_optimization_profile(profile)
    cache = config.create_timing_cache(timing_cache.read_bytes() if timing_cache.is_file() else b"")
    config.set_timing_cache(cache, False)
    plan = builder.build_serialized_network(network, config)
    if plan is None:
        raise RuntimeError(f"{onnx_path}: TensorRT failed to build an engine")
    with atomic_path(timing_cache) as tmp:
        tmp.write_bytes(bytes(config.get_timing_cache().serialize()))
    return bytes(plan)


def build_engines(model_dir: Path, cache_dir: Path | None = None) -> dict[str, Path]:
    """Engines for every graph of MODEL_DIR, built or reused from the cache; returns their paths."""
    trt, device = tensorrt_device()
    model = load_model_files(model_dir)
    cache_dir = Path(cache_dir) if cache_dir is not None else default_cache_dir()
    cache_dir.mkdir(parents=True, exist_ok=True)
    paths = {}
    for name, filename in MODEL_FILES.items():
        shapes = profile_shapes(name, model.feature_size)
        key = engine_key(device, model.manifest["sha256"][filename], model.manifest["precision"], shapes)
        engine_path = cache_dir / f"{name}-{key_digest(key)}.engine"
        key_path = engine_path.with_suffix(".json")
        if not (engine_path.is_file() and key_path.is_file() and json.loads(key_path.read_text()) == key):
            plan = build_engine(trt, model.path(name), shapes, cache_dir / f"timing-{device.compute_capability}.cache")
            with atomic_path(engine_path) as tmp:
                tmp.write_bytes(plan)
            with atomic_path(key_path) as tmp:
                tmp.write_text(json.dumps(key, indent=2, sort_keys=True))
        paths[name] = engine_path
    return paths
