"""The command line: parse, call one function, print. Bad input -> one line on stderr, exit 2."""

from __future__ import annotations

import functools
import json
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Annotated, Any, NamedTuple

import numpy as np
import typer

from amphisbaena.data import (
    InputError,
    atomic_group,
    atomic_path,
    drop_partners,
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

Dataset = Annotated[str, typer.Option("--dataset", help="mnist or fashion-mnist")]
DataDir = Annotated[Path | None, typer.Option("--data-dir", help="MNIST idx files (default: $AMPHISBAENA_DATA, then a cache dir; downloaded if missing)")]
ModelDir = Annotated[Path | None, typer.Option("--model-dir", help="Model directory (default: the shipped MNIST model)")]
Precision = Annotated[
    str, typer.Option("--precision", help="auto (int8 arms on ort-cpu where the model has them, else fp32), fp32, fp16 or int8")
]


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


def _check_dataset(dataset: str) -> str:
    from amphisbaena.data import DATASETS

    if dataset not in DATASETS:
        raise InputError(f"--dataset must be one of {', '.join(DATASETS)}, got {dataset!r}")
    return dataset


def _load_model(model_dir: Path | None, dataset: str):
    """--model-dir if given, else the model shipped for --dataset; checksums verified."""
    from amphisbaena.export.manifest import load_model_files, shipped_model_dir

    return load_model_files(model_dir if model_dir is not None else shipped_model_dir(_check_dataset(dataset)))


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
    drop_left: Annotated[float, typer.Option(help="Remove this fraction of the lefts (their rights then have no partner)")] = 0.0,
    drop_right: Annotated[float, typer.Option(help="Remove this fraction of the rights (their lefts then have no partner; key -1)")] = 0.0,
    dataset: Dataset = "mnist",
    data_dir: DataDir = None,
) -> None:
    """Cut digits into left and right halves, shuffle both, write halves and key to separate files."""
    _check_dataset(dataset)
    _require_parent(output)
    _require_parent(key)
    if output.resolve() == key.resolve():
        raise InputError(f"{output}: the halves and the key must be different files")
    if count is not None and count < 1:
        raise InputError(f"--count must be at least 1, got {count}")
    for name, fraction in (("--drop-left", drop_left), ("--drop-right", drop_right)):
        if not 0.0 <= fraction < 1.0:
            raise InputError(f"{name} must lie in [0, 1), got {fraction}")
    digits = load_images_idx(images) if images is not None else load_split(split, data_dir, dataset)[0]
    digits = digits[:count] if count is not None else digits
    left, right, right_for_left = make_halves(digits, seed)
    if drop_left or drop_right:
        left, right, right_for_left = drop_partners(left, right, right_for_left, drop_left, drop_right, seed)
    with atomic_group(output, key) as (halves_tmp, key_tmp):
        write_npz(halves_tmp, left=left, right=right)
        write_npz(key_tmp, right_for_left=right_for_left)
    counts = f"{len(left)}" if len(left) == len(right) else f"{len(left)} left and {len(right)} right"
    typer.echo(f"wrote {counts} shuffled halves to {output} and the key to {key}")


