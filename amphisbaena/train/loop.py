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

from amphisbaena.datasets import load_split
from amphisbaena.errors import InputError
from amphisbaena.halves import HALF_WIDTH, make_halves, split_halves
from amphisbaena.train.augment import augment, warp, with_half_turns
from amphisbaena.train.model import Amphisbaena, geometry_penalty
from amphisbaena.train.recipe import Recipe
from amphisbaena.train.writers import writer_disjoint_split, writer_ids_near

CHECKPOINT = "checkpoint.pt"
HISTORY = "history.jsonl"


@dataclass
class TrainResult:
    model: Amphisbaena
    recipe: Recipe
    val_accuracy: float
    val_size: int
    epochs_done: int


def split_train_val(count: int, recipe: Recipe, data_dir: Path | None = None) -> tuple[np.ndarray, np.ndarray]:
    """(training, validation) indices into the first COUNT training digits (after LIMIT); never the test set.

    RECIPE.val_pool "last" holds out the last VAL_SIZE digits; "writers" holds out whole writers (their
    QMNIST ids found beside the training files in DATA_DIR), so no validation digit's writer wrote a
    training digit."""
    if recipe.limit is not None:
        count = min(count, recipe.limit)
    val_size = min(recipe.val_size, count // 5)
    if val_size < 2:
        raise InputError(f"need at least 10 training digits, got {count}")
    if recipe.val_pool == "writers":
        return writer_disjoint_split(writer_ids_near(data_dir)[:count], val_size)
    if recipe.val_pool != "last":
        raise InputError(f"val_pool must be 'last' or 'writers', got {recipe.val_pool!r}")
    return np.arange(count - val_size), np.arange(count - val_size, count)


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
def confusers(head: torch.nn.Module, left: torch.Tensor, right: torch.Tensor, group: int) -> np.ndarray:
    """(N, GROUP) indices: for each digit's left half, the other digits whose right halves HEAD scores
    highest for it (features LEFT and RIGHT of the same N digits, in order).

    The learned part of the head (one GEMM) shortlists 4x the group size; the exact score, geometry
    penalty included, picks the group from the shortlist."""
    g = head.geometry_start
    n = len(left)
    chosen = np.empty((n, group), dtype=np.int64)
    for start in range(0, n, 2048):
        rows = torch.arange(start, min(start + 2048, n), device=left.device)
        upper = head.learned(left[rows], right)
        upper[torch.arange(len(rows), device=left.device), rows] = -math.inf
        shortlist = upper.topk(4 * group, dim=1).indices
        penalty = geometry_penalty(left[rows, None, g:], right[shortlist][:, :, g:], head.com_weight, head.box_weight)
        exact = upper.gather(1, shortlist) - penalty
        chosen[start : start + len(rows)] = shortlist.gather(1, exact.topk(group, dim=1).indices).cpu().numpy()
    return chosen


def grouped_batches(confused: np.ndarray, batch_size: int, rng: np.random.Generator) -> list[np.ndarray]:
    """Batches of digit indices in which each anchor (in random order) sits with those of its CONFUSED
    digits not yet placed, so in-batch negatives are hard."""
    used = np.zeros(len(confused), dtype=bool)
    order: list[int] = []
    for anchor in rng.permutation(len(confused)):
        if used[anchor]:
            continue
        members = [anchor] + [c for c in confused[anchor] if not used[c]]
        used[members] = True
        order.extend(members)
    order_array = np.asarray(order)
    return [order_array[i : i + batch_size] for i in range(0, len(order_array), batch_size)]


def random_batches(n: int, batch_size: int, rng: np.random.Generator) -> list[np.ndarray]:
    order = rng.permutation(n)
    return [order[i : i + batch_size] for i in range(0, n, batch_size)]


def contrastive_loss(scores: torch.Tensor) -> torch.Tensor:
    """Symmetric cross-entropy: each left must pick its right among the batch, and vice versa."""
    target = torch.arange(scores.shape[0], device=scores.device)
    return 0.5 * (F.cross_entropy(scores, target) + F.cross_entropy(scores.T, target))


def distillation_loss(scores: torch.Tensor, teacher_scores: torch.Tensor, temperature: float) -> torch.Tensor:
    """KL(teacher || student) of the in-batch row distributions (each left over the batch's rights) and
    column distributions (each right over the lefts), averaged, times temperature^2 so its gradient
    keeps its size as the temperature changes (Hinton et al., 2015). Scores: (B, B), pair i, i true."""

    def kl(student: torch.Tensor, teacher: torch.Tensor) -> torch.Tensor:
        return F.kl_div(F.log_softmax(student / temperature, dim=1), F.log_softmax(teacher / temperature, dim=1), reduction="batchmean", log_target=True)

    return 0.5 * temperature**2 * (kl(scores, teacher_scores) + kl(scores.T, teacher_scores.T))


def learning_rate(recipe: Recipe, progress: float) -> float:
    """Linear warm-up, then cosine decay; PROGRESS is measured in epochs."""
    if progress < recipe.warmup_epochs:
        return recipe.learning_rate * progress / recipe.warmup_epochs
    frac = (progress - recipe.warmup_epochs) / max(recipe.epochs - recipe.warmup_epochs, 1e-9)
    return recipe.learning_rate * 0.5 * (1 + math.cos(math.pi * min(frac, 1.0)))


class Teacher:
    """A trained model that teaches a student: its features of every training half, computed once,
    the in-batch scores it gives any batch, and the hard negatives it mines (fixed for the whole run)."""

    def __init__(self, model: Amphisbaena, images: np.ndarray, recipe: Recipe, device: str) -> None:
        self.head = model.head.to(device).eval()
        # The student trains against the training-time penalty weights; the teacher's scores must use the same.
        self.head.com_weight, self.head.box_weight = recipe.model.com_weight, recipe.model.box_weight
        left, right = split_halves(images)
        self.left = features(model.left_arm.to(device), left)
        self.right = features(model.right_arm.to(device), right)
        self.confusers = confusers(self.head, self.left, self.right, recipe.hard_group)

    @torch.no_grad()
    def scores(self, batch: np.ndarray) -> torch.Tensor:
        """(B, B) teacher scores of BATCH's lefts against its rights."""
        index = torch.from_numpy(batch).to(self.left.device)
        return self.head(self.left[index], self.right[index])


def train(
    recipe: Recipe,
    run_dir: Path,
    data_dir: Path | None = None,
    progress: Callable[[str, int, int], None] | None = None,
    device: str = "cpu",
    teacher: Amphisbaena | None = None,
    validate_every: int = 1,
) -> TrainResult:
    """Train (resuming from RUN_DIR/checkpoint.pt if present) on DEVICE and return the model (on the CPU).

    With a TEACHER the loss adds `distillation_loss` against it and the teacher mines the hard batches;
    without one the model mines its own from RECIPE.hard_start_epoch on. Checkpoints always hold CPU tensors, so a run
    started on a GPU can be exported or resumed anywhere. Validation (a full assignment over the held-out pool,
    on the CPU) runs every VALIDATE_EVERY epochs and after the last; it does not change the training."""
    images, labels = load_split("train", data_dir, recipe.dataset)
    train_index, val_index = split_train_val(len(images), recipe, data_dir)
    val_images = images[val_index]
    train_images = with_half_turns(images[train_index], labels[train_index], recipe.half_turn_classes)
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
    taught = Teacher(teacher, train_images, recipe, device) if teacher is not None and start_epoch < recipe.epochs else None

    for epoch in range(start_epoch, recipe.epochs):
        rng = np.random.default_rng([recipe.seed, epoch])
        torch.manual_seed(recipe.seed * 1000 + epoch)
        generator = torch.Generator().manual_seed(recipe.seed * 1000 + epoch)
        if taught is not None:
            batches = grouped_batches(taught.confusers, recipe.batch_size, rng)
        elif epoch >= recipe.hard_start_epoch:
            model.eval()
            confused = confusers(model.head, *(features(arm, half) for arm, half in zip((model.left_arm, model.right_arm), split_halves(train_images))), recipe.hard_group)
            batches = grouped_batches(confused, recipe.batch_size, rng)
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
            if taught is not None:
                loss = loss + recipe.distill_weight * distillation_loss(scores, taught.scores(batch), recipe.distill_temperature)
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            total_loss += loss.item()
            if progress is not None:
                progress(f"epoch {epoch + 1}/{recipe.epochs} loss {total_loss / (step + 1):.3f}", step + 1, len(batches))
        record = {"epoch": epoch + 1, "loss": total_loss / len(batches), "seconds": time.perf_counter() - started}
        if (epoch + 1) % validate_every == 0 or epoch + 1 == recipe.epochs:
            val_accuracy = assignment_accuracy(model, val_images)
            record.update(val_accuracy=val_accuracy, val_size=len(val_images))
        with open(run_dir / HISTORY, "a") as handle:
            handle.write(json.dumps(record) + "\n")
        if progress is not None and "val_accuracy" in record:
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
