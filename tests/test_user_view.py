"""What a user sees: progress only on a terminal, each written file named, early refusal of a missing
extra, wrong pairs framed in the grid, and the confidence in the JSON."""

from __future__ import annotations

import io
import json
import sys
import zlib
from pathlib import Path

import numpy as np
import pytest
from typer.testing import CliRunner

from amphisbaena.cli import app
from amphisbaena.engines.onnxruntime_backend import OnnxRuntimeBackend
from amphisbaena.files import save_npz
from amphisbaena.halves import make_halves
from amphisbaena.progress import RichProgress
from amphisbaena.runtime.restore import restore


@pytest.fixture(scope="module")
def halves_300(tmp_path_factory: pytest.TempPathFactory, test_digits: np.ndarray) -> tuple[Path, Path]:
    left, right, key = make_halves(test_digits[:300], seed=4)
    directory = tmp_path_factory.mktemp("halves")
    save_npz(directory / "h.npz", left=left, right=right)
    save_npz(directory / "k.npz", right_for_left=key)
    return directory / "h.npz", directory / "k.npz"


def test_progress_is_drawn_on_a_terminal_for_every_stage(shipped, test_digits: np.ndarray) -> None:
    left, right, key = make_halves(test_digits[:400], seed=5)
    screen = io.StringIO()
    restore(shipped, left, right, key, progress=RichProgress(file=screen, force_terminal=True))
    drawn = screen.getvalue()
    for stage in ("arms: halves", "head: groups of lefts", "proof: rounds"):
        assert stage in drawn, drawn[-500:]


def test_piped_and_json_runs_draw_no_progress(halves_300: tuple[Path, Path]) -> None:
    halves, key = halves_300
    for extra in ([], ["--json"]):
        result = CliRunner().invoke(app, ["restore", str(halves), "--key", str(key), *extra])
        assert result.exit_code == 0 and result.stderr == ""
        assert "\r" not in result.stdout and "\x1b" not in result.stdout


def test_every_file_written_is_named_and_a_run_without_out_says_nothing_was_kept(halves_300, tmp_path: Path) -> None:
    halves, key = halves_300
    out, grid = tmp_path / "r.npz", tmp_path / "g.png"
    kept = CliRunner().invoke(app, ["restore", str(halves), "--key", str(key), "--out", str(out), "--grid", str(grid)])
    assert kept.exit_code == 0 and f"wrote {out}" in kept.stdout and f"wrote {grid}" in kept.stdout
    nothing = CliRunner().invoke(app, ["restore", str(halves)])
    assert nothing.exit_code == 0 and nothing.stdout.strip().splitlines()[-1] == "nothing written: pass --out FILE to keep the pairing"


def test_report_without_matplotlib_is_refused_before_any_work(halves_300, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    halves, key = halves_300
    monkeypatch.setitem(sys.modules, "matplotlib", None)  # import matplotlib now raises ImportError
    monkeypatch.setattr(OnnxRuntimeBackend, "arm", lambda *args: pytest.fail("the arms ran before the refusal"))
    result = CliRunner().invoke(app, ["restore", str(halves), "--key", str(key), "--report", str(tmp_path / "rep.png")])
    assert result.exit_code == 2
    assert result.stderr.strip() == "error: --report needs matplotlib: pip install 'amphisbaena[report]'"
    assert list(tmp_path.iterdir()) == []


def png_pixels(path: Path) -> np.ndarray:
    """Decode this package's own PNGs (8-bit, filter 0 on every row)."""
    data = path.read_bytes()
    width, height, _, colour = int.from_bytes(data[16:20], "big"), int.from_bytes(data[20:24], "big"), data[24], data[25]
    channels = 3 if colour == 2 else 1
    raw = zlib.decompress(data[data.index(b"IDAT") + 4 : data.index(b"IEND") - 8])
    rows = np.frombuffer(raw, np.uint8).reshape(height, 1 + width * channels)[:, 1:]
    return rows.reshape(height, width, channels)


def test_grid_frames_wrong_pairs_in_red_only_with_a_key(halves_300, tmp_path: Path) -> None:
    halves, key = halves_300
    keyed, unkeyed = tmp_path / "keyed.png", tmp_path / "unkeyed.png"
    done = CliRunner().invoke(app, ["restore", str(halves), "--key", str(key), "--grid", str(keyed), "--json"])
    assert CliRunner().invoke(app, ["restore", str(halves), "--grid", str(unkeyed)]).exit_code == 0
    summary = json.loads(done.stdout)
    wrong = round((1 - summary["accuracy"]) * summary["count"])
    pixels = png_pixels(keyed)
    red = (pixels[..., 0] == 255) & (pixels[..., 1] == 40) & (pixels[..., 2] == 40)
    assert wrong > 0 and red.sum() >= wrong * 4 * 30  # each wrong digit's frame: 4 sides of about 30 pixels
    assert png_pixels(unkeyed).shape[2] == 1  # greyscale without a key: nothing is marked


def test_json_lists_the_least_confident_with_a_confidence_of_at_least_zero(halves_300) -> None:
    halves, key = halves_300
    summary = json.loads(CliRunner().invoke(app, ["restore", str(halves), "--key", str(key), "--json"]).stdout)
    least = summary["least_confident"]
    assert len(least) == 10 and all(entry["confidence"] >= 0 for entry in least)
    assert [entry["confidence"] for entry in least] == sorted(entry["confidence"] for entry in least)
    assert {row["coverage"] for row in summary["accuracy_by_coverage"]} >= {1.0, 0.8}
