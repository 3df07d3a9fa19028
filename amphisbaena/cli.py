"""The command line: parse, call one function, print. Bad input -> one line on stderr, exit 2."""

from __future__ import annotations

import functools
import json
import os
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Annotated

import typer

from amphisbaena.errors import InputError

INTERRUPTED = 130  # the exit status of a run stopped by Ctrl-C, as shells report SIGINT

app = typer.Typer(
    help="Restore MNIST digits from shuffled left and right halves.",
    add_completion=False,
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    rich_markup_mode=None,
)

# Options shared by several commands, declared once.
Dataset = Annotated[str, typer.Option("--dataset", help="mnist or fashion-mnist (with --model-dir: only for the data)")]
DataDir = Annotated[Path | None, typer.Option("--data-dir", help="idx files (default: $AMPHISBAENA_DATA, then a cache dir; the MNIST test split is built in)")]
ModelDir = Annotated[Path | None, typer.Option("--model-dir", help="Model directory (default: the model shipped for --dataset)")]
BackendName = Annotated[str, typer.Option("--backend", help="auto, tensorrt, ort-trt, ort-cuda or ort-cpu")]
Threads = Annotated[int | None, typer.Option("--threads", help="onnxruntime intra-op threads (default: all cores)")]
EngineCache = Annotated[Path | None, typer.Option("--engine-cache", help="TensorRT engine cache directory")]
Precision = Annotated[str, typer.Option("--precision", help="auto (int8 arms on ort-cpu where the model has them, else fp32), fp32, fp16 or int8")]
AsJson = Annotated[bool, typer.Option("--json", help="Print a JSON summary")]


class _Settings:
    debug = False


@app.callback()
def _global_options(debug: Annotated[bool, typer.Option("--debug", help="Show full tracebacks instead of one-line errors")] = False) -> None:
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
            raise typer.Exit(INTERRUPTED) from None

    return wrapper


def _echo(lines: list[str]) -> None:
    for line in lines:
        typer.echo(line)


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
    from amphisbaena.api.halves import check_targets, cut, split_digits
    from amphisbaena.datasets import check_dataset_name

    check_dataset_name(dataset)
    check_targets(output, key)
    halves = cut(split_digits(split, count, dataset, data_dir, images), seed, drop_left, drop_right)
    halves.save(output, key=key)
    counts = f"{len(halves.left)}" if len(halves.left) == len(halves.right) else f"{len(halves.left)} left and {len(halves.right)} right"
    typer.echo(f"wrote {counts} shuffled halves to {output} and the key to {key}")


@app.command()
@one_line_errors
def restore(
    halves: Annotated[Path, typer.Argument(help="Halves npz with uint8 'left' and 'right' of shape (N, 28, 14)")],
    out: Annotated[Path | None, typer.Option("--out", help="Write right_for_left, restored images and confidence here")] = None,
    key: Annotated[Path | None, typer.Option("--key", help="Answer key npz: print the accuracy")] = None,
    grid: Annotated[Path | None, typer.Option("--grid", help="Write a PNG grid of the first restored digits (wrong ones framed, with --key)")] = None,
    report_png: Annotated[Path | None, typer.Option("--report", help="Write a visual report (PNG; needs matplotlib)")] = None,
    model_dir: ModelDir = None,
    threads: Threads = None,
    backend: BackendName = "auto",
    engine_cache: EngineCache = None,
    assignment: Annotated[str, typer.Option(help="sparse: top-k candidates, proven optimal; dense: full matrix")] = "sparse",
    k: Annotated[int | None, typer.Option("--k", help="Candidates kept per left and per right (sparse; default 32, or 64 above 10,000 halves with geometry pruning)")] = None,
    as_json: AsJson = False,
    dataset: Dataset = "mnist",
    allow_unmatched: Annotated[bool, typer.Option("--allow-unmatched", help="Halves may lack a partner and the counts may differ")] = False,
    no_partner_score: Annotated[float | None, typer.Option(help="With --allow-unmatched: make no pair scoring below this (default: the model's calibrated value)")] = None,
    precision: Precision = "auto",
) -> None:
    """Pair every left half with its right half using the model and a global assignment."""
    from amphisbaena.api.halves import load_halves
    from amphisbaena.api.model import check_restore_options, load
    from amphisbaena.api.restoration import check_outputs
    from amphisbaena.engines.select import check_choice

    check_choice(backend, precision)
    check_restore_options(assignment, k, no_partner_score)
    check_outputs(out, grid, report_png, allow_unmatched)
    pairs = load_halves(halves, key=key, allow_unmatched=allow_unmatched)
    model = load(dataset, model_dir=model_dir, backend=backend, precision=precision, threads=threads, engine_cache=engine_cache)
    restored = model.restore(
        pairs.left, pairs.right, k=k, assignment=assignment, allow_unmatched=allow_unmatched, no_partner_score=no_partner_score, progress="notes" if as_json else True
    )
    if pairs.key is not None:
        restored.accuracy(pairs.key)
    written = restored.write(out=out, grid=grid, report=report_png)
    if _Settings.debug:
        for reason in model.fallbacks:
            typer.echo(f"backend skipped: {reason}", err=True)
    _echo([json.dumps(restored.summary, indent=2)] if as_json else restored.lines + (written or ["nothing written: pass --out FILE to keep the pairing"]))


