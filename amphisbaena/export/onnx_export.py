"""Torch model -> three ONNX graphs (left arm, right arm, tiled head) + manifest.

The arms take raw uint8 halves so the runtime never converts pixels; the head
takes two feature tiles and returns their score tile, with both tile sizes
dynamic so any tiling the runtime picks works unchanged.
"""

from __future__ import annotations

import copy
import json
import platform
import time
import warnings
from pathlib import Path

import numpy as np
import onnx
import torch
from onnx import numpy_helper

from amphisbaena.errors import InputError
from amphisbaena.files import atomic_path
from amphisbaena.geometry import GEOMETRY_SIZE
from amphisbaena.model_files import FP16, FP32, MANIFEST, MODEL_FILES, ModelFiles, sha256_of
from amphisbaena.shapes import TOPK
from amphisbaena.train.model import Amphisbaena
from amphisbaena.train.recipe import Recipe

OPSET = 18


class _HeadTopK(torch.nn.Module):
    """Exact scores of a tile reduced on the device to the best K of every row and every column:
    (row_scores, row_partners) [Tl, K] and (col_scores, col_partners) [Tr, K], best first. Tiles
    must be at least K wide and K tall."""

    def __init__(self, head: torch.nn.Module, k: int) -> None:
        super().__init__()
        self.head = head
        self.k = k

    def forward(self, left: torch.Tensor, right: torch.Tensor) -> tuple[torch.Tensor, ...]:
        scores = self.head(left, right)
        row_scores, row_partners = scores.topk(self.k, dim=1)
        col_scores, col_partners = scores.t().topk(self.k, dim=1)
        return row_scores, row_partners, col_scores, col_partners


def _export(module: torch.nn.Module, args: tuple, names: list[str], output: str | list[str], dims: dict, path: Path) -> None:
    """One graph to PATH via the legacy TorchScript exporter: small, fully static-typed graphs."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        torch.onnx.export(
            module,
            args,
            str(path),
            input_names=names,
            output_names=[output] if isinstance(output, str) else output,
            dynamic_axes=dims,
            opset_version=OPSET,
            dynamo=False,
        )
    model = onnx.load(str(path))
    onnx.checker.check_model(model, full_check=True)


# Penalty weights of the exported head, chosen on the 5,000-digit validation pool of training digits:
# at restore time near-hard geometry pairs better than the softer weights training uses for its
# gradients (validation 89.3% -> 90.1% at epoch 19 of the shipped run). Never tuned on the test set.
RESTORE_COM_WEIGHT = 1000.0
RESTORE_BOX_WEIGHT = 100.0

FP16_NOTE = "arms' MLP trunks in fp16; geometry features, embedding normalisation and the head in fp32"


def half_precision_copy(model: Amphisbaena) -> Amphisbaena:
    """The model with each arm's MLP trunk in fp16. Kept in fp32, because they are sensitive:
    the geometry features (exact integer extents and moments up to ~3,000 that fp16 would round
    by ~2) and the head (scores of ~10 whose differences decide the assignment)."""
    half = copy.deepcopy(model).eval()
    for arm in (half.left_arm, half.right_arm):
        for module in (arm.stem, arm.blocks, arm.norm, arm.embed, arm.project):
            module.half()
    return half


def with_penalty_weights(model: Amphisbaena, com_weight: float, box_weight: float) -> Amphisbaena:
    """A copy whose head weighs the geometry penalty with the restore-time weights."""
    weighted = copy.deepcopy(model).eval()
    weighted.head.com_weight, weighted.head.box_weight = com_weight, box_weight
    return weighted


def export_onnx(
    model: Amphisbaena,
    out_dir: Path,
    recipe: dict,
    validation: dict,
    fp16: bool = False,
    weights_from: dict | None = None,
) -> dict:
    """Write the ONNX graphs and manifest.json into OUT_DIR; return the manifest.
    MODEL's head carries the penalty weights to export (see `with_penalty_weights`).
    WEIGHTS_FROM records where re-exported weights came from (`model_from_onnx`)."""
    out_dir.mkdir(parents=True, exist_ok=True)
    model = half_precision_copy(model) if fp16 else model.eval()
    d = model.config.feature_size
    halves = torch.zeros(4, 28, 14, dtype=torch.uint8)
    feats = torch.zeros(4, d)
    for side, arm in (("left", model.left_arm), ("right", model.right_arm)):
        with atomic_path(out_dir / MODEL_FILES[side]) as tmp:
            _export(arm, (halves,), ["halves"], "features", {"halves": {0: "n"}, "features": {0: "n"}}, tmp)
    with atomic_path(out_dir / MODEL_FILES["head"]) as tmp:
        _export(
            model.head,
            (feats, feats[:3]),
            ["left", "right"],
            "scores",
            {"left": {0: "tl"}, "right": {0: "tr"}, "scores": {0: "tl", 1: "tr"}},
            tmp,
        )
    with atomic_path(out_dir / MODEL_FILES["head_topk"]) as tmp:
        outputs = ["row_scores", "row_partners", "col_scores", "col_partners"]
        _export(
            _HeadTopK(model.head, TOPK),
            (torch.zeros(TOPK + 3, d), torch.zeros(TOPK + 5, d)),
            ["left", "right"],
            outputs,
            {"left": {0: "tl"}, "right": {0: "tr"}, "row_scores": {0: "tl"}, "row_partners": {0: "tl"}, "col_scores": {0: "tr"}, "col_partners": {0: "tr"}},
            tmp,
        )
    manifest = {
        "format": 1,
        "feature_size": d,
        "embedding": model.config.embedding,
        "head_hidden": model.config.head_hidden,
        "seam_channels": model.config.seam_channels,
        "geometry": {
            "start": d - GEOMETRY_SIZE,
            "size": GEOMETRY_SIZE,
            "com_weight": model.head.com_weight,
            "box_weight": model.head.box_weight,
        },
        "head_topk": TOPK,
        "opset": OPSET,
        "precision": "fp16" if fp16 else "fp32",
        "precision_note": FP16_NOTE if fp16 else "all fp32",
        "recipe": recipe,
        "validation": validation,
        "created": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "torch": torch.__version__,
        "python": platform.python_version(),
        "sha256": {name: sha256_of(out_dir / name) for name in MODEL_FILES.values()},
    }
    if weights_from is not None:
        manifest["weights_from"] = weights_from
    with atomic_path(out_dir / MANIFEST) as tmp:
        tmp.write_text(json.dumps(manifest, indent=2) + "\n")
    return manifest


def _parameters(graph_model: onnx.ModelProto) -> dict[str, torch.Tensor]:
    """Initializers by state-dict name. A bias-free Linear is exported as MatMul with its weight
    transposed under a generated name; the node's name (/module/path/MatMul) gives it back."""
    tensors = {t.name: torch.from_numpy(numpy_helper.to_array(t).copy()) for t in graph_model.graph.initializer}
    parameters = dict(tensors)
    for node in graph_model.graph.node:
        generated = node.op_type == "MatMul" and node.input[1].startswith("onnx::") and node.input[1] in tensors
        if generated and node.name.startswith("/") and node.name.endswith("/MatMul"):
            module = node.name[1 : -len("/MatMul")].replace("/", ".")
            parameters[f"{module}.weight"] = tensors[node.input[1]].T.contiguous()
    return parameters


