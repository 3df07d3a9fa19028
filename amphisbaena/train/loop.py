"""Training: symmetric in-batch contrastive loss, mined hard-negative batches,
validation by full assignment over a held-out pool, resumable checkpoints."""

from __future__ import annotations

import json
import math
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from scipy.optimize import linear_sum_assignment
from torch.nn import functional as F

from amphisbaena.data import HALF_WIDTH, InputError, load_split, make_halves, split_halves
from amphisbaena.train.model import Amphisbaena, geometry_penalty
from amphisbaena.train.recipe import Recipe

CHECKPOINT = "checkpoint.pt"
HISTORY = "history.jsonl"


@dataclass
class TrainResult:
    model: Amphisbaena
    recipe: Recipe
    val_accuracy: float
    val_size: int
    epochs_done: int


def split_train_val(images: np.ndarray, recipe: Recipe) -> tuple[np.ndarray, np.ndarray]:
    """The last VAL_SIZE digits (after LIMIT) are held out; never the test set."""
    if recipe.limit is not None:
        images = images[: recipe.limit]
    val_size = min(recipe.val_size, len(images) // 5)
    if val_size < 2:
        raise InputError(f"need at least 10 training digits, got {len(images)}")
    return images[:-val_size], images[-val_size:]


def half_turned(images: np.ndarray) -> np.ndarray:
    """Digits turned 180 degrees and shifted one pixel down and right. A centre of mass at c moves to
    28 - c, so one in [13.5, 14.5] stays there, and the box keeps its sides: the turned digit obeys the
    rules the geometry penalty encodes exactly, as long as its first row and column were blank."""
    turned = np.zeros_like(images)
    turned[:, 1:, 1:] = images[:, ::-1, ::-1][:, :-1, :-1]
    return turned


def with_half_turns(images: np.ndarray, labels: np.ndarray, classes: list[int]) -> np.ndarray:
    """IMAGES followed by the half-turned copies of those whose label is in CLASSES and whose first row
    and column are blank (all but 23 of the 60,000 training digits): nothing is cut off."""
    if not classes:
        return images
    chosen = np.isin(labels, classes) & (images[:, 0, :].max(axis=1) == 0) & (images[:, :, 0].max(axis=1) == 0)
    return np.concatenate([images, half_turned(images[chosen])])


def _device_of(module: torch.nn.Module) -> torch.device:
    return next(module.parameters()).device


@torch.no_grad()
def features(arm: torch.nn.Module, halves: np.ndarray, batch: int = 4096) -> torch.Tensor:
    arm.eval()
    device = _device_of(arm)
    return torch.cat([arm(torch.from_numpy(halves[i : i + batch]).to(device)) for i in range(0, len(halves), batch)])


@torch.no_grad()
def score_matrix(model: Amphisbaena, left: np.ndarray, right: np.ndarray, rows: int = 256) -> np.ndarray:
    """All-pairs scores, in row chunks so the per-pair hidden tensor stays small."""
    fl, fr = features(model.left_arm, left), features(model.right_arm, right)
    model.head.eval()
    return torch.cat([model.head(fl[i : i + rows], fr) for i in range(0, len(fl), rows)]).cpu().numpy()


def assignment_accuracy(model: Amphisbaena, images: np.ndarray, seed: int = 0) -> float:
    """Fraction of a shuffled pool restored correctly by a dense optimal assignment."""
    left, right, key = make_halves(images, seed)
    scores = score_matrix(model, left, right)
    rows, cols = linear_sum_assignment(scores, maximize=True)
    return float(np.mean(cols[np.argsort(rows)] == key))


@torch.no_grad()
def hard_batches(model: Amphisbaena, images: np.ndarray, recipe: Recipe, rng: np.random.Generator) -> list[np.ndarray]:
    """Batches of digit indices in which each anchor sits with the digits whose right halves
    the model currently scores highest for its left half, so in-batch negatives are hard.

    The learned part of the head (one GEMM) shortlists 4x the group size; the exact
    score, geometry penalty included, picks the group from the shortlist.
    """
    left, right = split_halves(images)
    fl, fr = features(model.left_arm, left), features(model.right_arm, right)
    g = recipe.model.geometry_start
    config = recipe.model
    n, group = len(images), recipe.hard_group
    confusers = np.empty((n, group), dtype=np.int64)
    for start in range(0, n, 2048):
        rows = torch.arange(start, min(start + 2048, n), device=fl.device)
        upper = model.head.learned(fl[rows], fr)
        upper[torch.arange(len(rows), device=fl.device), rows] = -math.inf
        shortlist = upper.topk(4 * group, dim=1).indices
        penalty = geometry_penalty(fl[rows, None, g:], fr[shortlist][:, :, g:], config.com_weight, config.box_weight)
        exact = upper.gather(1, shortlist) - penalty
        confusers[start : start + len(rows)] = shortlist.gather(1, exact.topk(group, dim=1).indices).cpu().numpy()
    used = np.zeros(n, dtype=bool)
    order: list[int] = []
    for anchor in rng.permutation(n):
        if used[anchor]:
            continue
        members = [anchor] + [c for c in confusers[anchor] if not used[c]]
        used[members] = True
        order.extend(members)
    order_array = np.asarray(order)
    return [order_array[i : i + recipe.batch_size] for i in range(0, n, recipe.batch_size)]


def random_batches(n: int, batch_size: int, rng: np.random.Generator) -> list[np.ndarray]:
    order = rng.permutation(n)
    return [order[i : i + batch_size] for i in range(0, n, batch_size)]


def augment(pixels: torch.Tensor, max_shift: int, generator: torch.Generator) -> torch.Tensor:
    """Shift whole digits (float pixels in 0..255) by whole pixels on both axes before cutting, so
    both halves move together and the new seam is still a true seam; PIXELS itself when off.

    Only the learned path sees the shifted digit: the geometry features, whose rules
    (centre of mass at 14 +- 0.5) a shift would break, come from the unshifted digit.
    """
    if max_shift == 0:
        return pixels
    shifts = torch.randint(-max_shift, max_shift + 1, (len(pixels), 2), generator=generator).to(pixels.device)
    out = torch.empty_like(pixels)
    for dy in range(-max_shift, max_shift + 1):
        for dx in range(-max_shift, max_shift + 1):
            chosen = (shifts[:, 0] == dy) & (shifts[:, 1] == dx)
            out[chosen] = torch.roll(pixels[chosen], (dy, dx), dims=(1, 2))
    return out


def warp(pixels: torch.Tensor, recipe: Recipe, generator: torch.Generator) -> torch.Tensor:
    """Rotate and scale whole digits about the centre by small random amounts (RECIPE.rotate
    degrees, RECIPE.scale fraction), then round to grey levels. The cut comes after the warp, so
    strokes still run continuously across the seam: new pairs, not new noise. Learned path only."""
    if recipe.rotate == 0 and recipe.scale == 0:
        return pixels
    n = len(pixels)
    angle = (torch.rand(n, generator=generator) * 2 - 1) * math.radians(recipe.rotate)
    zoom = 1 + (torch.rand(n, generator=generator) * 2 - 1) * recipe.scale
    cos, sin = torch.cos(angle) / zoom, torch.sin(angle) / zoom
    theta = torch.stack([torch.stack([cos, -sin, torch.zeros(n)], 1), torch.stack([sin, cos, torch.zeros(n)], 1)], 1)
    grid = F.affine_grid(theta.to(pixels.device), (n, 1, 28, 28), align_corners=False)
    warped = F.grid_sample(pixels[:, None], grid, mode="bilinear", padding_mode="zeros", align_corners=False)[:, 0]
    return warped.round().clamp(0, 255)


def contrastive_loss(scores: torch.Tensor) -> torch.Tensor:
    """Symmetric cross-entropy: each left must pick its right among the batch, and vice versa."""
    target = torch.arange(scores.shape[0], device=scores.device)
    return 0.5 * (F.cross_entropy(scores, target) + F.cross_entropy(scores.T, target))


def learning_rate(recipe: Recipe, progress: float) -> float:
    """Linear warm-up, then cosine decay; PROGRESS is measured in epochs."""
    if progress < recipe.warmup_epochs:
        return recipe.learning_rate * progress / recipe.warmup_epochs
    frac = (progress - recipe.warmup_epochs) / max(recipe.epochs - recipe.warmup_epochs, 1e-9)
    return recipe.learning_rate * 0.5 * (1 + math.cos(math.pi * min(frac, 1.0)))


def train(
    recipe: Recipe,
    run_dir: Path,
    data_dir: Path | None = None,
    progress: Callable[[str, int, int], None] | None = None,
    device: str = "cpu",
) -> TrainResult:
    """Train (resuming from RUN_DIR/checkpoint.pt if present) on DEVICE and return the model (on the CPU).
    Checkpoints always hold CPU tensors, so a run started on a GPU can be exported or resumed anywhere."""
    images, labels = load_split("train", data_dir, recipe.dataset)
    train_images, val_images = split_train_val(images, recipe)
    train_images = with_half_turns(train_images, split_train_val(labels, recipe)[0], recipe.half_turn_classes)
    run_dir.mkdir(parents=True, exist_ok=True)
    torch.manual_seed(recipe.seed)

    model = Amphisbaena(recipe.model).to(device)
    optimizer = torch.optim.AdamW(model.parameters(), lr=recipe.learning_rate, weight_decay=recipe.weight_decay)
    start_epoch, val_accuracy = 0, float("nan")
    checkpoint_path = run_dir / CHECKPOINT
    if checkpoint_path.exists():
        state = torch.load(checkpoint_path, weights_only=True, map_location=device)
        if Recipe.from_dict(state["recipe"]).to_dict() != recipe.to_dict():  # from_dict fills options added since
            raise InputError(f"{checkpoint_path}: was written by a different recipe; use another --run-dir")
        model.load_state_dict(state["model"])
        optimizer.load_state_dict(state["optimizer"])
        start_epoch, val_accuracy = state["epoch"], state["val_accuracy"]
    elif recipe.init_from is not None:
        model.load_state_dict(torch.load(recipe.init_from, weights_only=True, map_location=device)["model"])

    for epoch in range(start_epoch, recipe.epochs):
        rng = np.random.default_rng([recipe.seed, epoch])
        torch.manual_seed(recipe.seed * 1000 + epoch)
        generator = torch.Generator().manual_seed(recipe.seed * 1000 + epoch)
        if epoch >= recipe.hard_start_epoch:
            batches = hard_batches(model, train_images, recipe, rng)
        else:
            batches = random_batches(len(train_images), recipe.batch_size, rng)
        model.train()
        started, total_loss = time.perf_counter(), 0.0
        for step, batch in enumerate(batches):
            for group in optimizer.param_groups:
                group["lr"] = learning_rate(recipe, epoch + step / len(batches))
            clean = torch.from_numpy(train_images[batch]).to(device).float()  # one copy to the device per batch
            shifted = warp(augment(clean, recipe.shift, generator), recipe, generator)
            scores = model(
                shifted[:, :, :HALF_WIDTH], shifted[:, :, HALF_WIDTH:],
                geometry_from=(clean[:, :, :HALF_WIDTH], clean[:, :, HALF_WIDTH:]),
            )
            loss = contrastive_loss(scores)
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            total_loss += loss.item()
            if progress is not None:
                progress(f"epoch {epoch + 1}/{recipe.epochs} loss {total_loss / (step + 1):.3f}", step + 1, len(batches))
        val_accuracy = assignment_accuracy(model, val_images)
        record = {
            "epoch": epoch + 1,
            "loss": total_loss / len(batches),
            "val_accuracy": val_accuracy,
            "val_size": len(val_images),
            "seconds": time.perf_counter() - started,
        }
        with open(run_dir / HISTORY, "a") as handle:
            handle.write(json.dumps(record) + "\n")
        if progress is not None:
            progress(f"epoch {epoch + 1}: val assignment accuracy {val_accuracy:.4f} on {len(val_images)}", 0, 0)
        state = {
            "recipe": recipe.to_dict(),
            "model": _to_cpu(model.state_dict()),
            "optimizer": _to_cpu(optimizer.state_dict()),
            "epoch": epoch + 1,
            "val_accuracy": val_accuracy,
            "val_size": len(val_images),
        }
        torch.save(state, run_dir / f"{CHECKPOINT}.tmp")
        (run_dir / f"{CHECKPOINT}.tmp").replace(checkpoint_path)
    model = model.cpu().eval()
    return TrainResult(model, recipe, val_accuracy, len(val_images), recipe.epochs)


def _to_cpu(state):
    """A state dict (nested dicts and lists of tensors) with every tensor on the CPU."""
    if isinstance(state, torch.Tensor):
        return state.cpu()
    if isinstance(state, dict):
        return {key: _to_cpu(value) for key, value in state.items()}
    if isinstance(state, list):
        return [_to_cpu(value) for value in state]
    return state
