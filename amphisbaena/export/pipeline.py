"""The export pipeline: trained weights -> validated ONNX variants (fp32, fp16, int8) -> TensorRT engines.

Each variant is validated on its own: the held-out pool is restored through that variant's own graphs
with onnxruntime, and its manifest records that figure, beside the PyTorch fp32 figure of training.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from amphisbaena.datasets import load_split
from amphisbaena.engines.tensorrt_build import EngineUnavailable, build_engines
from amphisbaena.errors import InputError
from amphisbaena.export.manifest import record_calibration, record_validation
from amphisbaena.export.onnx_export import (
    RESTORE_BOX_WEIGHT,
    RESTORE_COM_WEIGHT,
    export_onnx,
    half_precision_copy,
    model_from_onnx,
    parity,
    with_penalty_weights,
)
from amphisbaena.export.quantize import feature_drift, quantize_arms
from amphisbaena.halves import make_halves
from amphisbaena.model_files import FP16, FP32, INT8, load_model_files
from amphisbaena.train.loop import CHECKPOINT, assignment_accuracy, split_train_val
from amphisbaena.train.model import Amphisbaena
from amphisbaena.train.recipe import Recipe
from amphisbaena.train.session import Teacher

# Restores a held-out pool through an exported variant's own graphs: (directory, images) ->
# (assignment accuracy, no-partner calibration). The runtime provides it (`runtime.validation`); export
# does not import the runtime, which comes after it.
Validator = Callable[[Path, np.ndarray], tuple[float, dict]]


@dataclass
class Weights:
    """What export starts from: the model, its recipe, the validation recorded in training, and for
    a re-export where the weights first came from."""

    model: Amphisbaena
    recipe: Recipe
    val_accuracy: float
    val_size: int
    weights_from: dict | None = None


def weights_from_checkpoint(run_dir: Path) -> Weights:
    """The weights of RUN_DIR's checkpoint."""
    checkpoint = run_dir / CHECKPOINT
    if not checkpoint.is_file():
        raise InputError(f"{checkpoint}: no checkpoint; run 'amphisbaena train --run-dir {run_dir}' first")
    try:
        state = torch.load(checkpoint, weights_only=True, map_location="cpu")
        recipe = Recipe.from_dict(state["recipe"])
        model = Amphisbaena(recipe.model)
        model.load_state_dict(state["model"])
        return Weights(model, recipe, float(state["val_accuracy"]), int(state["val_size"]))
    except Exception as exc:  # noqa: BLE001  (torch.load raises many types for a file that is not a checkpoint)
        raise InputError(f"{checkpoint}: not a usable checkpoint ({exc.__class__.__name__})") from None


def weights_from_export(model_dir: Path) -> Weights:
    """The weights of an exported fp32 model directory (its recorded recipe and validation), and the
    export that first produced them out of training."""
    files = load_model_files(model_dir)
    model, recipe = model_from_onnx(files)
    validation = files.manifest.get("validation", {})
    weights_from = files.manifest.get("weights_from") or {"exported": files.manifest.get("created"), "sha256": files.manifest["sha256"]}
    accuracy = float(validation.get("assignment_accuracy_training_weights", float("nan")))
    return Weights(model, recipe, accuracy, int(validation.get("pool_size", recipe.val_size)), weights_from)


def load_teacher(model_dir: Path) -> Teacher:
    """The fp32 (or fp16) model in MODEL_DIR as a teacher for distillation (its weights recovered exactly)."""
    files = load_model_files(model_dir)
    return Teacher(model_dir, model_from_onnx(files, allow_fp16=True)[0], files.manifest["sha256"])


@dataclass(frozen=True)
class ExportRequest:
    """What `amphisbaena export` was asked for: weights from RUN_DIR's checkpoint or the fp32 model
    FROM_MODEL, written to OUT_DIR in fp32 and PRECISIONS, with restore-time PENALTY_WEIGHTS."""

    run_dir: Path
    out_dir: Path
    from_model: Path | None = None
    precisions: tuple[str, ...] = ()
    penalty_weights: tuple[float | None, float | None] = (None, None)
    engines: bool = True
    engine_cache: Path | None = None
    data_dir: Path | None = None


