"""The command line: parse, call one function, print. Bad input -> one line on stderr, exit 2."""

from __future__ import annotations

import functools
import json
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Annotated

import numpy as np
import typer

from amphisbaena.data import (
    InputError,
    atomic_group,
    join_halves,
    load_halves,
    load_images_idx,
    load_key,
    load_split,
    make_halves,
    verify_checksums,
    write_npz,
)

app = typer.Typer(
    help="Restore MNIST digits from shuffled left and right halves.",
    add_completion=False,
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    rich_markup_mode=None,
)

DataDir = Annotated[Path | None, typer.Option("--data-dir", help="MNIST idx files (default: $AMPHISBAENA_DATA, then a cache dir; downloaded if missing)")]
ModelDir = Annotated[Path | None, typer.Option("--model-dir", help="Model directory (default: the shipped MNIST model)")]


class _Settings:
    debug = False


@app.callback()
def _global_options(
    debug: Annotated[bool, typer.Option("--debug", help="Show full tracebacks instead of one-line errors")] = False,
) -> None:
    _Settings.debug = debug


def _describe(exc: BaseException) -> str:
    if isinstance(exc, OSError) and exc.strerror:
        return f"{exc.filename}: {exc.strerror}" if exc.filename else exc.strerror
    if isinstance(exc, MemoryError):
        return "out of memory"
    return str(exc) or exc.__class__.__name__


def one_line_errors(command: Callable) -> Callable:
    """Bad input (InputError, unreadable files) -> one line on stderr and exit 2; a failure of the
    run itself (RuntimeError, MemoryError) -> one line and exit 1; --debug shows the traceback."""

    @functools.wraps(command)
    def wrapper(*args, **kwargs):
        try:
            return command(*args, **kwargs)
        except (typer.Exit, typer.Abort):
            raise
        except (InputError, OSError, MemoryError, RuntimeError) as exc:
            if _Settings.debug:
                raise
            typer.echo(f"error: {_describe(exc)}".replace("\n", " "), err=True)
            raise typer.Exit(2 if isinstance(exc, (InputError, OSError)) else 1) from None
        except KeyboardInterrupt:
            typer.echo("error: interrupted", err=True)
            raise typer.Exit(130) from None

    return wrapper


def _require_parent(path: Path) -> None:
    if not path.parent.is_dir():
        raise InputError(f"{path}: directory {path.parent} does not exist")


@app.command("make-halves")
@one_line_errors
def make_halves_command(
    output: Annotated[Path, typer.Option("-o", "--output", help="Halves npz to write (keys left, right)")],
    key: Annotated[Path, typer.Option("--key", help="Answer key npz to write (key right_for_left)")],
    split: Annotated[str, typer.Option(help="MNIST split: test or train")] = "test",
    seed: Annotated[int, typer.Option(help="Shuffle seed")] = 0,
    images: Annotated[Path | None, typer.Option("--images", help="Cut this idx images file instead of a split")] = None,
    count: Annotated[int | None, typer.Option("--count", "-n", help="Use only the first N digits")] = None,
    data_dir: DataDir = None,
) -> None:
    """Cut digits into left and right halves, shuffle both, write halves and key to separate files."""
    _require_parent(output)
    _require_parent(key)
    if output.resolve() == key.resolve():
        raise InputError(f"{output}: the halves and the key must be different files")
    if count is not None and count < 1:
        raise InputError(f"--count must be at least 1, got {count}")
    digits = load_images_idx(images) if images is not None else load_split(split, data_dir)[0]
    digits = digits[:count] if count is not None else digits
    left, right, right_for_left = make_halves(digits, seed)
    with atomic_group(output, key) as (halves_tmp, key_tmp):
        write_npz(halves_tmp, left=left, right=right)
        write_npz(key_tmp, right_for_left=right_for_left)
    typer.echo(f"wrote {len(left)} shuffled halves to {output} and the key to {key}")


