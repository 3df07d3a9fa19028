from __future__ import annotations

import gzip
import struct
import urllib.request
from pathlib import Path

import numpy as np
import pytest

from amphisbaena import datasets
from amphisbaena.errors import InputError


def write_idx(path: Path, array: np.ndarray, compress: bool = False) -> Path:
    payload = bytes([0, 0, 8, array.ndim]) + struct.pack(f">{array.ndim}I", *array.shape) + array.tobytes()
    path.write_bytes(gzip.compress(payload) if compress else payload)
    return path


@pytest.mark.parametrize("compress", [False, True])
def test_idx_round_trip(tmp_path: Path, compress: bool) -> None:
    array = np.arange(3 * 28 * 28, dtype=np.uint32).astype(np.uint8).reshape(3, 28, 28)
    assert np.array_equal(datasets.read_idx(write_idx(tmp_path / "x", array, compress)), array)


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
        datasets.read_idx(path)


def test_real_mnist_checksums(mnist_dir: Path) -> None:
    assert datasets.verify_checksums(mnist_dir) == {name: True for name in datasets.MNIST.md5}


def test_data_dir_precedence(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(datasets.DATA_ENV_VAR, str(tmp_path / "env"))
    assert datasets.resolve_data_dir(tmp_path / "flag") == tmp_path / "flag"
    assert datasets.resolve_data_dir(None) == tmp_path / "env"
    monkeypatch.delenv(datasets.DATA_ENV_VAR)
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    assert datasets.resolve_data_dir(None) == tmp_path / "cache" / "amphisbaena" / "mnist"


def test_offline_without_files_names_directory_and_files(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    def offline(*args, **kwargs):
        raise OSError("network unreachable")

    monkeypatch.setattr(urllib.request, "urlopen", offline)
    with pytest.raises(InputError) as error:
        datasets.load_split("train", tmp_path / "new" / "mnist")
    message = str(error.value)
    assert str(tmp_path) in message and "\n" not in message and "--data-dir" in message
    for name in ("train-images-idx3-ubyte", "train-labels-idx1-ubyte"):
        assert name in message
    assert list(tmp_path.iterdir()) == []  # the directories the download would have filled are gone again


def test_test_split_is_embedded_and_works_offline(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, mnist_dir: Path) -> None:
    """With no data directory and no network, the test split comes from the package, equal to the real files."""
    monkeypatch.setattr(urllib.request, "urlopen", lambda *args, **kwargs: pytest.fail("no download expected"))
    images, labels = datasets.load_split("test", tmp_path / "empty")
    real_images, real_labels = datasets.load_split("test", mnist_dir)
    assert images.shape == (10_000, 28, 28) and np.array_equal(images, real_images) and np.array_equal(labels, real_labels)
    assert not (tmp_path / "empty").exists()


def test_embedded_split_is_checked_by_md5(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """An embedded file whose bytes changed is refused with one line, not read."""
    bad = tmp_path / "embedded"
    bad.mkdir()
    (bad / "t10k-images-idx3-ubyte.gz").write_bytes(gzip.compress(bytes([0, 0, 8, 3]) + struct.pack(">3I", 1, 28, 28) + bytes(784)))
    (bad / "t10k-labels-idx1-ubyte.gz").write_bytes((datasets.EMBEDDED_DIR / "t10k-labels-idx1-ubyte.gz").read_bytes())
    monkeypatch.setattr(datasets, "EMBEDDED_DIR", bad)
    with pytest.raises(InputError, match="md5"):
        datasets.load_split("test", tmp_path / "empty")


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

    spec = datasets.DatasetSpec("toy", ("m1/", "m2/"), {"toy-idx": __import__("hashlib").md5(good).hexdigest()})
    bodies = {"m1/toy-idx.gz": b"corrupted", "m2/toy-idx.gz": good}
    monkeypatch.setattr(urllib.request, "urlopen", lambda url, timeout: Response(bodies[url]))
    path = datasets._download(spec, "toy-idx", tmp_path / "cache")
    assert gzip.decompress(path.read_bytes()) == good
