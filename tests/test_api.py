"""The public Python API: the same answers as the commands, one-line InputErrors, warm and thread-safe models."""

from __future__ import annotations

import base64
import json
import re
import shutil
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
import pytest

import amphisbaena as amph
from amphisbaena.model_files import SHIPPED_MODEL_DIR

REPO = Path(__file__).resolve().parents[1]
PUBLIC = {"Halves", "InputError", "Model", "Pool", "Restoration", "cut", "load", "load_halves", "test_halves"}


def cli(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "amphisbaena", *args], capture_output=True, text=True, check=False)


@pytest.fixture(scope="module")
def model() -> amph.Model:
    return amph.load()


@pytest.fixture(scope="module")
def files_2k(tmp_path_factory: pytest.TempPathFactory, mnist_dir: Path) -> tuple[Path, Path]:
    directory = tmp_path_factory.mktemp("api")
    halves, key = directory / "h.npz", directory / "k.npz"
    done = cli("make-halves", "--count", "2000", "--seed", "11", "-o", str(halves), "--key", str(key), "--data-dir", str(mnist_dir))
    assert done.returncode == 0, done.stderr
    return halves, key


def test_import_is_cheap_and_names_are_exact() -> None:
    code = "import sys, amphisbaena; print(sorted(m for m in ('onnxruntime', 'scipy', 'numpy', 'torch', 'typer') if m in sys.modules))"
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert done.stdout.strip() == "[]"
    assert set(amph.__all__) == PUBLIC and len(amph.__all__) == len(PUBLIC)
    assert re.fullmatch(r"\d+\.\d+\.\d+", amph.__version__)
    assert (REPO / "amphisbaena" / "py.typed").is_file()
    for name in amph.__all__:
        assert getattr(amph, name).__doc__, name
    assert issubclass(amph.InputError, ValueError)
    with pytest.raises(AttributeError):
        amph.no_such_name  # noqa: B018


def test_cut_and_save_write_the_files_make_halves_writes(tmp_path: Path, mnist_dir: Path, test_digits: np.ndarray) -> None:
    done = cli("make-halves", "-n", "300", "--seed", "3", "--drop-left", "0.1", "-o", str(tmp_path / "c.npz"), "--key", str(tmp_path / "ck.npz"), "--data-dir", str(mnist_dir))
    assert done.returncode == 0, done.stderr
    halves = amph.cut(test_digits[:300], seed=3, drop_left=0.1)
    halves.save(tmp_path / "a.npz", key=tmp_path / "ak.npz")
    for ours, theirs, names in (("a.npz", "c.npz", ("left", "right")), ("ak.npz", "ck.npz", ("right_for_left",))):
        with np.load(tmp_path / ours, allow_pickle=False) as a, np.load(tmp_path / theirs, allow_pickle=False) as c:
            assert sorted(a.files) == sorted(c.files) == sorted(names)
            for name in names:
                np.testing.assert_array_equal(a[name], c[name])
    loaded = amph.load_halves(tmp_path / "a.npz", key=tmp_path / "ak.npz", allow_unmatched=True)
    np.testing.assert_array_equal(loaded.key, halves.key)
    assert amph.load_halves(tmp_path / "a.npz", allow_unmatched=True).key is None
    embedded = amph.test_halves(seed=3, count=300)
    np.testing.assert_array_equal(embedded.left, amph.cut(test_digits[:300], seed=3).left)


def test_restore_equals_the_command_on_the_same_file(model: amph.Model, files_2k: tuple[Path, Path], tmp_path: Path) -> None:
    halves_path, key_path = files_2k
    out, grid = tmp_path / "cli.npz", tmp_path / "cli.png"
    done = cli("restore", str(halves_path), "--key", str(key_path), "--out", str(out), "--grid", str(grid), "--json")
    assert done.returncode == 0, done.stderr
    command = json.loads(done.stdout)
    halves = amph.load_halves(halves_path, key=key_path)
    restored = model.restore(halves.left, halves.right)
    assert restored.accuracy(halves.key) == command["accuracy"] >= 0.93
    restored.save(tmp_path / "api.npz")
    restored.grid(tmp_path / "api.png", key=halves.key)
    with np.load(out, allow_pickle=False) as theirs, np.load(tmp_path / "api.npz", allow_pickle=False) as ours:
        assert sorted(ours.files) == sorted(theirs.files) == ["confidence", "images", "right_for_left"]
        for name in ours.files:
            np.testing.assert_array_equal(ours[name], theirs[name])
    np.testing.assert_array_equal(restored.images, np.concatenate([halves.left, halves.right[restored.right_for_left]], axis=2))
    assert restored.right_for_left.dtype == np.int64 and restored.confidence.dtype == np.float32
    assert (tmp_path / "api.png").read_bytes() == grid.read_bytes()
    summary = restored.summary
    for part in (summary, command):
        part.pop("seconds")
    assert summary == command