@app.command()
@one_line_errors
def restore(
    halves: Annotated[Path, typer.Argument(help="Halves npz with uint8 'left' and 'right' of shape (N, 28, 14)")],
    out: Annotated[Path | None, typer.Option("--out", help="Write right_for_left and restored images here")] = None,
    key: Annotated[Path | None, typer.Option("--key", help="Answer key npz: print the accuracy")] = None,
    grid: Annotated[Path | None, typer.Option("--grid", help="Write a PNG grid of the first restored digits")] = None,
    model_dir: ModelDir = None,
    threads: Annotated[int | None, typer.Option(help="onnxruntime intra-op threads (default: all cores)")] = None,
    backend: Annotated[str, typer.Option(help="auto, tensorrt, ort-trt, ort-cuda or ort-cpu")] = "auto",
    engine_cache: Annotated[Path | None, typer.Option("--engine-cache", help="TensorRT engine cache directory")] = None,
    assignment: Annotated[str, typer.Option(help="sparse: top-k candidates, proven optimal; dense: full matrix")] = "sparse",
    k: Annotated[int, typer.Option("--k", help="Candidates kept per left and per right (sparse)")] = 16,
    as_json: Annotated[bool, typer.Option("--json", help="Print a JSON summary")] = False,
) -> None:
    """Pair every left half with its right half using the model and a global assignment."""
    from amphisbaena.engines.select import CHOICES, create_backend
    from amphisbaena.export.manifest import load_model_files
    from amphisbaena.runtime.png import digit_grid, write_png
    from amphisbaena.runtime.restore import restore as run_restore

    if backend not in CHOICES:
        raise InputError(f"--backend must be one of {', '.join(CHOICES)}, got {backend!r}")
    if assignment not in ("sparse", "dense"):
        raise InputError(f"--assignment must be 'sparse' or 'dense', got {assignment!r}")
    if k < 1:
        raise InputError(f"--k must be at least 1, got {k}")
    for target in (out, grid):
        if target is not None:
            _require_parent(target)
    left, right = load_halves(halves)
    answer = load_key(key, len(left)) if key is not None else None
    model = load_model_files(model_dir)
    skipped: list[str] = []
    runner = create_backend(backend, model, threads, engine_cache, notify=skipped.append)
    result = run_restore(runner, left, right, answer, method=assignment, k=k)
    restored = join_halves(left, right, result.right_for_left)
    targets = [target for target in (out, grid) if target is not None]
    with atomic_group(*targets) as temporaries:
        written = dict(zip(targets, temporaries))
        if out is not None:
            write_npz(written[out], right_for_left=result.right_for_left, images=restored, confidence=result.confidence.astype(np.float32))
        if grid is not None:
            write_png(written[grid], digit_grid(restored[:200]))
    if as_json:
        typer.echo(json.dumps({**result.summary(), "backend_fallbacks": skipped}, indent=2))
        return
    report = result.assignment
    typer.echo(f"restored {result.count} pairs with {result.backend} ({result.precision})")
    if skipped:
        typer.echo(f"backend auto fell back to {result.backend}: " + "; ".join(skipped))
    if report.method == "sparse":
        typer.echo(f"assignment: sparse on {report.candidate_edges} candidate pairs (k={report.k}), proven optimal for all {result.count}^2 pairs")
    else:
        typer.echo("assignment: dense" + (f" ({report.fallback_reason})" if report.fallback_reason else ""))
    typer.echo("seconds: " + ", ".join(f"{stage} {value:.2f}" for stage, value in result.seconds.items()))
    if result.accuracy is not None:
        typer.echo(f"accuracy: {result.accuracy:.4f} ({int(result.correct.sum())}/{result.count})")
        typer.echo("accuracy of the most confident: " + ", ".join(f"{row['coverage']:.0%} {row['accuracy']:.4f}" for row in result.accuracy_by_coverage()))


@app.command()
@one_line_errors
def train(
    run_dir: Annotated[Path, typer.Option("--run-dir", help="Checkpoints and history; an existing run resumes")] = Path("runs/mnist"),
    epochs: Annotated[int | None, typer.Option(help="Override the recipe's epochs")] = None,
    limit: Annotated[int | None, typer.Option(help="Use only the first N training digits (smoke runs)")] = None,
    seed: Annotated[int | None, typer.Option(help="Override the recipe's seed")] = None,
    init_from: Annotated[Path | None, typer.Option("--init-from", help="Start from this checkpoint's weights")] = None,
    learning_rate: Annotated[float | None, typer.Option(help="Override the recipe's peak learning rate")] = None,
    data_dir: DataDir = None,
) -> None:
    """Train the two arms and the head on the MNIST training set (never the test set)."""
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

    from amphisbaena.train.loop import train as run_training
    from amphisbaena.train.recipe import Recipe

    if epochs is not None and epochs < 1:
        raise InputError(f"--epochs must be at least 1, got {epochs}")
    if limit is not None and limit < 50:
        raise InputError(f"--limit must be at least 50 digits, got {limit}")
    if run_dir.exists() and not run_dir.is_dir():
        raise InputError(f"{run_dir}: --run-dir exists and is not a directory")
    recipe = Recipe()
    if init_from is not None and not init_from.is_file():
        raise InputError(f"{init_from}: --init-from checkpoint does not exist")
    overrides = {"epochs": epochs, "limit": limit, "seed": seed, "learning_rate": learning_rate}
    overrides["init_from"] = str(init_from) if init_from is not None else None
    for name, value in overrides.items():
        if value is not None:
            setattr(recipe, name, value)
    columns = (TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn())
    with Progress(*columns, disable=not sys.stderr.isatty()) as bar:
        task = bar.add_task("training", total=None)

        def report(message: str, done: int, total: int) -> None:
            if total == 0:
                bar.console.print(message)
            else:
                bar.update(task, description=message, completed=done, total=total)

        result = run_training(recipe, run_dir, data_dir, report)
    typer.echo(f"trained {result.epochs_done} epochs; validation assignment accuracy {result.val_accuracy:.4f} on {result.val_size} held-out training digits")


