"""The command line end to end on real MNIST with the shipped model, and its bad-input contract."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

# The shipped model on the first 2,000 test digits, halves shuffled with seed 7 (README, "Accuracy");
# the test allows one point of margin.
DOCUMENTED_2K_ACCURACY = 0.9545


def cli(*args: str, cwd: Path | None = None) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "amphisbaena", *args], capture_output=True, text=True, cwd=cwd, env=os.environ.copy(), check=False
    )


@pytest.fixture(scope="module")
def halves_2k(tmp_path_factory: pytest.TempPathFactory, mnist_dir: Path) -> tuple[Path, Path]:
    directory = tmp_path_factory.mktemp("halves")
    halves, key = directory / "halves.npz", directory / "key.npz"
    done = cli("make-halves", "--split", "test", "--count", "2000", "--seed", "7", "-o", str(halves), "--key", str(key), "--data-dir", str(mnist_dir))
    assert done.returncode == 0, done.stderr
    return halves, key


def test_make_halves_writes_halves_and_key_separately(halves_2k: tuple[Path, Path]) -> None:
    halves, key = halves_2k
    with np.load(halves, allow_pickle=False) as npz:
        assert sorted(npz.files) == ["left", "right"]
        assert npz["left"].shape == npz["right"].shape == (2000, 28, 14)
        assert npz["left"].dtype == np.uint8
    with np.load(key, allow_pickle=False) as npz:
        assert npz.files == ["right_for_left"] and npz["right_for_left"].dtype == np.int64


def test_restore_2k_test_digits_with_shipped_model(halves_2k: tuple[Path, Path], tmp_path: Path) -> None:
    halves, key = halves_2k
    out, grid = tmp_path / "restored.npz", tmp_path / "grid.png"
    done = cli("restore", str(halves), "--key", str(key), "--out", str(out), "--grid", str(grid), "--json")
    assert done.returncode == 0, done.stderr
    summary = json.loads(done.stdout)
    print(summary)
    assert summary["backend"] == "ort-cpu" and summary["count"] == 2000
    assert summary["accuracy"] >= DOCUMENTED_2K_ACCURACY - 0.01
    assert len(summary["least_confident"]) == 10
    coverage = {row["coverage"]: row["accuracy"] for row in summary["accuracy_by_coverage"]}
    assert coverage[1.0] == pytest.approx(summary["accuracy"]) and coverage[0.8] >= coverage[1.0]
    with np.load(out, allow_pickle=False) as npz:
        right_for_left, images, confidence = npz["right_for_left"], npz["images"], npz["confidence"]
    assert confidence.shape == (2000,) and confidence.dtype == np.float32
    with np.load(halves, allow_pickle=False) as npz:
        left, right = npz["left"], npz["right"]
    with np.load(key, allow_pickle=False) as npz:
        truth = npz["right_for_left"]
    assert right_for_left.dtype == np.int64 and sorted(right_for_left) == list(range(2000))
    assert np.mean(right_for_left == truth) == pytest.approx(summary["accuracy"])
    assert images.shape == (2000, 28, 28) and np.array_equal(images[:, :, 14:], right[right_for_left])
    assert np.array_equal(images[:, :, :14], left)
    assert grid.read_bytes().startswith(b"\x89PNG")


def test_restore_text_output(halves_2k: tuple[Path, Path]) -> None:
    halves, key = halves_2k
    done = cli("restore", str(halves), "--key", str(key))
    assert done.returncode == 0, done.stderr
    assert re.search(r"^accuracy: 0\.\d{4} \(\d+/2000\)$", done.stdout, re.MULTILINE) and "ort-cpu" in done.stdout
    assert "proven optimal" in done.stdout


def write(path: Path, **arrays) -> Path:
    np.savez(path, **arrays)
    return path


def bad_inputs(tmp: Path) -> dict[str, Path]:
    good = np.zeros((4, 28, 14), np.uint8)
    pickled = tmp / "pickled.npz"
    np.savez(pickled, left=np.array([object()] * 4, dtype=object), right=good)
    truncated = tmp / "truncated.npz"
    np.savez(truncated, left=good, right=good)
    truncated.write_bytes(truncated.read_bytes()[:200])
    return {
        "missing": tmp / "missing.npz",
        "missing key": write(tmp / "onekey.npz", left=good),
        "extra key": write(tmp / "extra.npz", left=good, right=good, answer=np.arange(4)),
        "wrong shape": write(tmp / "shape.npz", left=good, right=np.zeros((4, 28, 28), np.uint8)),
        "wrong dtype": write(tmp / "dtype.npz", left=good, right=good.astype(np.int16)),
        "counts": write(tmp / "counts.npz", left=good, right=good[:3]),
        "pickled": pickled,
        "truncated": truncated,
        "not npz": tmp / "text.npz",
        "directory": tmp,
    }


@pytest.mark.parametrize(
    "case",
    ["missing", "missing key", "extra key", "wrong shape", "wrong dtype", "counts", "pickled", "truncated", "not npz", "directory"],
)
def test_restore_bad_input_one_line_exit_2_no_output(case: str, tmp_path: Path) -> None:
    cases = bad_inputs(tmp_path)
    (tmp_path / "text.npz").write_text("hello")
    out_dir = tmp_path / "outputs"
    out_dir.mkdir()
    done = cli("restore", str(cases[case]), "--out", str(out_dir / "restored.npz"), "--grid", str(out_dir / "grid.png"))
    assert done.returncode == 2
    assert done.stdout == ""
    assert len(done.stderr.strip().splitlines()) == 1 and done.stderr.startswith("error: ")
    assert "Traceback" not in done.stderr
    assert list(out_dir.iterdir()) == []


def test_restore_bad_key_file(halves_2k: tuple[Path, Path], tmp_path: Path) -> None:
    halves, _ = halves_2k
    wrong = write(tmp_path / "key.npz", right_for_left=np.arange(10))
    done = cli("restore", str(halves), "--key", str(wrong), "--out", str(tmp_path / "r.npz"))
    assert done.returncode == 2 and "has 10 entries" in done.stderr and len(done.stderr.splitlines()) == 1
    assert not (tmp_path / "r.npz").exists()


@pytest.mark.parametrize(
    "args, message",
    [
        (["--images", "{tmp}/nothing.idx"], "cannot read idx"),
        (["--images", "{tmp}/garbage.idx"], "bad magic"),
        (["--count", "0"], "--count"),
        (["--split", "validation"], "unknown split"),
    ],
)
def test_make_halves_bad_input(args: list[str], message: str, tmp_path: Path, mnist_dir: Path) -> None:
    (tmp_path / "garbage.idx").write_bytes(b"garbage bytes")
    out, key = tmp_path / "h.npz", tmp_path / "k.npz"
    args = [a.format(tmp=tmp_path) for a in args]
    done = cli("make-halves", *args, "-o", str(out), "--key", str(key), "--data-dir", str(mnist_dir))
    assert done.returncode == 2, done.stderr
    assert message in done.stderr and len(done.stderr.strip().splitlines()) == 1 and "Traceback" not in done.stderr
    assert not out.exists() and not key.exists()


def test_make_halves_into_missing_directory(tmp_path: Path, mnist_dir: Path) -> None:
    done = cli("make-halves", "-o", str(tmp_path / "no" / "h.npz"), "--key", str(tmp_path / "k.npz"), "--data-dir", str(mnist_dir))
    assert done.returncode == 2 and "does not exist" in done.stderr
    assert not (tmp_path / "k.npz").exists()


def test_console_scripts_are_declared() -> None:
    pyproject = (Path(__file__).resolve().parents[1] / "pyproject.toml").read_text()
    assert 'amphisbaena = "amphisbaena.cli:main"' in pyproject and 'cli = "amphisbaena.cli:main"' in pyproject


def test_restore_needs_no_torch(halves_2k: tuple[Path, Path]) -> None:
    """The runtime path imports no torch: block it and restore anyway."""
    halves, key = halves_2k
    code = (
        "import sys; sys.modules['torch'] = None\n"
        "from amphisbaena.cli import main\n"
        f"sys.argv = ['amphisbaena', 'restore', {str(halves)!r}, '--key', {str(key)!r}]\n"
        "main()\n"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=False)
    assert done.returncode == 0, done.stderr
    assert "accuracy" in done.stdout