@app.command()
@one_line_errors
def restore(
    halves: Annotated[Path, typer.Argument(help="Halves npz with uint8 'left' and 'right' of shape (N, 28, 14)")],
    out: Annotated[Path | None, typer.Option("--out", help="Write right_for_left and restored images here")] = None,
    key: Annotated[Path | None, typer.Option("--key", help="Answer key npz: print the accuracy")] = None,
    grid: Annotated[Path | None, typer.Option("--grid", help="Write a PNG grid of the first restored digits")] = None,
    report_png: Annotated[Path | None, typer.Option("--report", help="Write a visual report (PNG; needs matplotlib)")] = None,
    model_dir: ModelDir = None,
    threads: Annotated[int | None, typer.Option(help="onnxruntime intra-op threads (default: all cores)")] = None,
    backend: Annotated[str, typer.Option(help="auto, tensorrt, ort-trt, ort-cuda or ort-cpu")] = "auto",
    engine_cache: Annotated[Path | None, typer.Option("--engine-cache", help="TensorRT engine cache directory")] = None,
    assignment: Annotated[str, typer.Option(help="sparse: top-k candidates, proven optimal; dense: full matrix")] = "sparse",
    k: Annotated[int | None, typer.Option("--k", help="Candidates kept per left and per right (sparse; default 32, or 64 above 10,000 halves with geometry pruning)")] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print a JSON summary")] = False,
    dataset: Annotated[str, typer.Option("--dataset", help="Which shipped model: mnist or fashion-mnist (ignored with --model-dir)")] = "mnist",
    allow_unmatched: Annotated[bool, typer.Option("--allow-unmatched", help="Halves may lack a partner and the counts may differ")] = False,
    no_partner_score: Annotated[float | None, typer.Option(help="With --allow-unmatched: make no pair scoring below this (default: the model's calibrated value)")] = None,
    precision: Precision = "auto",
) -> None:
    """Pair every left half with its right half using the model and a global assignment."""
    from amphisbaena.engines.select import check_choice, create_backend
    from amphisbaena.runtime.restore import restore as run_restore

    check_choice(backend, precision)
    if assignment not in ("sparse", "dense"):
        raise InputError(f"--assignment must be 'sparse' or 'dense', got {assignment!r}")
    if k is not None and k < 1:
        raise InputError(f"--k must be at least 1, got {k}")
    for target in (out, grid, report_png):
        if target is not None:
            _require_parent(target)
    if no_partner_score is not None and not np.isfinite(no_partner_score):
        raise InputError(f"--no-partner-score must be a finite number, got {no_partner_score}")
    if allow_unmatched and report_png is not None:
        raise InputError("--report is for one-to-one restores; drop it or --allow-unmatched")
    left, right = load_halves(halves, allow_unequal=allow_unmatched)
    model = _load_model(model_dir, dataset)
    if allow_unmatched:
        answer = load_key(key, len(left), partners=len(right)) if key is not None else None
    else:
        answer = load_key(key, len(left)) if key is not None else None
    skipped: list[str] = []
    runner = create_backend(backend, model, threads, engine_cache, notify=skipped.append, precision=precision)
    if allow_unmatched:
        # The calibration of the variant that runs: int8 arms score slightly differently from fp32.
        threshold = no_partner_score if no_partner_score is not None else runner.model.no_partner_score
        if threshold is None:
            raise InputError(f"{runner.model.directory}: the model has no calibrated no-partner score; pass --no-partner-score")
        _restore_partial(runner, left, right, answer, threshold, k, out, grid, as_json, skipped)
        return
    result = run_restore(runner, left, right, answer, method=assignment, k=k)
    restored = join_halves(left, right, result.right_for_left)

    def draw_report(path: Path) -> None:
        from amphisbaena.runtime.report import write_report

        write_report(path, runner, left, right, result, answer)

    arrays = {"right_for_left": result.right_for_left, "images": restored, "confidence": result.confidence.astype(np.float32)}
    _write_outputs(out, grid, arrays, report_png, draw_report)
    if as_json:
        typer.echo(json.dumps({**result.summary(), "backend_fallbacks": skipped}, indent=2))
        return
    report = result.assignment
    typer.echo(f"restored {result.count} pairs with {result.backend} ({result.precision})")
    if skipped:
        typer.echo(f"backend auto fell back to {result.backend}: " + "; ".join(skipped))
    if report.method == "sparse":
        typer.echo(f"assignment: sparse on {report.candidate_edges} candidate pairs (k={report.k}), proven optimal for all {result.count}^2 pairs")
        if report.scored_pairs is not None:
            typer.echo(f"scored {report.scored_pairs / result.count**2:.1%} of all pairs; the geometry bound rules out the rest")
    else:
        typer.echo("assignment: dense" + (f" ({report.fallback_reason})" if report.fallback_reason else ""))
    typer.echo("seconds: " + ", ".join(f"{stage} {value:.2f}" for stage, value in result.seconds.items()))
    if result.accuracy is not None:
        typer.echo(f"accuracy: {result.accuracy:.4f} ({int(result.correct.sum())}/{result.count})")
        typer.echo("accuracy of the most confident: " + ", ".join(f"{row['coverage']:.0%} {row['accuracy']:.4f}" for row in result.accuracy_by_coverage()))