@app.command()
@one_line_errors
def match(
    halves: Annotated[Path, typer.Argument(help="Halves npz with 'left' and 'right' (counts may differ)")],
    side: Annotated[str, typer.Option(help="Side of the queries: left (pool: the rights) or right (pool: the lefts)")] = "left",
    items: Annotated[str | None, typer.Option(help="Comma-separated query indices (default: every half of SIDE)")] = None,
    k: Annotated[int, typer.Option("--k", help="Partners returned per query")] = 5,
    out: Annotated[Path | None, typer.Option("--out", help="Write query, partners and scores (npz)")] = None,
    as_json: AsJson = False,
    model_dir: ModelDir = None,
    dataset: Dataset = "mnist",
    backend: BackendName = "auto",
    threads: Threads = None,
    engine_cache: EngineCache = None,
    precision: Precision = "auto",
) -> None:
    """Top-k partners of single halves among the other side, with scores (no global assignment)."""
    from amphisbaena.api.halves import check_targets, load_halves
    from amphisbaena.api.model import check_k, check_side, load
    from amphisbaena.engines.select import check_choice
    from amphisbaena.files import save_npz
    from amphisbaena.runtime.match import OTHER_SIDE, match_report, parse_items

    check_side(side)
    check_choice(backend, precision)
    check_k(k)
    if out is not None:
        check_targets(out)
    pairs = load_halves(halves, allow_unmatched=True)
    queries, pool = (pairs.left, pairs.right) if side == "left" else (pairs.right, pairs.left)
    chosen = parse_items(items, len(queries))
    model = load(dataset, model_dir=model_dir, backend=backend, precision=precision, threads=threads, engine_cache=engine_cache)
    partners, scores = model.pool(pool, side=OTHER_SIDE[side]).best(queries[chosen], k)
    if out is not None:
        save_npz(out, query=chosen, partners=partners, scores=scores)
    summary, lines = match_report(side, chosen, partners, scores, len(pool), model.backend.name, out)
    _echo([json.dumps(summary, indent=2)] if as_json else lines)


@app.command()
@one_line_errors
def train(
    run_dir: Annotated[Path, typer.Option("--run-dir", help="Checkpoints and history; an existing run resumes")] = Path("runs/mnist"),
    epochs: Annotated[int | None, typer.Option(help="Override the recipe's epochs")] = None,
    limit: Annotated[int | None, typer.Option(help="Use only the first N training digits (smoke runs)")] = None,
    seed: Annotated[int | None, typer.Option(help="Override the recipe's seed")] = None,
    init_from: Annotated[Path | None, typer.Option("--init-from", help="Start from this checkpoint's weights")] = None,
    learning_rate: Annotated[float | None, typer.Option(help="Override the recipe's peak learning rate")] = None,
    recipe_file: Annotated[Path | None, typer.Option("--recipe", help="JSON file of recipe fields laid over the dataset's defaults")] = None,
    teacher: Annotated[Path | None, typer.Option("--teacher", help="Distil from this fp32 (or fp16) model directory, e.g. a shipped model")] = None,
    dataset: Dataset = "mnist",
    device: Annotated[str, typer.Option(help="torch device to train on: cpu, cuda, cuda:1, ...")] = "cpu",
    validate_every: Annotated[int, typer.Option(help="Validate every N epochs (and after the last)")] = 1,
    data_dir: DataDir = None,
) -> None:
    """Train the two arms and the head on the training set (never the test set)."""
    from amphisbaena.train.session import TrainRequest, run_training

    taught_by = None
    if teacher is not None:
        from amphisbaena.export.pipeline import load_teacher

        taught_by = load_teacher(teacher)
    overrides = {"epochs": epochs, "limit": limit, "seed": seed, "learning_rate": learning_rate, "init_from": init_from}
    _echo(run_training(TrainRequest(run_dir, dataset, recipe_file, overrides, device, data_dir, validate_every), taught_by))


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
    engine_cache: EngineCache = None,
    data_dir: DataDir = None,
) -> None:
    """Export the left arm, right arm and head as ONNX models, validate each variant, build TensorRT engines."""
    from functools import partial

    from amphisbaena.export.pipeline import ExportRequest, run_export
    from amphisbaena.progress import for_terminal
    from amphisbaena.runtime.validation import validate_variant

    precisions = tuple(name for name, wanted in (("fp16", fp16), ("int8", int8)) if wanted)
    request = ExportRequest(run_dir, out_dir, from_model, precisions, (com_weight, box_weight), engines, engine_cache, data_dir)
    run_export(request, say=typer.echo, validate=partial(validate_variant, progress=for_terminal()))


@app.command("check-data")
@one_line_errors
def check_data(dataset: Dataset = "mnist", data_dir: DataDir = None) -> None:
    """Verify the md5 of each idx file of the dataset."""
    from amphisbaena.datasets import check_dataset_name, verify_checksums

    results = verify_checksums(data_dir, check_dataset_name(dataset))
    for name, ok in results.items():
        typer.echo(f"{'ok ' if ok else 'BAD'} {name}")
    if not all(results.values()):
        raise typer.Exit(1)


def main() -> None:
    try:
        app()
    except SystemExit as exit_:
        if exit_.code == INTERRUPTED:  # worker threads may be inside a head call: leave without joining them
            sys.stdout.flush()
            sys.stderr.flush()
            os._exit(INTERRUPTED)
        raise


if __name__ == "__main__":
    main()
