"""A long restore announces its estimated time and memory in one line at the start; short ones stay quiet."""

from __future__ import annotations

import io
import json
from pathlib import Path

import numpy as np
import pytest
from conftest import halves_file
from typer.testing import CliRunner

from amphisbaena.cli import app
from amphisbaena.halves import make_halves
from amphisbaena.progress import RichProgress
from amphisbaena.runtime import memory


def test_estimates_grow_and_only_long_runs_are_announced() -> None:
    assert memory.estimate_seconds(60_000) > 10 * memory.estimate_seconds(10_000)
    assert memory.estimate_line(10_000, 326, "sparse") is None
    line = memory.estimate_line(1_000_000, 326, "sparse", 64)
    gib = memory.estimate_peak_bytes(1_000_000, 326, "sparse", 64) / 2**30
    assert line.startswith("restoring 1000000 pairs: about ") and f"{gib:.1f} GiB" in line and " min " in line


@pytest.fixture(scope="module")
def halves_200(tmp_path_factory: pytest.TempPathFactory, test_digits: np.ndarray) -> Path:
    return halves_file(tmp_path_factory.mktemp("estimate") / "h.npz", test_digits[:200], seed=9)


def test_piped_long_run_prints_one_estimate_line_first(halves_200: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(memory, "LONG_RUN_SECONDS", 0.0)  # every run counts as long
    piped = CliRunner().invoke(app, ["restore", str(halves_200)])
    assert piped.exit_code == 0
    assert piped.stderr.splitlines() == [memory.estimate_line(200, 326, "sparse")]
    assert "restoring 200 pairs: about" in piped.stderr and "GiB at peak" in piped.stderr
    as_json = CliRunner().invoke(app, ["restore", str(halves_200), "--json"])  # stdout is the summary; the estimate still comes first on stderr
    assert as_json.exit_code == 0 and as_json.stderr.splitlines() == [memory.estimate_line(200, 326, "sparse")]
    assert json.loads(as_json.stdout)["count"] == 200


def test_terminal_bars_show_the_note_and_time_left(test_digits: np.ndarray, shipped, monkeypatch: pytest.MonkeyPatch) -> None:
    from amphisbaena.runtime.restore import restore

    monkeypatch.setattr(memory, "LONG_RUN_SECONDS", 0.0)
    left, right, _ = make_halves(test_digits[:300], seed=2)
    screen = io.StringIO()
    restore(shipped, left, right, progress=RichProgress(file=screen, force_terminal=True))
    drawn = screen.getvalue()
    assert "restoring 300 pairs: about" in drawn
    assert "left" in drawn and "0:00:0" in drawn  # the time-left column beside the elapsed time