def _parse_items(items: str | None, count: int) -> np.ndarray:
    if items is None:
        return np.arange(count)
    try:
        chosen = np.array([int(part) for part in items.split(",") if part.strip()], dtype=np.int64)
    except ValueError:
        raise InputError(f"--items must be comma-separated integers, got {items!r}") from None
    if len(chosen) == 0 or chosen.min() < 0 or chosen.max() >= count:
        raise InputError(f"--items must name indices in 0..{count - 1}, got {items!r}")
    return chosen


@app.command()
@one_line_errors
def match(
    halves: Annotated[Path, typer.Argument(help="Halves npz with 'left' and 'right' (counts may differ)")],
    side: Annotated[str, typer.Option(help="Side of the queries: left (pool: the rights) or right (pool: the lefts)")] = "left",
    items: Annotated[str | None, typer.Option(help="Comma-separated query indices (default: every half of SIDE)")] = None,
    k: Annotated[int, typer.Option("--k", help="Partners returned per query")] = 5,
    out: Annotated[Path | None, typer.Option("--out", help="Write query, partners and scores (npz)")] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print the matches as JSON")] = False,
    model_dir: ModelDir = None,
    dataset: Annotated[str, typer.Option("--dataset", help="Which shipped model: mnist or fashion-mnist")] = "mnist",
    backend: Annotated[str, typer.Option(help="auto, tensorrt, ort-trt, ort-cuda or ort-cpu")] = "auto",
    threads: Annotated[int | None, typer.Option(help="onnxruntime intra-op threads (default: all cores)")] = None,
    engine_cache: Annotated[Path | None, typer.Option("--engine-cache", help="TensorRT engine cache directory")] = None,
    precision: Precision = "auto",
) -> None:
    """Top-k partners of single halves among the other side, with scores (no global assignment)."""
    from amphisbaena.engines.select import check_choice, create_backend
    from amphisbaena.runtime.match import OTHER_SIDE, top_partners

    if side not in OTHER_SIDE:
        raise InputError(f"--side must be 'left' or 'right', got {side!r}")
    check_choice(backend, precision)
    if k < 1:
        raise InputError(f"--k must be at least 1, got {k}")
    if out is not None:
        _require_parent(out)
    left, right = load_halves(halves, allow_unequal=True)
    queries, pool = (left, right) if side == "left" else (right, left)
    chosen = _parse_items(items, len(queries))
    model = _load_model(model_dir, dataset)
    runner = create_backend(backend, model, threads, engine_cache, precision=precision)
    partners, scores = top_partners(runner, queries[chosen], pool, side, k)
    if out is not None:
        with atomic_path(out) as tmp:
            write_npz(tmp, query=chosen, partners=partners, scores=scores)
    other = OTHER_SIDE[side]
    if as_json:
        matches = [
            {"query": int(q), "partners": [{other: int(p), "score": round(float(v), 4)} for p, v in zip(ps, vs)]}
            for q, ps, vs in zip(chosen, partners, scores)
        ]
        typer.echo(json.dumps({"side": side, "pool": len(pool), "backend": runner.name, "matches": matches}, indent=2))
        return
    shown = 20
    for q, ps, vs in list(zip(chosen, partners, scores))[:shown]:
        typer.echo(f"{side} {q}: " + ", ".join(f"{other} {p} ({v:.3f})" for p, v in zip(ps, vs)))
    if len(chosen) > shown:
        typer.echo(f"... {len(chosen) - shown} more queries" + (f" in {out}" if out is not None else "; use --out or --json"))


