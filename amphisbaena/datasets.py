"""The MNIST and Fashion-MNIST idx files: where they are, their checksums, download, and reading them.

The MNIST test split ships inside the package (`EMBEDDED_DIR`, see its README for credit and licence),
so restoring the test set needs no network and no data directory. Everything else is found in
--data-dir, $AMPHISBAENA_DATA, a system directory or a user cache, and downloaded there if missing.
"""

from __future__ import annotations

import gzip
import hashlib
import os
import shutil
import struct
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from amphisbaena.errors import InputError
from amphisbaena.files import atomic_path

HEIGHT, WIDTH = 28, 28
DATA_ENV_VAR = "AMPHISBAENA_DATA"
EMBEDDED_DIR = Path(__file__).resolve().parent / "embedded"  # the MNIST test split, images and labels


@dataclass(frozen=True)
class DatasetSpec:
    """Where a dataset's idx files come from and what they must hash to."""

    name: str
    mirrors: tuple[str, ...]
    md5: dict[str, str]  # uncompressed file name -> md5 of its uncompressed bytes
    system_dirs: tuple[str, ...] = ()


MNIST = DatasetSpec(
    name="mnist",
    mirrors=(
        "https://ossci-datasets.s3.amazonaws.com/mnist/",
        "https://storage.googleapis.com/cvdf-datasets/mnist/",
    ),
    md5={
        "train-images-idx3-ubyte": "6bbc9ace898e44ae57da46a324031adb",
        "train-labels-idx1-ubyte": "a25bea736e30d166cdddb491f175f624",
        "t10k-images-idx3-ubyte": "2646ac647ad5339dbf082846283269ea",
        "t10k-labels-idx1-ubyte": "27ae3e4e09519cfbb04c329615203637",
    },
)

# The md5s are of the uncompressed files, computed from the Debian package dataset-fashion-mnist
# (whose .gz wrappers differ from the upstream ones; the idx bytes inside do not).
FASHION_MNIST = DatasetSpec(
    name="fashion-mnist",
    mirrors=("http://fashion-mnist.s3-website.eu-central-1.amazonaws.com/",),
    md5={
        "train-images-idx3-ubyte": "f4a8712d7a061bf5bd6d2ca38dc4d50a",
        "train-labels-idx1-ubyte": "9018921c3c673c538a1fc5bad174d6f9",
        "t10k-images-idx3-ubyte": "8181f5470baa50b63fa0f6fddb340f0a",
        "t10k-labels-idx1-ubyte": "15d484375f8d13e6eb1aabb0c3f46965",
    },
    system_dirs=("/usr/share/datasets/fashion-mnist",),
)

DATASETS = {spec.name: spec for spec in (MNIST, FASHION_MNIST)}
SPLIT_PREFIX = {"train": "train", "test": "t10k"}


# ---------------------------------------------------------------- idx files


def check_dataset_name(dataset: str) -> str:
    """DATASET if it is one of DATASETS; else a one-line error."""
    if dataset not in DATASETS:
        raise InputError(f"--dataset must be one of {', '.join(DATASETS)}, got {dataset!r}")
    return dataset


def read_idx(path: Path, md5: str | None = None) -> np.ndarray:
    """Read an idx file (optionally gzipped) into a numpy array of its declared shape; with MD5, the
    uncompressed bytes must have that md5."""
    try:
        raw = path.read_bytes()
        if raw[:2] == b"\x1f\x8b":
            raw = gzip.decompress(raw)
    except (OSError, EOFError, gzip.BadGzipFile) as exc:
        raise InputError(f"{path}: cannot read idx file ({exc.__class__.__name__}: {exc})") from None
    if md5 is not None and hashlib.md5(raw).hexdigest() != md5:
        raise InputError(f"{path}: md5 does not match the published MNIST file; reinstall amphisbaena")
    if len(raw) < 4 or raw[0] != 0 or raw[1] != 0 or raw[2] != 0x08:
        raise InputError(f"{path}: not an unsigned-byte idx file (bad magic number)")
    ndim = raw[3]
    header = 4 + 4 * ndim
    if ndim == 0 or len(raw) < header:
        raise InputError(f"{path}: truncated idx header")
    shape = struct.unpack(f">{ndim}I", raw[4:header])
    count = int(np.prod(shape, dtype=np.int64))
    if len(raw) - header != count:
        raise InputError(f"{path}: idx payload has {len(raw) - header} bytes, header declares {count}")
    return np.frombuffer(raw, dtype=np.uint8, offset=header).reshape(shape).copy()


def resolve_data_dir(data_dir: Path | None, dataset: str = "mnist") -> Path:
    """--data-dir, then $AMPHISBAENA_DATA, then the system dir for the dataset, then a user cache dir."""
    if data_dir is not None:
        return Path(data_dir)
    env = os.environ.get(DATA_ENV_VAR)
    if env and dataset == "mnist":
        return Path(env)
    if env:
        candidate = Path(env).parent / dataset
        if candidate.is_dir():
            return candidate
    for system_dir in DATASETS[dataset].system_dirs:
        if Path(system_dir).is_dir():
            return Path(system_dir)
    cache = Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache"))
    return cache / "amphisbaena" / dataset


