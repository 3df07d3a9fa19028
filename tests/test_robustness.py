"""Atomic outputs under injected failures, the large-N memory guard, and deterministic results."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from typer.testing import CliRunner

from amphisbaena.api import halves as halves_module
from amphisbaena.cli import app
from amphisbaena.engines.onnxruntime_backend import OnnxRuntimeBackend
from amphisbaena.files import save_npz
from amphisbaena.halves import make_halves
from amphisbaena.model_files import load_model_files
from amphisbaena.runtime import restore as restore_module
from amphisbaena.runtime import topk
from amphisbaena.runtime.scorer import PairScorer


@pytest.fixture(scope="module")
def halves_1k(tmp_path_factory: pytest.TempPathFactory, test_digits: np.ndarray) -> tuple[Path, np.ndarray, np.ndarray, np.ndarray]:
    left, right, key = make_halves(test_digits[:1000], seed=11)
    path = tmp_path_factory.mktemp("h") / "halves.npz"
    save_npz(path, left=left, right=right)
    return path, left, right, key


def test_failure_in_the_middle_of_scoring_leaves_no_output(halves_1k, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path = halves_1k[0]
    calls = {"n": 0}
    real_head = OnnxRuntimeBackend.head

    def failing_head(self, left, right, beside_host=False):
        calls["n"] += 1
        if calls["n"] == 2:  # after both arms ran and the bound was probed, at the first tile of the head
            raise RuntimeError("injected failure in the middle of scoring")
        return real_head(self, left, right, beside_host)

    monkeypatch.setattr(OnnxRuntimeBackend, "head", failing_head)
    result = CliRunner().invoke(app, ["restore", str(path), "--out", str(tmp_path / "r.npz"), "--grid", str(tmp_path / "g.png")])
    assert result.exit_code == 1 and "injected failure" in result.stderr
    # Two groups score at once, so the failing call may be the second group's while the first succeeds; the
    # main thread then takes the first and sends two more before it meets the failure: at most 5 calls.
    assert 2 <= calls["n"] <= 5
    assert list(tmp_path.iterdir()) == []


def test_failure_while_writing_the_second_output_leaves_neither(halves_1k, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path = halves_1k[0]

    def failing_png(target, image):
        Path(target).write_bytes(b"\x89PNG half written")
        raise OSError(28, "No space left on device")

    monkeypatch.setattr("amphisbaena.runtime.outputs.write_png", failing_png)
    result = CliRunner().invoke(app, ["restore", str(path), "--out", str(tmp_path / "r.npz"), "--grid", str(tmp_path / "g.png")])
    assert result.exit_code == 2 and "No space left on device" in result.stderr
    assert list(tmp_path.iterdir()) == [], "the npz must not appear without its grid, and no temporary may remain"


def test_failed_make_halves_leaves_neither_halves_nor_key(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, mnist_dir: Path) -> None:
    real = halves_module.write_npz
    calls = {"n": 0}

    def second_write_fails(path, **arrays):
        calls["n"] += 1
        real(path, **arrays)
        if calls["n"] == 2:
            raise OSError(5, "Input/output error")

    monkeypatch.setattr(halves_module, "write_npz", second_write_fails)
    result = CliRunner().invoke(
        app, ["make-halves", "--count", "50", "-o", str(tmp_path / "h.npz"), "--key", str(tmp_path / "k.npz"), "--data-dir", str(mnist_dir)]
    )
    assert result.exit_code == 2 and calls["n"] == 2
    assert list(tmp_path.iterdir()) == []


def test_existing_output_survives_a_failed_run(halves_1k, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A failed run neither truncates nor replaces what an earlier run wrote."""
    target = tmp_path / "r.npz"
    target.write_bytes(b"earlier result")
    monkeypatch.setattr(PairScorer, "candidates", lambda *a, **k: (_ for _ in ()).throw(MemoryError()))
    result = CliRunner().invoke(app, ["restore", str(halves_1k[0]), "--out", str(target)])
    assert result.exit_code == 1 and result.stderr.strip() == "error: out of memory"
    assert target.read_bytes() == b"earlier result" and len(list(tmp_path.iterdir())) == 1


def test_memory_guard_refuses_a_large_dense_run_before_work(tmp_path: Path) -> None:
    """A large synthetic N, cheap to generate (zeros compress to nothing): the dense path's N^2 matrix
    would need far more than this machine has, so restore refuses at once with the estimate."""
    n = 150_000
    path = tmp_path / "big.npz"
    blank = np.zeros((n, 28, 14), np.uint8)
    np.savez_compressed(path, left=blank, right=blank)
    out = tmp_path / "r.npz"
    result = CliRunner().invoke(app, ["restore", str(path), "--assignment", "dense", "--out", str(out)])
    assert result.exit_code == 2
    assert "needs about" in result.stderr and "GiB" in result.stderr and "use --assignment sparse" in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1 and not out.exists()


def test_same_input_gives_byte_identical_pairing_across_runs_and_thread_counts(halves_1k) -> None:
    _, left, right, _ = halves_1k
    model = load_model_files()
    results = [
        restore_module.restore(OnnxRuntimeBackend(model, threads=threads), left, right).right_for_left.tobytes()
        for threads in (1, 2, 1)
    ]
    assert results[0] == results[1] == results[2]


def test_ties_break_by_index() -> None:
    """Equal scores: the lower partner index wins, so tied inputs still give one answer."""
    keeper = topk.BestPerItem(items=1, count=2)
    keeper.add(np.zeros(4, np.int64), np.array([3, 1, 2, 0]), np.ones(4, np.float32))
    assert keeper.partner[0].tolist() == [0, 1]