def test_pool_best_equals_match_json(model: amph.Model, files_2k: tuple[Path, Path]) -> None:
    halves_path, _ = files_2k
    halves = amph.load_halves(halves_path)
    for side, queries, pool_halves in (("left", halves.left, halves.right), ("right", halves.right, halves.left)):
        done = cli("match", str(halves_path), "--side", side, "--items", "0,5,1999", "--k", "4", "--json")
        assert done.returncode == 0, done.stderr
        pool = model.pool(pool_halves, side="right" if side == "left" else "left")
        partners, scores = pool.best(queries[[0, 5, 1999]], k=4)
        assert partners.shape == scores.shape == (3, 4) and partners.dtype == np.int64 and scores.dtype == np.float32
        other = "right" if side == "left" else "left"
        for row, match in enumerate(json.loads(done.stdout)["matches"]):
            assert [p[other] for p in match["partners"]] == partners[row].tolist()
            assert [p["score"] for p in match["partners"]] == [round(float(v), 4) for v in scores[row]]


def test_float_and_channel_inputs_restore_as_uint8(model: amph.Model) -> None:
    halves = amph.test_halves(seed=2, count=300)
    plain = model.restore(halves.left, halves.right)
    floats = model.restore(halves.left[:, None].astype(np.float32) / 255, halves.right.astype(np.float64) / 255)
    np.testing.assert_array_equal(plain.right_for_left, floats.right_for_left)


def test_unmatched_restore_equals_the_command(model: amph.Model, tmp_path: Path, test_digits: np.ndarray) -> None:
    halves = amph.cut(test_digits[:500], seed=4, drop_left=0.05, drop_right=0.1)
    halves.save(tmp_path / "h.npz", key=tmp_path / "k.npz")
    done = cli("restore", str(tmp_path / "h.npz"), "--allow-unmatched", "--key", str(tmp_path / "k.npz"), "--out", str(tmp_path / "c.npz"), "--json")
    assert done.returncode == 0, done.stderr
    restored = model.restore(halves.left, halves.right, allow_unmatched=True)
    restored.accuracy(halves.key)
    restored.save(tmp_path / "a.npz")
    with np.load(tmp_path / "c.npz", allow_pickle=False) as theirs, np.load(tmp_path / "a.npz", allow_pickle=False) as ours:
        assert sorted(ours.files) == ["images", "right_for_left", "scores"]
        for name in ours.files:
            np.testing.assert_array_equal(ours[name], theirs[name])
    assert (restored.right_for_left == -1).any()
    ours, theirs = restored.summary, json.loads(done.stdout)
    ours.pop("seconds"), theirs.pop("seconds")
    assert ours == theirs and "quality" in ours


def bad_calls(model: amph.Model, tmp_path: Path) -> dict:
    good = np.zeros((4, 28, 14), np.uint8)
    with_nan = good.astype(np.float32)
    with_nan[0, 0, 0] = np.nan
    broken = tmp_path / "broken-model"
    shutil.copytree(SHIPPED_MODEL_DIR, broken)
    (broken / "head.onnx").write_bytes((broken / "head.onnx").read_bytes()[:-1] + b"\0")
    return {
        "wrong shape": lambda: model.restore(good, np.zeros((4, 28, 28), np.uint8)),
        "wrong dtype": lambda: model.restore(good.astype(np.int16), good),
        "strings": lambda: model.restore([["a"]], good),
        "NaN": lambda: model.restore(with_nan, good),
        "out of range": lambda: model.restore(good + 2.0, good),
        "empty": lambda: model.restore(good[:0], good[:0]),
        "counts": lambda: model.restore(good, good[:3]),
        "assignment": lambda: model.restore(good, good, assignment="greedy"),
        "k": lambda: model.restore(good, good, k=0),
        "pool side": lambda: model.pool(good, side="middle"),
        "pool k": lambda: model.pool(good).best(good, k=0),
        "query shape": lambda: model.pool(good).best(np.zeros((2, 14, 28), np.uint8)),
        "backend": lambda: amph.load(backend="cuda-please"),
        "precision": lambda: amph.load(precision="fp8"),
        "dataset": lambda: amph.load("kmnist"),
        "model dir": lambda: amph.load(model_dir=tmp_path / "nowhere"),
        "checksums": lambda: amph.load(model_dir=broken, precision="fp32"),
        "digits": lambda: amph.cut(np.zeros((3, 28, 14), np.uint8)),
        "drop": lambda: amph.cut(np.zeros((3, 28, 28), np.uint8), drop_left=1.5),
        "halves file": lambda: amph.load_halves(tmp_path / "missing.npz"),
        "key": lambda: model.restore(good, good).accuracy(np.arange(3)),
        "save dir": lambda: amph.cut(np.zeros((3, 28, 28), np.uint8)).save(tmp_path / "no" / "h.npz"),
        "None": lambda: model.restore(None, None),
        "objects": lambda: model.restore(np.array([[object()] * 14] * 28)[None], good),
        "ints": lambda: model.restore(good.astype(np.int64), good),
        "bools": lambda: model.restore(good.astype(bool), good),
        "five axes": lambda: model.restore(good[:, None, None], good),
        "k float": lambda: model.restore(good, good, k=2.5),
        "k bool": lambda: model.pool(good).best(good, k=True),
        "threshold": lambda: model.restore(good, good, allow_unmatched=True, no_partner_score="high"),
        "threads": lambda: amph.load(threads="2"),
        "path type": lambda: amph.load_halves(123),
        "dataset type": lambda: amph.load(7),
    }