def _write_outputs(
    out: Path | None, grid: Path | None, arrays: dict[str, np.ndarray], report_png: Path | None = None, draw_report=None
) -> None:
    """Every requested output appears together or not at all (see data.atomic_group)."""
    from amphisbaena.runtime.png import digit_grid, write_png

    targets = [target for target in (out, grid, report_png) if target is not None]
    with atomic_group(*targets) as temporaries:
        written = dict(zip(targets, temporaries))
        if out is not None:
            write_npz(written[out], **arrays)
        if grid is not None:
            write_png(written[grid], digit_grid(arrays["images"][:200]))
        if report_png is not None:
            draw_report(written[report_png])


def _restore_partial(runner, left, right, answer, threshold, k, out, grid, as_json, skipped) -> None:
    """restore --allow-unmatched: pairs only where they beat the no-partner score."""
    from amphisbaena.runtime.partial import restore_partial

    result = restore_partial(runner, left, right, threshold, answer, k)
    restored = join_halves(left, right, result.right_for_left)
    _write_outputs(out, grid, {"right_for_left": result.right_for_left, "images": restored, "scores": result.scores.astype(np.float32)})
    summary = result.summary()
    if as_json:
        typer.echo(json.dumps({**summary, "backend_fallbacks": skipped}, indent=2))
        return
    typer.echo(f"{len(left)} lefts, {len(right)} rights: made {summary['pairs_made']} pairs with {result.backend} ({result.precision})")
    typer.echo(
        f"no partner (score below {threshold:.3f}): {len(result.unmatched_left)} lefts, {len(result.unmatched_right)} rights"
    )
    typer.echo("seconds: " + ", ".join(f"{stage} {value:.2f}" for stage, value in result.seconds.items()))
    quality = result.quality()
    if quality is not None:
        typer.echo(
            f"precision {quality['precision']:.4f} ({quality['correct']}/{quality['pairs_made']} pairs made are right), "
            f"recall {quality['recall']:.4f} (of {quality['true_pairs']} true pairs)"
        )


@app.command()
@one_line_errors
def train(
    run_dir: Annotated[Path, typer.Option("--run-dir", help="Checkpoints and history; an existing run resumes")] = Path("runs/mnist"),
    epochs: Annotated[int | None, typer.Option(help="Override the recipe's epochs")] = None,
    limit: Annotated[int | None, typer.Option(help="Use only the first N training digits (smoke runs)")] = None,
    seed: Annotated[int | None, typer.Option(help="Override the recipe's seed")] = None,
    init_from: Annotated[Path | None, typer.Option("--init-from", help="Start from this checkpoint's weights")] = None,
    learning_rate: Annotated[float | None, typer.Option(help="Override the recipe's peak learning rate")] = None,
    dataset: Dataset = "mnist",
    device: Annotated[str, typer.Option(help="torch device to train on: cpu, cuda, cuda:1, ...")] = "cpu",
    data_dir: DataDir = None,
) -> None:
    """Train the two arms and the head on the training set (never the test set)."""
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

    from amphisbaena.train.loop import train as run_training
    from amphisbaena.train.recipe import Recipe

    if epochs is not None and epochs < 1:
        raise InputError(f"--epochs must be at least 1, got {epochs}")
    if limit is not None and limit < 50:
        raise InputError(f"--limit must be at least 50 digits, got {limit}")
    if run_dir.exists() and not run_dir.is_dir():
        raise InputError(f"{run_dir}: --run-dir exists and is not a directory")
    recipe = Recipe.for_dataset(_check_dataset(dataset))
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

        result = run_training(recipe, run_dir, data_dir, report, device=_torch_device(device))
    typer.echo(f"trained {result.epochs_done} epochs; validation assignment accuracy {result.val_accuracy:.4f} on {result.val_size} held-out training digits")