def _find_file(directory: Path, name: str) -> Path | None:
    for candidate in (directory / name, directory / f"{name}.gz"):
        if candidate.is_file():
            return candidate
    return None


def _download(spec: DatasetSpec, name: str, directory: Path) -> Path:
    """Fetch NAME.gz from the first mirror that answers and verify its md5 before keeping it."""
    import urllib.request  # here, not at the top: only a download needs it, and every command would load it

    directory.mkdir(parents=True, exist_ok=True)
    errors = []
    for mirror in spec.mirrors:
        try:
            with urllib.request.urlopen(f"{mirror}{name}.gz", timeout=30) as response:
                payload = response.read()
            data = gzip.decompress(payload)
        except (OSError, EOFError, ValueError) as exc:
            errors.append(f"{mirror}: {exc}")
            continue
        if hashlib.md5(data).hexdigest() != spec.md5[name]:
            errors.append(f"{mirror}: md5 mismatch")
            continue
        target = directory / f"{name}.gz"
        with atomic_path(target) as tmp:
            tmp.write_bytes(payload)
        return target
    raise InputError(f"cannot download {name}: " + "; ".join(errors))


def embedded_split(split: str, dataset: str) -> tuple[Path, Path] | None:
    """The images and labels shipped inside the package for this split, if any (the MNIST test split)."""
    if dataset != "mnist" or split != "test":
        return None
    return EMBEDDED_DIR / "t10k-images-idx3-ubyte.gz", EMBEDDED_DIR / "t10k-labels-idx1-ubyte.gz"


def dataset_files(split: str, data_dir: Path | None = None, dataset: str = "mnist") -> tuple[Path, Path]:
    """Paths of the images and labels idx files of a split: from the data directory where it holds
    them, else the embedded copy, else downloaded into the data directory. A failed download leaves
    no directory behind that it created."""
    spec = DATASETS[dataset]
    directory = resolve_data_dir(data_dir, dataset)
    names = [f"{SPLIT_PREFIX[split]}-images-idx3-ubyte", f"{SPLIT_PREFIX[split]}-labels-idx1-ubyte"]
    found = [_find_file(directory, name) for name in names]
    if all(found):
        return found[0], found[1]
    embedded = embedded_split(split, dataset)
    if embedded is not None:
        return embedded
    created = _missing_ancestor(directory)
    try:
        paths = [path or _download(spec, name, directory) for path, name in zip(found, names)]
    except InputError as exc:
        if created is not None:
            shutil.rmtree(created, ignore_errors=True)
        raise InputError(
            f"{spec.name} {split} files not found in {directory} and download failed ({exc}); "
            f"put {', '.join(names)} (optionally .gz) in a directory and pass --data-dir or set {DATA_ENV_VAR}"
        ) from None
    return paths[0], paths[1]


def _missing_ancestor(directory: Path) -> Path | None:
    """The outermost of DIRECTORY and its parents that does not exist yet (what a download would create)."""
    missing = None
    for candidate in (directory, *directory.parents):
        if candidate.exists():
            break
        missing = candidate
    return missing


def verify_checksums(data_dir: Path | None = None, dataset: str = "mnist") -> dict[str, bool]:
    """md5 of each uncompressed idx file against the published value."""
    spec = DATASETS[dataset]
    directory = resolve_data_dir(data_dir, dataset)
    result = {}
    for name, expected in spec.md5.items():
        path = _find_file(directory, name)
        if path is None:
            result[name] = False
            continue
        raw = path.read_bytes()
        if raw[:2] == b"\x1f\x8b":
            raw = gzip.decompress(raw)
        result[name] = hashlib.md5(raw).hexdigest() == expected
    return result


def load_split(split: str, data_dir: Path | None = None, dataset: str = "mnist") -> tuple[np.ndarray, np.ndarray]:
    """Images (N, 28, 28) uint8 and labels (N,) uint8 of the train or test split."""
    if split not in SPLIT_PREFIX:
        raise InputError(f"unknown split {split!r}; expected one of {sorted(SPLIT_PREFIX)}")
    images_path, labels_path = dataset_files(split, data_dir, dataset)
    shipped = images_path.parent == EMBEDDED_DIR
    md5 = DATASETS[dataset].md5
    images = read_idx(images_path, md5[images_path.name.removesuffix(".gz")] if shipped else None)
    labels = read_idx(labels_path, md5[labels_path.name.removesuffix(".gz")] if shipped else None)
    if images.ndim != 3 or images.shape[1:] != (HEIGHT, WIDTH) or labels.shape != images.shape[:1]:
        raise InputError(f"{images_path}: unexpected shape {images.shape} (labels {labels.shape})")
    return images, labels


def load_images_idx(path: Path) -> np.ndarray:
    """A user's idx images file, which must hold (N, 28, 28) uint8 digits."""
    images = read_idx(path)
    if images.ndim != 3 or images.shape[1:] != (HEIGHT, WIDTH) or images.shape[0] == 0:
        raise InputError(f"{path}: expected idx images of shape (N>0, 28, 28), got {images.shape}")
    return images


