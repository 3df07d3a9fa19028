from __future__ import annotations

import gzip
import struct
from pathlib import Path

import numpy as np
import pytest

from amphisbaena import data
from amphisbaena.data import InputError


def write_idx(path: Path, array: np.ndarray, compress: bool = False) -> Path:
    payload = bytes([0, 0, 8, array.ndim]) + struct.pack(f">{array.ndim}I", *array.shape) + array.tobytes()
    path.write_bytes(gzip.compress(payload) if compress else payload)
    return path


@pytest.mark.parametrize("compress", [False, True])
def test_idx_round_trip(tmp_path: Path, compress: bool) -> None:
    array = np.arange(3 * 28 * 28, dtype=np.uint32).astype(np.uint8).reshape(3, 28, 28)
    assert np.array_equal(data.read_idx(write_idx(tmp_path / "x", array, compress)), array)


@pytest.mark.parametrize(
    "payload, message",
    [
        (b"\x00\x00\x0d\x03", "bad magic"),
        (b"\x00\x00\x08\x03\x00\x00", "truncated"),
        (bytes([0, 0, 8, 1]) + struct.pack(">I", 10) + b"\x00" * 9, "header declares 10"),
    ],
)
def test_idx_rejects_malformed(tmp_path: Path, payload: bytes, message: str) -> None:
    path = tmp_path / "bad"
    path.write_bytes(payload)
    with pytest.raises(InputError, match=message):
        data.read_idx(path)


def test_real_mnist_checksums(mnist_dir: Path) -> None:
    assert data.verify_checksums(mnist_dir) == {name: True for name in data.MNIST.md5}


def test_data_dir_precedence(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(data.DATA_ENV_VAR, str(tmp_path / "env"))
    assert data.resolve_data_dir(tmp_path / "flag") == tmp_path / "flag"
    assert data.resolve_data_dir(None) == tmp_path / "env"
    monkeypatch.delenv(data.DATA_ENV_VAR)
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    assert data.resolve_data_dir(None) == tmp_path / "cache" / "amphisbaena" / "mnist"


def test_offline_without_files_names_directory_and_files(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    def offline(*args, **kwargs):
        raise OSError("network unreachable")

    monkeypatch.setattr(data.urllib.request, "urlopen", offline)
    with pytest.raises(InputError) as error:
        data.load_split("test", tmp_path)
    message = str(error.value)
    assert str(tmp_path) in message and "\n" not in message
    for name in data.MNIST.md5:
        assert name in message


def test_download_verifies_md5(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A mirror serving the wrong bytes is refused; the right bytes are kept."""
    good = write_idx(tmp_path / "g", np.zeros((2, 28, 28), np.uint8)).read_bytes()

    class Response:
        def __init__(self, body: bytes) -> None:
            self.body = body

        def __enter__(self):
            return self

        def __exit__(self, *exc) -> None:
            pass

        def read(self) -> bytes:
            return gzip.compress(self.body)

    spec = data.DatasetSpec("toy", ("m1/", "m2/"), {"toy-idx": __import__("hashlib").md5(good).hexdigest()})
    bodies = {"m1/toy-idx.gz": b"corrupted", "m2/toy-idx.gz": good}
    monkeypatch.setattr(data.urllib.request, "urlopen", lambda url, timeout: Response(bodies[url]))
    path = data._download(spec, "toy-idx", tmp_path / "cache")
    assert gzip.decompress(path.read_bytes()) == good


def test_make_halves_key_restores_originals(test_digits: np.ndarray) -> None:
    digits = test_digits[:500]
    left, right, key = data.make_halves(digits, seed=3)
    assert left.shape == right.shape == (500, 28, 14) and left.dtype == np.uint8 and key.dtype == np.int64
    restored = data.join_halves(left, right, key)
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
        data.load_halves(halves_file(tmp_path, **arrays))


def test_load_halves_accepts_float_and_channel_axis(tmp_path: Path) -> None:
    rng = np.random.default_rng(0)
    left = rng.integers(0, 256, (4, 28, 14), dtype=np.uint8)
    path = halves_file(tmp_path, left=(left / 255.0)[:, None], right=left)
    loaded_left, loaded_right = data.load_halves(path)
    assert np.array_equal(loaded_left, left) and np.array_equal(loaded_right, left)


def test_load_halves_rejects_non_npz(tmp_path: Path) -> None:
    path = tmp_path / "x.npz"
    path.write_bytes(b"PK\x03\x04 this is not a zip")
    with pytest.raises(InputError, match="not a readable .npz"):
        data.load_halves(path)
    with pytest.raises(InputError, match="no such file"):
        data.load_halves(tmp_path / "missing.npz")


def test_load_key_requires_permutation(tmp_path: Path) -> None:
    path = tmp_path / "key.npz"
    np.savez(path, right_for_left=np.array([0, 0, 1]))
    with pytest.raises(InputError, match="not a permutation"):
        data.load_key(path, 3)
    with pytest.raises(InputError, match="has 3 entries"):
        data.load_key(path, 4)


def test_save_npz_is_atomic(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    target = tmp_path / "out.npz"

    def broken_savez(handle, **arrays):
        handle.write(b"partial")
        raise RuntimeError("disk full")

    monkeypatch.setattr(data.np, "savez", broken_savez)
    with pytest.raises(RuntimeError):
        data.save_npz(target, x=np.zeros(3))
    assert list(tmp_path.iterdir()) == []