def _torch_device(name: str) -> str:
    import torch

    try:
        device = torch.device(name)
    except RuntimeError:
        raise InputError(f"--device {name!r} is not a torch device") from None
    if device.type == "cuda" and not torch.cuda.is_available():
        raise InputError(f"--device {name}: torch here has no usable CUDA device")
    return name


class _Weights(NamedTuple):
    """What export starts from: the model, its recipe, the validation recorded in training, and for
    a re-export where the weights first came from."""

    model: Any  # amphisbaena.train.model.Amphisbaena (torch is imported only by the commands that need it)
    recipe: Any  # amphisbaena.train.recipe.Recipe
    val_accuracy: float
    val_size: int
    weights_from: dict | None = None


def _model_from_checkpoint(run_dir: Path) -> _Weights:
    """The weights of RUN_DIR's checkpoint."""
    import torch

    from amphisbaena.train.loop import CHECKPOINT
    from amphisbaena.train.model import Amphisbaena
    from amphisbaena.train.recipe import Recipe

    checkpoint = run_dir / CHECKPOINT
    if not checkpoint.is_file():
        raise InputError(f"{checkpoint}: no checkpoint; run 'amphisbaena train --run-dir {run_dir}' first")
    try:
        state = torch.load(checkpoint, weights_only=True, map_location="cpu")
        recipe = Recipe.from_dict(state["recipe"])
        model = Amphisbaena(recipe.model)
        model.load_state_dict(state["model"])
        return _Weights(model, recipe, float(state["val_accuracy"]), int(state["val_size"]))
    except Exception as exc:  # noqa: BLE001  (torch.load raises many types for a file that is not a checkpoint)
        raise InputError(f"{checkpoint}: not a usable checkpoint ({exc.__class__.__name__})") from None


def _model_from_export(model_dir: Path) -> _Weights:
    """The weights of an exported fp32 model directory (its recorded recipe and validation), and the
    export that first produced them out of training."""
    from amphisbaena.export.manifest import load_model_files
    from amphisbaena.export.onnx_export import model_from_onnx

    files = load_model_files(model_dir)
    model, recipe = model_from_onnx(files)
    validation = files.manifest.get("validation", {})
    weights_from = files.manifest.get("weights_from") or {"exported": files.manifest.get("created"), "sha256": files.manifest["sha256"]}
    accuracy = float(validation.get("assignment_accuracy_training_weights", float("nan")))
    return _Weights(model, recipe, accuracy, int(validation.get("pool_size", recipe.val_size)), weights_from)


