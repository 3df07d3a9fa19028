"""A short real training run on a slice of MNIST, exported and checked against PyTorch."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import onnx
import pytest

torch = pytest.importorskip("torch", reason="training needs the [train] extra (torch)")

from amphisbaena.engines.onnxruntime_backend import OnnxRuntimeBackend
from amphisbaena.export.onnx_export import export_onnx, parity
from amphisbaena.halves import make_halves
from amphisbaena.model_files import MODEL_FILES, load_model_files
from amphisbaena.runtime.restore import restore
from amphisbaena.train.loop import HISTORY, train
from amphisbaena.train.model import ModelConfig
from amphisbaena.train.recipe import Recipe

SMALL = ModelConfig(hidden=256, depth=2, embedding=32, head_hidden=8)


@pytest.fixture(scope="module")
def trained(tmp_path_factory: pytest.TempPathFactory, mnist_dir: Path):
    run_dir = tmp_path_factory.mktemp("run")
    recipe = Recipe(epochs=3, limit=6000, val_size=500, batch_size=256, hard_start_epoch=1, model=SMALL)
    return run_dir, recipe, train(recipe, run_dir, mnist_dir)


def test_short_training_learns(trained) -> None:
    run_dir, _, result = trained
    history = [json.loads(line) for line in (run_dir / HISTORY).read_text().splitlines()]
    assert [h["epoch"] for h in history] == [1, 2, 3]
    assert history[-1]["loss"] < history[0]["loss"]
    # 500 held-out digits: chance is 0.2%; three short epochs already pair far more.
    assert result.val_size == 500 and result.val_accuracy > 0.2


def test_training_resumes_and_is_reproducible(trained, mnist_dir: Path, tmp_path: Path) -> None:
    run_dir, recipe, result = trained
    resumed = train(recipe, run_dir, mnist_dir)  # all epochs done: loads, trains nothing
    assert resumed.val_accuracy == result.val_accuracy
    one_epoch = Recipe(**{**recipe.__dict__, "epochs": 1})
    again_a = train(one_epoch, tmp_path / "a", mnist_dir)
    again_b = train(one_epoch, tmp_path / "b", mnist_dir)
    for (name, a), b in zip(again_a.model.state_dict().items(), again_b.model.state_dict().values()):
        assert torch.equal(a, b), name


def test_export_checks_and_matches_pytorch(trained, test_digits: np.ndarray, tmp_path: Path) -> None:
    _, recipe, result = trained
    manifest = export_onnx(result.model, tmp_path, recipe.to_dict(), {"assignment_accuracy": result.val_accuracy})
    for name in MODEL_FILES.values():
        onnx.checker.check_model(onnx.load(str(tmp_path / name)), full_check=True)
    assert manifest["feature_size"] == SMALL.feature_size
    assert manifest["recipe"]["model"] == SMALL.to_dict()
    assert set(manifest["sha256"]) == set(MODEL_FILES.values())

    left, right, key = make_halves(test_digits[:300], seed=5)
    diffs = parity(result.model, tmp_path, left, right)
    print("parity max abs diff:", diffs)
    assert max(diffs.values()) < 1e-3

    # The exported directory is a complete model for the torch-free runtime.
    backend = OnnxRuntimeBackend(load_model_files(tmp_path))
    restored = restore(backend, left, right, key)
    with torch.no_grad():
        reference = result.model(torch.from_numpy(left), torch.from_numpy(right)).numpy()
    from scipy.optimize import linear_sum_assignment

    rows, cols = linear_sum_assignment(reference, maximize=True)
    assert np.array_equal(restored.right_for_left, cols[np.argsort(rows)])
    assert restored.accuracy > 0.1


def test_tampered_model_is_refused(trained, tmp_path: Path) -> None:
    from amphisbaena.errors import InputError

    _, recipe, result = trained
    export_onnx(result.model, tmp_path, recipe.to_dict(), {"assignment_accuracy": result.val_accuracy})
    with open(tmp_path / "head.onnx", "ab") as handle:
        handle.write(b"\x00")
    with pytest.raises(InputError, match="sha256"):
        load_model_files(tmp_path)


def test_cli_export_fp16_without_gpu_writes_onnx_and_explains(trained, tmp_path: Path, mnist_dir: Path) -> None:
    from typer.testing import CliRunner

    from amphisbaena.cli import app
    from amphisbaena.engines.tensorrt_build import EngineUnavailable, tensorrt_device

    try:
        tensorrt_device()
    except EngineUnavailable:
        pass
    else:
        pytest.skip("a GPU with tensorrt is present: engines are built instead")
    run_dir, _, _ = trained
    result = CliRunner().invoke(app, ["export", "--run-dir", str(run_dir), "--out-dir", str(tmp_path / "model"), "--fp16", "--data-dir", str(mnist_dir)])
    assert result.exit_code == 0, result.output
    assert "no TensorRT engine built: tensorrt cannot be imported" in result.stdout
    fp32, fp16 = load_model_files(tmp_path / "model"), load_model_files(tmp_path / "model" / "fp16")
    assert (fp32.manifest["precision"], fp16.manifest["precision"]) == ("fp32", "fp16")
    assert fp16.path("left").stat().st_size < 0.6 * fp32.path("left").stat().st_size
    types = {init.data_type for init in onnx.load(str(fp16.path("left"))).graph.initializer}
    assert onnx.TensorProto.FLOAT16 in types
    # The geometry stays in fp32 and the fp16 arms still pair like the fp32 ones.
    halves = np.random.default_rng(0).integers(0, 256, (64, 28, 14), dtype=np.uint8)
    a = OnnxRuntimeBackend(fp32).arm("left", halves)
    b = OnnxRuntimeBackend(fp16).arm("left", halves)
    g = fp32.geometry.start
    np.testing.assert_array_equal(a[:, g:], b[:, g:])
    assert np.abs(a - b).max() < 0.05


def test_reexport_recovers_the_exact_weights_and_adds_int8(trained, tmp_path: Path, mnist_dir: Path, test_digits: np.ndarray) -> None:
    """`export --from-model` rebuilds the PyTorch model from an exported directory bit for bit (so a
    shipped model can take new graphs without retraining), and `--int8` adds int8 arms beside it."""
    from typer.testing import CliRunner

    from amphisbaena.cli import app
    from amphisbaena.export.onnx_export import model_from_onnx

    run_dir, _, result = trained
    first, second = tmp_path / "first", tmp_path / "second"
    runner = CliRunner()
    assert runner.invoke(app, ["export", "--run-dir", str(run_dir), "--out-dir", str(first), "--no-engines", "--data-dir", str(mnist_dir)]).exit_code == 0
    recovered, recipe = model_from_onnx(load_model_files(first))
    assert recipe.model == SMALL
    trained_state = result.model.state_dict()
    for name, value in recovered.state_dict().items():
        assert torch.equal(value, trained_state[name]), name

    out = runner.invoke(app, ["export", "--from-model", str(first), "--out-dir", str(second), "--int8", "--no-engines", "--data-dir", str(mnist_dir)])
    assert out.exit_code == 0, out.output
    fp32, int8 = load_model_files(second), load_model_files(second / "int8")
    assert fp32.manifest["weights_from"]["sha256"] == load_model_files(first).manifest["sha256"]
    assert int8.manifest["precision"] == "int8" and int8.manifest["quantized_from"]["left.onnx"] == fp32.manifest["sha256"]["left.onnx"]
    assert int8.path("left").stat().st_size < 0.5 * fp32.path("left").stat().st_size
    left, right, key = make_halves(test_digits[:300], seed=6)
    full, quantized = OnnxRuntimeBackend(fp32), OnnxRuntimeBackend(int8)
    for side, halves in (("left", left), ("right", right)):
        a, b = full.arm(side, halves), quantized.arm(side, halves)
        g = fp32.geometry.start
        np.testing.assert_array_equal(a[:, g:], b[:, g:])  # the exact geometry is never quantised
        assert 0 < np.abs(a - b).max() < 0.5
    assert abs(restore(quantized, left, right, key).accuracy - restore(full, left, right, key).accuracy) < 0.05


def test_reexport_refuses_a_non_fp32_model(tmp_path: Path) -> None:
    from amphisbaena.errors import InputError
    from amphisbaena.export.onnx_export import model_from_onnx
    from amphisbaena.model_files import SHIPPED_MODEL_DIR

    with pytest.raises(InputError, match="needs the fp32 model"):
        model_from_onnx(load_model_files(SHIPPED_MODEL_DIR / "int8"))


def test_a_teacher_can_be_read_from_an_fp16_model_directory() -> None:
    """`train --teacher` accepts the fp16 variant (half the bytes to carry to a GPU machine): its weights
    come back as the fp32 weights rounded to fp16, widened back to fp32; re-export still refuses it."""
    from amphisbaena.errors import InputError
    from amphisbaena.export.onnx_export import model_from_onnx
    from amphisbaena.export.pipeline import load_teacher
    from amphisbaena.model_files import SHIPPED_MODEL_DIR

    full, _ = model_from_onnx(load_model_files(SHIPPED_MODEL_DIR))
    teacher = load_teacher(SHIPPED_MODEL_DIR / "fp16")
    rounded = 0
    for (name, exact), widened in zip(full.state_dict().items(), teacher.model.state_dict().values()):
        assert widened.dtype == torch.float32, name
        if not torch.equal(exact, widened):
            assert torch.equal(exact.half().float(), widened), name
            rounded += 1
    assert rounded > 0  # the trunks really came from fp16
    with pytest.raises(InputError, match="needs the fp32 model, this one is fp16"):
        model_from_onnx(load_model_files(SHIPPED_MODEL_DIR / "fp16"))


def test_validation_runs_every_n_epochs_and_after_the_last(mnist_dir: Path, tmp_path: Path) -> None:
    recipe = Recipe(epochs=3, limit=1000, val_size=200, batch_size=256, model=SMALL)
    result = train(recipe, tmp_path, mnist_dir, validate_every=2)
    history = [json.loads(line) for line in (tmp_path / HISTORY).read_text().splitlines()]
    assert [h["epoch"] for h in history if "val_accuracy" in h] == [2, 3]
    assert result.val_accuracy == history[-1]["val_accuracy"]


def test_geometry_penalty_is_the_rule_on_the_joined_digit(test_digits: np.ndarray) -> None:
    """The head's penalty, from per-half statistics, equals the rule measured on the joined image:
    centre of mass within 14 +- 0.5 on both axes, larger side of the inked box 20 pixels."""
    from amphisbaena.train.model import geometry, geometry_penalty

    digits = test_digits[:60].astype(np.float64) / 255.0
    rng = np.random.default_rng(3)
    pairs = [(i, i) for i in range(60)] + [tuple(rng.integers(0, 60, 2)) for _ in range(200)]
    left_stats = geometry(torch.from_numpy(digits[:, :, :14]).float(), 0).double()
    right_stats = geometry(torch.from_numpy(digits[:, :, 14:]).float(), 14).double()
    penalties = []
    for i, j in pairs:
        joined = np.concatenate([digits[i, :, :14], digits[j, :, 14:]], axis=1)
        mass = joined.sum()
        com_row, com_col = (joined.sum(1) * np.arange(28)).sum() / mass, (joined.sum(0) * np.arange(28)).sum() / mass
        outside = sum(max(abs(c - 14.0) - 0.5, 0.0) for c in (com_row, com_col))
        rows, cols = np.flatnonzero(joined.any(1)), np.flatnonzero(joined.any(0))
        side = max(rows[-1] - rows[0] + 1, cols[-1] - cols[0] + 1)
        expected = 1000.0 * outside + 100.0 * abs(side - 20)
        got = float(geometry_penalty(left_stats[i], right_stats[j], 1000.0, 100.0))
        assert got == pytest.approx(expected, rel=1e-4, abs=1e-2), (i, j)
        penalties.append(got)
    assert max(penalties[:60]) < 0.05  # true pairs obey the rule (up to float32 rounding)
    assert np.mean(np.array(penalties[60:]) > 0) > 0.5  # most random pairs break it


def test_half_turned_digits_obey_the_rules_the_penalty_encodes(mnist_dir: Path) -> None:
    """A digit turned 180 degrees and shifted one pixel down and right keeps its centre of mass in
    14 +- 0.5 and its 20-pixel box, so its true halves pass the geometry penalty as the original's do;
    only the listed classes are added, each turned exactly, and only digits nothing is cut off of."""
    from amphisbaena.datasets import load_split
    from amphisbaena.train.augment import half_turned, with_half_turns
    from amphisbaena.train.model import geometry, geometry_penalty

    images, labels = load_split("train", mnist_dir)
    images, labels = images[:2000], labels[:2000]
    turned = half_turned(images)
    np.testing.assert_array_equal(turned[:, 5, 7], images[:, 23, 21])  # pixel (r, c) comes from (28 - r, 28 - c)
    edge_blank = (images[:, 0, :].max(axis=1) == 0) & (images[:, :, 0].max(axis=1) == 0)
    assert edge_blank.mean() > 0.99 and not edge_blank.all()  # this slice holds digits touching the first row or column
    assert turned[edge_blank].sum(dtype=np.int64) == images[edge_blank].sum(dtype=np.int64)  # nothing cut off
    penalties = []
    for digits in (images[edge_blank], turned[edge_blank]):
        pixels = torch.from_numpy(digits).double() / 255.0
        penalties.append(geometry_penalty(geometry(pixels[:, :, :14], 0), geometry(pixels[:, :, 14:], 14), 1000.0, 100.0).numpy())
    np.testing.assert_allclose(penalties[1], penalties[0], atol=1e-6)  # |28 - c - 14| = |c - 14|, same box
    assert np.mean(penalties[0] == 0) > 0.99
    expanded = with_half_turns(images, labels, [0, 1, 8])
    chosen = np.isin(labels, [0, 1, 8]) & edge_blank
    assert len(expanded) == len(images) + chosen.sum()
    np.testing.assert_array_equal(expanded[len(images) :], turned[chosen])
    assert with_half_turns(images, labels, []) is images
