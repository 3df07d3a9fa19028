from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from amphisbaena import halves
from amphisbaena.errors import InputError


def test_make_halves_key_restores_originals(test_digits: np.ndarray) -> None:
    digits = test_digits[:500]
    left, right, key = halves.make_halves(digits, seed=3)
    assert left.shape == right.shape == (500, 28, 14) and left.dtype == np.uint8 and key.dtype == np.int64
    restored = halves.join_halves(left, right, key)
    assert sorted(map(bytes, restored)) == sorted(map(bytes, digits))
    assert not np.array_equal(key, np.arange(500))


def halves_file(tmp_path: Path, **arrays) -> Path:
    path = tmp_path / "halves.npz"
    np.savez(path, **arrays)
    return path


GOOD = np.zeros((5, 28, 14), np.uint8)


@pytest.mark.parametrize(
    "arrays, message",
    [
        ({"left": GOOD}, "exactly the keys"),
        ({"left": GOOD, "right": GOOD, "extra": GOOD}, "exactly the keys"),
        ({"left": GOOD, "right": GOOD[:4]}, "counts must match"),
        ({"left": GOOD, "right": np.zeros((5, 28, 28), np.uint8)}, "shape"),
        ({"left": GOOD, "right": GOOD.astype(np.int32)}, "uint8 or float"),
        ({"left": GOOD, "right": np.full((5, 28, 14), 2.0)}, r"\[0, 1\]"),
        ({"left": GOOD, "right": np.full((5, 28, 14), np.nan)}, "NaN"),
        ({"left": GOOD[:0], "right": GOOD[:0]}, "empty"),
        ({"left": GOOD, "right": np.array([{"x": 1}] * 5, dtype=object)}, "pickled"),
    ],
)
def test_load_halves_rejects(tmp_path: Path, arrays: dict, message: str) -> None:
    with pytest.raises(InputError, match=message):
        halves.load_halves(halves_file(tmp_path, **arrays))


def test_load_halves_accepts_float_and_channel_axis(tmp_path: Path) -> None:
    rng = np.random.default_rng(0)
    left = rng.integers(0, 256, (4, 28, 14), dtype=np.uint8)
    path = halves_file(tmp_path, left=(left / 255.0)[:, None], right=left)
    loaded_left, loaded_right = halves.load_halves(path)
    assert np.array_equal(loaded_left, left) and np.array_equal(loaded_right, left)


def test_load_halves_rejects_non_npz(tmp_path: Path) -> None:
    path = tmp_path / "x.npz"
    path.write_bytes(b"PK\x03\x04 this is not a zip")
    with pytest.raises(InputError, match="not a readable .npz"):
        halves.load_halves(path)
    with pytest.raises(InputError, match="no such file"):
        halves.load_halves(tmp_path / "missing.npz")


def test_load_key_requires_permutation(tmp_path: Path) -> None:
    path = tmp_path / "key.npz"
    np.savez(path, right_for_left=np.array([0, 0, 1]))
    with pytest.raises(InputError, match="not a permutation"):
        halves.load_key(path, 3)
    with pytest.raises(InputError, match="has 3 entries"):
        halves.load_key(path, 4)