CASES = [
    "wrong shape", "wrong dtype", "strings", "NaN", "out of range", "empty", "counts", "assignment", "k", "pool side", "pool k",
    "query shape", "backend", "precision", "dataset", "model dir", "checksums", "digits", "drop", "halves file", "key", "save dir",
    "None", "objects", "ints", "bools", "five axes", "k float", "k bool", "threshold", "threads", "path type", "dataset type",
]


@pytest.mark.parametrize("case", CASES)
def test_bad_input_raises_one_line_input_error(case: str, model: amph.Model, tmp_path: Path) -> None:
    with pytest.raises(amph.InputError) as raised:
        bad_calls(model, tmp_path)[case]()
    message = str(raised.value)
    assert message and "\n" not in message and len(message) < 300
    assert not (tmp_path / "no").exists()


def test_concurrent_calls_equal_sequential(model: amph.Model) -> None:
    halves = amph.test_halves(seed=8, count=1500)
    pool = model.pool(halves.right, side="right")
    batches = [halves.left[i : i + 50] for i in range(0, 400, 50)]
    sequential_best = [pool.best(batch, k=6) for batch in batches]
    sequential_restore = model.restore(halves.left, halves.right).right_for_left
    with ThreadPoolExecutor(max_workers=6) as workers:
        restores = [workers.submit(model.restore, halves.left, halves.right) for _ in range(2)]
        bests = [workers.submit(pool.best, batch, 6) for batch in batches]
        for future, (partners, scores) in zip(bests, sequential_best):
            got_partners, got_scores = future.result()
            np.testing.assert_array_equal(got_partners, partners)
            np.testing.assert_array_equal(got_scores, scores)
        for future in restores:
            np.testing.assert_array_equal(future.result().right_for_left, sequential_restore)


def test_notebook_view(model: amph.Model) -> None:
    halves = amph.test_halves(seed=5, count=400)
    restored = model.restore(halves.left, halves.right)
    before = restored._repr_html_()
    assert "400 lefts" in before and "ort-cpu" in before and "accuracy" not in before
    accuracy = restored.accuracy(halves.key)
    html = restored._repr_html_()
    assert f"accuracy {accuracy:.4f}" in html
    picture = base64.b64decode(re.search(r'data:image/png;base64,([A-Za-z0-9+/=]+)"', html).group(1))
    assert picture.startswith(b"\x89PNG") and picture != base64.b64decode(re.search(r'base64,([A-Za-z0-9+/=]+)"', before).group(1))


@pytest.mark.slow
def test_public_names_restore_a_fresh_10k_shuffle_as_the_command_does(model: amph.Model, tmp_path: Path) -> None:
    halves = amph.test_halves(seed=2026)
    halves.save(tmp_path / "h.npz", key=tmp_path / "k.npz")
    done = cli("restore", str(tmp_path / "h.npz"), "--out", str(tmp_path / "r.npz"))
    assert done.returncode == 0, done.stderr
    restored = model.restore(halves.left, halves.right)
    with np.load(tmp_path / "r.npz", allow_pickle=False) as command:
        np.testing.assert_array_equal(restored.right_for_left, command["right_for_left"])
    assert restored.accuracy(halves.key) >= 0.88


@pytest.mark.slow
def test_quickstart_example_runs(tmp_path: Path) -> None:
    done = subprocess.run([sys.executable, str(REPO / "examples" / "quickstart.py"), str(tmp_path / "grid.png")], capture_output=True, text=True, check=False)
    assert done.returncode == 0, done.stderr
    accuracy = float(re.search(r"accuracy (0\.\d+)", done.stdout).group(1))
    assert accuracy >= 0.88
    assert len(re.findall(r"^ *left \d+ -> right \d+", done.stdout, re.MULTILINE)) == 5
    assert (tmp_path / "grid.png").read_bytes().startswith(b"\x89PNG")
