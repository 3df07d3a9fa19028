"""The model as files: the ONNX graphs plus a manifest that pins their checksums; reading, verifying,
choosing a precision variant and finding the shipped models.

`export` writes this format; `engines` and the public API read it. It sits below both.

left.onnx and right.onnx are the arms, head.onnx scores feature tiles exactly,
and head_topk.onnx scores a tile and reduces it to the best TOPK of every row
and column inside the graph, so on a GPU only candidates cross back to the host
(and on a CPU the reduction runs multithreaded in onnxruntime, not in numpy).

Torch-free, so the runtime can read and verify a model directory.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field
from pathlib import Path

from amphisbaena.datasets import check_dataset_name
from amphisbaena.errors import InputError
from amphisbaena.geometry import GeometrySpec
from amphisbaena.shapes import TOPK

MODEL_FILES = {
    "left": "left.onnx",
    "right": "right.onnx",
    "head": "head.onnx",
    "head_topk": "head_topk.onnx",
}
ARMS = ("left", "right")  # the graphs that turn halves into features, one per side
MANIFEST = "manifest.json"
FP32, FP16, INT8 = "fp32", "fp16", "int8"
PRECISIONS = (FP32, FP16, INT8)  # a model directory holds fp32; `export --fp16 --int8` adds the others as subdirectories
SHIPPED_MODELS = Path(__file__).resolve().parent / "models"


def shipped_model_dir(dataset: str) -> Path:
    """The model shipped for DATASET (mnist or fashion-mnist)."""
    return SHIPPED_MODELS / dataset


SHIPPED_MODEL_DIR = shipped_model_dir("mnist")


def sha256_of(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


@dataclass(frozen=True)
class FeatureLayout:
    """Where the head's inputs sit in a feature vector: the unit embedding [0, embedding), the
    hidden shares [embedding, geometry.start) and the geometry statistics from geometry.start."""

    embedding: int
    geometry: GeometrySpec


@dataclass(frozen=True)
class ModelFiles:
    """A model directory: paths of the graphs, the manifest's content, and each graph's bytes once read.

    `read` is the one place a graph file is read: it checks the bytes against the manifest's sha256
    and keeps them, so a backend builds its sessions from the same bytes without reading them again."""

    directory: Path
    manifest: dict
    _contents: dict[str, bytes] = field(default_factory=dict, repr=False, compare=False)

    def path(self, name: str) -> Path:
        return self.directory / MODEL_FILES[name]

    def read(self, name: str) -> bytes:
        """The bytes of graph NAME, verified against the manifest (read from disk at most once)."""
        if name not in self._contents:
            path = self.path(name)
            try:
                content = path.read_bytes()
            except OSError as exc:
                raise InputError(f"{path}: cannot read model file ({exc.__class__.__name__})") from None
            if hashlib.sha256(content).hexdigest() != self.manifest["sha256"][MODEL_FILES[name]]:
                raise InputError(f"{path}: sha256 does not match {MANIFEST}; the model files were modified")
            self._contents[name] = content
        return self._contents[name]

    @property
    def feature_size(self) -> int:
        return int(self.manifest["feature_size"])

    @property
    def topk(self) -> int:
        """How many candidates per row and column head_topk.onnx returns."""
        return int(self.manifest.get("head_topk", TOPK))

    @property
    def no_partner_score(self) -> float | None:
        """Calibrated threshold below which a pair is not worth making (None: not calibrated)."""
        calibration = self.manifest.get("no_partner")
        return None if calibration is None else float(calibration["score"])

    @property
    def geometry(self) -> GeometrySpec:
        spec = self.manifest["geometry"]
        return GeometrySpec(int(spec["start"]), float(spec["com_weight"]), float(spec["box_weight"]))

    @property
    def layout(self) -> FeatureLayout:
        return FeatureLayout(int(self.manifest["embedding"]), self.geometry)


def load_model_files(directory: Path | None = None, verify: bool = True) -> ModelFiles:
    """Read DIRECTORY's manifest (default: the shipped MNIST model) and, with VERIFY, read every graph
    and check its sha256 (`ModelFiles.read`); without, graphs are read and checked when first used."""
    directory = Path(directory) if directory is not None else SHIPPED_MODEL_DIR
    manifest_path = directory / MANIFEST
    if not manifest_path.is_file():
        raise InputError(f"{directory}: not a model directory (no {MANIFEST})")
    try:
        manifest = json.loads(manifest_path.read_text())
        expected = manifest["sha256"]
        model = ModelFiles(directory, manifest)
        model.feature_size, model.layout  # noqa: B018  (raise now if the manifest lacks them)
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise InputError(f"{manifest_path}: unreadable manifest ({exc.__class__.__name__}: {exc})") from None
    for name in MODEL_FILES.values():
        path = directory / name
        if not path.is_file():
            raise InputError(f"{directory}: model file {name} is missing")
        if name not in expected:
            raise InputError(f"{manifest_path}: no sha256 recorded for {name}")
    if verify:
        for graph in MODEL_FILES:
            model.read(graph)
    return model


def model_to_run(model_dir: Path | None, dataset: str) -> ModelFiles:
    """MODEL_DIR if given, else the model shipped for DATASET. Its graphs are read (and their checksums
    verified) only when a backend loads them: a run on the int8 variant never reads the fp32 graphs."""
    if model_dir is not None:
        return load_model_files(model_dir, verify=False)
    return load_model_files(shipped_model_dir(check_dataset_name(dataset)), verify=False)


def load_variant(model: ModelFiles, precision: str) -> ModelFiles:
    """MODEL in PRECISION: MODEL itself if it already is, else its subdirectory named PRECISION."""
    if precision not in PRECISIONS:
        raise InputError(f"--precision must be one of {', '.join(PRECISIONS)}, got {precision!r}")
    if model.manifest.get("precision", FP32) == precision:
        return model
    if not has_variant(model, precision):
        raise InputError(f"{model.directory}: no {precision} variant (export it with --{precision})")
    return load_model_files(model.directory / precision)


def has_variant(model: ModelFiles, precision: str) -> bool:
    """Whether MODEL's directory holds a PRECISION variant (a subdirectory with a manifest)."""
    return (model.directory / precision / MANIFEST).is_file()
