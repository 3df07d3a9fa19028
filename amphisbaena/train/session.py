"""One `train` command from request to printed lines: the recipe, its checks, the run with progress."""

from __future__ import annotations

import json
import sys
from dataclasses import dataclass, field
from pathlib import Path

from amphisbaena.datasets import check_dataset_name
from amphisbaena.errors import InputError
from amphisbaena.train.model import Amphisbaena
from amphisbaena.train.recipe import Recipe


@dataclass(frozen=True)
class Teacher:
    """A model to distil from, and the sha256 of the graphs it was read from (recorded in the recipe)."""

    directory: Path
    model: Amphisbaena
    sha256: dict[str, str]


@dataclass(frozen=True)
class TrainRequest:
    """What `amphisbaena train` was asked for. OVERRIDES: recipe fields set on the command line (None: keep)."""

    run_dir: Path = Path("runs/mnist")
    dataset: str = "mnist"
    recipe_file: Path | None = None
    overrides: dict = field(default_factory=dict)
    device: str = "cpu"
    data_dir: Path | None = None
    validate_every: int = 1


def recipe_for(request: TrainRequest, teacher: Teacher | None) -> Recipe:
    """The dataset's default recipe, with the recipe file and then the command line laid over it."""
    recipe = Recipe.for_dataset(check_dataset_name(request.dataset))
    if request.recipe_file is not None:
        try:
            recipe = recipe.with_overrides(json.loads(request.recipe_file.read_text()))
        except (OSError, ValueError, TypeError, AttributeError) as exc:
            raise InputError(f"{request.recipe_file}: not a usable recipe file ({exc})") from None
    values = request.overrides
    if values.get("epochs") is not None and values["epochs"] < 1:
        raise InputError(f"--epochs must be at least 1, got {values['epochs']}")
    if values.get("limit") is not None and values["limit"] < 50:
        raise InputError(f"--limit must be at least 50 digits, got {values['limit']}")
    if values.get("init_from") is not None and not Path(values["init_from"]).is_file():
        raise InputError(f"{values['init_from']}: --init-from checkpoint does not exist")
    for name, value in values.items():
        if value is not None:
            setattr(recipe, name, str(value) if name == "init_from" else value)
    if teacher is not None:
        recipe.teacher, recipe.teacher_sha256 = str(teacher.directory), teacher.sha256
    return recipe


def run_training(request: TrainRequest, teacher: Teacher | None = None) -> list[str]:
    """Train (or resume) with progress on a terminal's stderr; return the lines to print."""
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

    from amphisbaena.train.loop import train

    if request.run_dir.exists() and not request.run_dir.is_dir():
        raise InputError(f"{request.run_dir}: --run-dir exists and is not a directory")
    recipe = recipe_for(request, teacher)
    if request.validate_every < 1:
        raise InputError(f"--validate-every must be at least 1, got {request.validate_every}")
    device = torch_device(request.device)
    columns = (TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn())
    with Progress(*columns, disable=not sys.stderr.isatty()) as bar:
        task = bar.add_task("training", total=None)

        def report(message: str, done: int, total: int) -> None:
            if total == 0:
                bar.console.print(message)
            else:
                bar.update(task, description=message, completed=done, total=total)

        model = None if teacher is None else teacher.model
        result = train(recipe, request.run_dir, request.data_dir, report, device=device, teacher=model, validate_every=request.validate_every)
    return [
        f"trained {result.epochs_done} epochs; validation assignment accuracy {result.val_accuracy:.4f} on {result.val_size} held-out training digits",
        f"wrote {request.run_dir / 'checkpoint.pt'} and {request.run_dir / 'history.jsonl'}",
    ]


def torch_device(name: str) -> str:
    """NAME if torch can train on it here; else a one-line error."""
    import torch

    try:
        device = torch.device(name)
    except RuntimeError:
        raise InputError(f"--device {name!r} is not a torch device") from None
    if device.type == "cuda" and not torch.cuda.is_available():
        raise InputError(f"--device {name}: torch here has no usable CUDA device")
    return name