@app.command()
@one_line_errors
def export(
    run_dir: Annotated[Path, typer.Option("--run-dir", help="Training run to export")] = Path("runs/mnist"),
    out_dir: Annotated[Path, typer.Option("--out-dir", help="Where the ONNX models and manifest go")] = Path("runs/mnist/model"),
    fp16: Annotated[bool, typer.Option("--fp16", help="Also write fp16 ONNX variants (OUT_DIR/fp16) and build fp16 TensorRT engines")] = False,
    com_weight: Annotated[float | None, typer.Option(help="Restore-time centre-of-mass penalty weight (default: chosen on validation)")] = None,
    box_weight: Annotated[float | None, typer.Option(help="Restore-time bounding-box penalty weight (default: chosen on validation)")] = None,
    engines: Annotated[bool, typer.Option("--engines/--no-engines", help="Build TensorRT engines where a GPU and tensorrt are present")] = True,
    engine_cache: Annotated[Path | None, typer.Option("--engine-cache", help="TensorRT engine cache (default: a user cache dir)")] = None,
    data_dir: DataDir = None,
) -> None:
    """Export the left arm, right arm and head as ONNX models, check parity with PyTorch, build TensorRT engines."""
    import torch

    from amphisbaena.export.onnx_export import (
        RESTORE_BOX_WEIGHT,
        RESTORE_COM_WEIGHT,
        export_onnx,
        half_precision_copy,
        parity,
        with_penalty_weights,
    )
    from amphisbaena.export.tensorrt_build import EngineUnavailable, build_engines
    from amphisbaena.train.loop import CHECKPOINT, assignment_accuracy, split_train_val
    from amphisbaena.train.model import Amphisbaena
    from amphisbaena.train.recipe import Recipe

    checkpoint = run_dir / CHECKPOINT
    if not checkpoint.is_file():
        raise InputError(f"{checkpoint}: no checkpoint; run 'amphisbaena train --run-dir {run_dir}' first")
    if out_dir.exists() and not out_dir.is_dir():
        raise InputError(f"{out_dir}: --out-dir exists and is not a directory")
    try:
        state = torch.load(checkpoint, weights_only=True)
        recipe = Recipe.from_dict(state["recipe"])
        model = Amphisbaena(recipe.model)
        model.load_state_dict(state["model"])
        val_accuracy, val_size = float(state["val_accuracy"]), int(state["val_size"])
    except Exception as exc:  # noqa: BLE001  (torch.load raises many types for a file that is not a checkpoint)
        raise InputError(f"{checkpoint}: not a usable checkpoint ({exc.__class__.__name__})") from None
    images, _ = load_split("train", data_dir, recipe.dataset)
    model = with_penalty_weights(
        model,
        RESTORE_COM_WEIGHT if com_weight is None else com_weight,
        RESTORE_BOX_WEIGHT if box_weight is None else box_weight,
    )
    val_images = split_train_val(images, recipe)[1]
    validation = {
        "split": "train (held out)",
        "pool_size": val_size,
        "assignment_accuracy_training_weights": val_accuracy,
        "assignment_accuracy": assignment_accuracy(model, val_images),
    }
    typer.echo(f"validation assignment accuracy on {val_size} held-out training digits: {validation['assignment_accuracy']:.4f} (training-time weights: {val_accuracy:.4f})")
    left, right, _ = make_halves(val_images[-512:], seed=1)
    variants = [(out_dir, False)] + ([(out_dir / "fp16", True)] if fp16 else [])
    for directory, half in variants:
        manifest = export_onnx(model, directory, recipe.to_dict(), validation, fp16=half)
        diffs = parity(half_precision_copy(model) if half else model, directory, left, right)
        typer.echo(f"exported {manifest['precision']} {', '.join(manifest['sha256'])} to {directory}")
        typer.echo("  parity max abs diff vs PyTorch: " + ", ".join(f"{name} {value:.2e}" for name, value in diffs.items()))
    if not engines:
        return
    for directory, half in variants:
        try:
            built = build_engines(directory, engine_cache)
        except EngineUnavailable as reason:
            typer.echo(f"no TensorRT engine built: {reason}")
            break
        typer.echo(f"TensorRT {'fp16' if half else 'fp32'} engines: " + ", ".join(str(path) for path in built.values()))


@app.command("check-data")
@one_line_errors
def check_data(data_dir: DataDir = None) -> None:
    """Verify the md5 of each MNIST idx file."""
    results = verify_checksums(data_dir)
    for name, ok in results.items():
        typer.echo(f"{'ok ' if ok else 'BAD'} {name}")
    if not all(results.values()):
        raise typer.Exit(1)


def main() -> None:
    app()


if __name__ == "__main__":
    main()