def model_from_onnx(model_files: ModelFiles, allow_fp16: bool = False) -> tuple[Amphisbaena, Recipe]:
    """The PyTorch model an fp32 model directory was exported from, and its recorded recipe.

    The exporter keeps every parameter as an initializer under its state-dict name, so the weights
    come back exactly. This lets a shipped model be re-exported when the graphs change (a faster
    head, another precision) without retraining it; the head keeps the exported penalty weights.
    With ALLOW_FP16 an fp16 directory gives its fp16 weights widened to fp32: half the bytes to move
    a teacher to a training machine, for a teacher only (a re-export must start from fp32)."""
    precisions = (FP32, FP16) if allow_fp16 else (FP32,)
    if model_files.manifest.get("precision") not in precisions:
        raise InputError(f"{model_files.directory}: needs the {' or '.join(precisions)} model, this one is {model_files.manifest.get('precision')}")
    recipe = Recipe.from_dict(model_files.manifest["recipe"])
    model = Amphisbaena(recipe.model)
    state = {}
    for prefix, graph in (("left_arm.", "left"), ("right_arm.", "right"), ("head.", "head")):
        state.update({prefix + name: tensor.float() for name, tensor in _parameters(onnx.load(str(model_files.path(graph)))).items()})
    wanted = model.state_dict()
    missing = sorted(set(wanted) - set(state))
    if missing:
        raise InputError(f"{model_files.directory}: the graphs lack parameters {', '.join(missing[:3])}; not exported by amphisbaena")
    model.load_state_dict({name: state[name] for name in wanted})
    spec = model_files.geometry
    model.head.com_weight, model.head.box_weight = spec.com_weight, spec.box_weight
    return model.eval(), recipe


@torch.no_grad()
def parity(model: Amphisbaena, model_dir: Path, left: np.ndarray, right: np.ndarray) -> dict[str, float]:
    """Max abs difference between PyTorch and onnxruntime for each graph on the given halves."""
    import onnxruntime as ort

    def session(name: str) -> ort.InferenceSession:
        return ort.InferenceSession(str(model_dir / MODEL_FILES[name]), providers=["CPUExecutionProvider"])

    model = model.eval()
    fl_torch = model.left_arm(torch.from_numpy(left)).numpy()
    fr_torch = model.right_arm(torch.from_numpy(right)).numpy()
    fl_onnx = session("left").run(None, {"halves": left})[0]
    fr_onnx = session("right").run(None, {"halves": right})[0]
    scores_torch = model.head(torch.from_numpy(fl_torch), torch.from_numpy(fr_torch)).numpy()
    scores_onnx = session("head").run(None, {"left": fl_torch, "right": fr_torch})[0]
    topk_scores = session("head_topk").run(["row_scores"], {"left": fl_torch, "right": fr_torch})[0]
    return {
        "left": float(np.abs(fl_torch - fl_onnx).max()),
        "right": float(np.abs(fr_torch - fr_onnx).max()),
        "head": float(np.abs(scores_torch - scores_onnx).max()),
        "head_topk": float(np.abs(np.sort(scores_torch, axis=1)[:, ::-1][:, : topk_scores.shape[1]] - topk_scores).max()),
    }