@app.command()
@one_line_errors
def export(
    run_dir: Annotated[Path, typer.Option("--run-dir", help="Training run to export")] = Path("runs/mnist"),
    out_dir: Annotated[Path, typer.Option("--out-dir", help="Where the ONNX models and manifest go")] = Path("runs/mnist/model"),
    from_model: Annotated[Path | None, typer.Option("--from-model", help="Re-export this fp32 model directory's weights and recipe instead of a training run")] = None,
    fp16: Annotated[bool, typer.Option("--fp16", help="Also write fp16 ONNX variants (OUT_DIR/fp16) and build fp16 TensorRT engines")] = False,
    int8: Annotated[bool, typer.Option("--int8", help="Also write int8 arms for onnxruntime on a CPU (OUT_DIR/int8)")] = False,
    com_weight: Annotated[float | None, typer.Option(help="Restore-time centre-of-mass penalty weight (default: chosen on validation)")] = None,
    box_weight: Annotated[float | None, typer.Option(help="Restore-time bounding-box penalty weight (default: chosen on validation)")] = None,
    engines: Annotated[bool, typer.Option("--engines/--no-engines", help="Build TensorRT engines where a GPU and tensorrt are present")] = True,
    engine_cache: Annotated[Path | None, typer.Option("--engine-cache", help="TensorRT engine cache (default: a user cache dir)")] = None,
    data_dir: DataDir = None,
) -> None:
    """Export the left arm, right arm and head as ONNX models, check parity with PyTorch, build TensorRT engines."""
    from amphisbaena.engines.onnxruntime_backend import OnnxRuntimeBackend
    from amphisbaena.export.manifest import FP16, FP32, INT8, load_model_files, record_calibration
    from amphisbaena.export.onnx_export import (
        RESTORE_BOX_WEIGHT,
        RESTORE_COM_WEIGHT,
        export_onnx,
        half_precision_copy,
        parity,
        with_penalty_weights,
    )
    from amphisbaena.export.quantize import feature_drift, quantize_arms
    from amphisbaena.export.tensorrt_build import EngineUnavailable, build_engines
    from amphisbaena.runtime.calibrate import calibrate_no_partner
    from amphisbaena.train.loop import assignment_accuracy, split_train_val

    if out_dir.exists() and not out_dir.is_dir():
        raise InputError(f"{out_dir}: --out-dir exists and is not a directory")
    model, recipe, val_accuracy, val_size, weights_from = _model_from_export(from_model) if from_model is not None else _model_from_checkpoint(run_dir)
    images, _ = load_split("train", data_dir, recipe.dataset)
    geometry_on = recipe.model.com_weight > 0 or recipe.model.box_weight > 0  # off for Fashion-MNIST
    model = with_penalty_weights(
        model,
        (RESTORE_COM_WEIGHT if geometry_on else 0.0) if com_weight is None else com_weight,
        (RESTORE_BOX_WEIGHT if geometry_on else 0.0) if box_weight is None else box_weight,
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
    variants = [(out_dir, FP32)] + ([(out_dir / FP16, FP16)] if fp16 else []) + ([(out_dir / INT8, INT8)] if int8 else [])
    for directory, precision in variants:
        if precision == INT8:
            manifest = quantize_arms(out_dir, directory)
            check, diffs = "arm features max abs diff vs fp32", feature_drift(out_dir, directory, left, right)
        else:
            manifest = export_onnx(model, directory, recipe.to_dict(), validation, fp16=precision == FP16, weights_from=weights_from)
            check, diffs = "parity max abs diff vs PyTorch", parity(half_precision_copy(model) if precision == FP16 else model, directory, left, right)
        typer.echo(f"exported {manifest['precision']} {', '.join(manifest['sha256'])} to {directory}")
        typer.echo(f"  {check}: " + ", ".join(f"{name} {value:.2e}" for name, value in diffs.items()))
        calibration = calibrate_no_partner(OnnxRuntimeBackend(load_model_files(directory)), val_images)
        record_calibration(directory, "no_partner", calibration)
        typer.echo(
            f"  no-partner score {calibration['score']:.3f}: precision {calibration['precision']:.4f}, "
            f"recall {calibration['recall']:.4f} with {calibration['drop']:.0%} of partners removed on validation"
        )
    if not engines:
        return
    for directory, precision in variants:
        if precision == INT8:
            continue  # onnxruntime CPU operators: no TensorRT engine
        try:
            built = build_engines(directory, engine_cache)
        except EngineUnavailable as reason:
            typer.echo(f"no TensorRT engine built: {reason}")
            break
        typer.echo(f"TensorRT {precision} engines: " + ", ".join(str(path) for path in built.values()))


@app.command("check-data")
@one_line_errors
def check_data(dataset: Dataset = "mnist", data_dir: DataDir = None) -> None:
    """Verify the md5 of each idx file of the dataset."""
    results = verify_checksums(data_dir, _check_dataset(dataset))
    for name, ok in results.items():
        typer.echo(f"{'ok ' if ok else 'BAD'} {name}")
    if not all(results.values()):
        raise typer.Exit(1)


def main() -> None:
    app()


if __name__ == "__main__":
    main()