def run_export(request: ExportRequest, say: Callable[[str], None], validate: Validator | None = None) -> list[Path]:
    """Load the weights, find their validation pool, export every variant (`export_model`)."""
    if request.out_dir.exists() and not request.out_dir.is_dir():
        raise InputError(f"{request.out_dir}: --out-dir exists and is not a directory")
    weights = weights_from_export(request.from_model) if request.from_model is not None else weights_from_checkpoint(request.run_dir)
    val_images, split = validation_pool(weights.recipe, request.data_dir)
    return export_model(
        weights, request.out_dir, val_images, split, request.precisions, request.penalty_weights, request.engines, request.engine_cache, say, validate
    )


def validation_pool(recipe: Recipe, data_dir: Path | None) -> tuple[np.ndarray, str]:
    """The held-out training digits of RECIPE (never the test set), and how they were chosen."""
    images, _ = load_split("train", data_dir, recipe.dataset)
    pool = images[split_train_val(len(images), recipe, data_dir)[1]]
    return pool, "train (held out, writer-disjoint)" if recipe.val_pool == "writers" else "train (held out)"


def export_model(
    weights: Weights,
    out_dir: Path,
    val_images: np.ndarray,
    split: str,
    precisions: tuple[str, ...] = (FP32,),
    penalty_weights: tuple[float | None, float | None] = (None, None),
    engines: bool = True,
    engine_cache: Path | None = None,
    say: Callable[[str], None] = lambda line: None,
    validate: Validator | None = None,
) -> list[Path]:
    """Write WEIGHTS as ONNX variants of PRECISIONS into OUT_DIR (fp32) and its subdirectories, each
    checked for parity, validated on VAL_IMAGES through its own graphs and calibrated (VALIDATE); then TensorRT
    engines where a GPU is present. SAY hears one line per step. Returns the directories written."""
    geometry_on = weights.recipe.model.com_weight > 0 or weights.recipe.model.box_weight > 0  # off for Fashion-MNIST
    com_weight, box_weight = penalty_weights
    model = with_penalty_weights(
        weights.model,
        (RESTORE_COM_WEIGHT if geometry_on else 0.0) if com_weight is None else com_weight,
        (RESTORE_BOX_WEIGHT if geometry_on else 0.0) if box_weight is None else box_weight,
    )
    validation = {
        "split": split,
        "pool_size": len(val_images),
        "assignment_accuracy_training_weights": weights.val_accuracy,
        "assignment_accuracy_torch_fp32": assignment_accuracy(model, val_images),
    }
    say(f"validation on {len(val_images)} held-out training digits, PyTorch fp32: {validation['assignment_accuracy_torch_fp32']:.4f}")
    left, right, _ = make_halves(val_images[-512:], seed=1)
    written = []
    for precision in (FP32, *[p for p in precisions if p != FP32]):
        directory = out_dir if precision == FP32 else out_dir / precision
        if precision == INT8:
            manifest = quantize_arms(out_dir, directory)
            check, diffs = "arm features max abs diff vs fp32", feature_drift(out_dir, directory, left, right)
        else:
            manifest = export_onnx(model, directory, weights.recipe.to_dict(), validation, fp16=precision == FP16, weights_from=weights.weights_from)
            check, diffs = "parity max abs diff vs PyTorch", parity(half_precision_copy(model) if precision == FP16 else model, directory, left, right)
        say(f"wrote {manifest['precision']} model to {directory} ({check}: " + ", ".join(f"{name} {value:.2e}" for name, value in diffs.items()) + ")")
        if validate is None:
            written.append(directory)
            continue
        accuracy, calibration = validate(directory, val_images)
        record_validation(directory, {**validation, "assignment_accuracy": accuracy, "measured_with": f"these {precision} graphs, onnxruntime CPU"})
        say(f"  {precision} validation assignment accuracy: {accuracy:.4f}")
        record_calibration(directory, "no_partner", {**calibration, "split": split})
        say(f"  no-partner score {calibration['score']:.3f}: precision {calibration['precision']:.4f}, recall {calibration['recall']:.4f}")
        written.append(directory)
    if engines:
        for directory in written:
            if load_model_files(directory).manifest["precision"] == INT8:
                continue  # onnxruntime CPU operators: no TensorRT engine
            try:
                built = build_engines(directory, engine_cache)
            except EngineUnavailable as reason:
                say(f"no TensorRT engine built: {reason}")
                break
            say("TensorRT engines: " + ", ".join(str(path) for path in built.values()))
    return written
