"""MNIST idx files, the halves/key npz formats, and their validation.

Everything that reads a user's file goes through here, so every bad input
becomes one `InputError` with a one-line message naming the file and what
was expected.
"""

from __future__ import annotations

import gzip
import hashlib
import os
import struct
import tempfile
import urllib.request
import zipfile
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass
from pathlib import Path

import numpy as np

HEIGHT, WIDTH, HALF_WIDTH = 28, 28, 14
DATA_ENV_VAR = "AMPHISBAENA_DATA"


class InputError(Exception):
    """A problem with the user's input; the CLI prints it as one line and exits 2."""


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


def read_idx(path: Path) -> np.ndarray:
    """Read an idx file (optionally gzipped) into a numpy array of its declared shape."""
    try:
        raw = path.read_bytes()
        if raw[:2] == b"\x1f\x8b":
            raw = gzip.decompress(raw)
    except (OSError, EOFError, gzip.BadGzipFile) as exc:
        raise InputError(f"{path}: cannot read idx file ({exc.__class__.__name__}: {exc})") from None
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


def dataset_files(split: str, data_dir: Path | None = None, dataset: str = "mnist") -> tuple[Path, Path]:
    """Paths of the images and labels idx files of a split, downloading them if missing."""
    spec = DATASETS[dataset]
    directory = resolve_data_dir(data_dir, dataset)
    names = [f"{SPLIT_PREFIX[split]}-images-idx3-ubyte", f"{SPLIT_PREFIX[split]}-labels-idx1-ubyte"]
    paths = []
    for name in names:
        found = _find_file(directory, name)
        if found is None:
            try:
                found = _download(spec, name, directory)
            except InputError as exc:
                wanted = ", ".join(spec.md5)
                raise InputError(
                    f"{spec.name} files not found in {directory} and download failed ({exc}); "
                    f"put {wanted} (optionally .gz) there or set {DATA_ENV_VAR}"
                ) from None
        paths.append(found)
    return paths[0], paths[1]


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
    images, labels = read_idx(images_path), read_idx(labels_path)
    if images.ndim != 3 or images.shape[1:] != (HEIGHT, WIDTH) or labels.shape != images.shape[:1]:
        raise InputError(f"{images_path}: unexpected shape {images.shape} (labels {labels.shape})")
    return images, labels


def load_images_idx(path: Path) -> np.ndarray:
    """A user's idx images file, which must hold (N, 28, 28) uint8 digits."""
    images = read_idx(path)
    if images.ndim != 3 or images.shape[1:] != (HEIGHT, WIDTH) or images.shape[0] == 0:
        raise InputError(f"{path}: expected idx images of shape (N>0, 28, 28), got {images.shape}")
    return images


# ---------------------------------------------------------------- halves


def split_halves(images: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Cut (N, 28, 28) digits at the vertical centre line into left and right (N, 28, 14) halves."""
    return np.ascontiguousarray(images[:, :, :HALF_WIDTH]), np.ascontiguousarray(images[:, :, HALF_WIDTH:])


def make_halves(images: np.ndarray, seed: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Shuffle both halves independently; returns left, right and right_for_left (the key)."""
    rng = np.random.default_rng(seed)
    left, right = split_halves(images)
    left_order = rng.permutation(len(images))  # left[i] came from digit left_order[i]
    right_order = rng.permutation(len(images))
    position_of_right = np.empty_like(right_order)
    position_of_right[right_order] = np.arange(len(images))
    right_for_left = position_of_right[left_order].astype(np.int64)
    return left[left_order], right[right_order], right_for_left


def drop_partners(
    left: np.ndarray, right: np.ndarray, right_for_left: np.ndarray, drop_left: float, drop_right: float, seed: int
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Remove a random fraction of the lefts and, independently, of the rights, so some halves
    have no partner; the key marks those with -1."""
    rng = np.random.default_rng([seed, 1])

    def kept(count: int, fraction: float) -> np.ndarray:
        return np.sort(rng.permutation(count)[round(fraction * count) :])

    keep_left, keep_right = kept(len(left), drop_left), kept(len(right), drop_right)
    new_position = np.full(len(right), -1, dtype=np.int64)
    new_position[keep_right] = np.arange(len(keep_right))
    return left[keep_left], right[keep_right], new_position[right_for_left[keep_left]]


def join_halves(left: np.ndarray, right: np.ndarray, right_for_left: np.ndarray) -> np.ndarray:
    """The restored (N, 28, 28) digits in left order; a left with no partner (-1) gets a blank right."""
    partners = np.zeros((len(left), HEIGHT, HALF_WIDTH), dtype=np.uint8)
    matched = right_for_left >= 0
    partners[matched] = right[right_for_left[matched]]
    return np.concatenate([left, partners], axis=2)


def _open_npz(path: Path) -> zipfile.ZipFile:
    if not path.exists():
        raise InputError(f"{path}: no such file")
    if not path.is_file():
        raise InputError(f"{path}: not a regular file")
    try:
        loaded = np.load(path, allow_pickle=False)
    except (OSError, ValueError, zipfile.BadZipFile, EOFError, RuntimeError) as exc:
        raise InputError(f"{path}: not a readable .npz file ({exc.__class__.__name__})") from None
    if not isinstance(loaded, np.lib.npyio.NpzFile):
        raise InputError(f"{path}: holds a single array (.npy), expected an .npz archive with named arrays")
    return loaded


def _read_array(npz, path: Path, key: str) -> np.ndarray:
    try:
        array = npz[key]
    except ValueError as exc:
        if "pickle" in str(exc):
            raise InputError(f"{path}: key {key!r} holds an object/pickled array, which is refused") from None
        raise InputError(f"{path}: key {key!r} is not a plain array ({exc})") from None
    except (OSError, EOFError, zipfile.BadZipFile, RuntimeError, KeyError) as exc:
        raise InputError(f"{path}: key {key!r} is corrupt or truncated ({exc.__class__.__name__})") from None
    if not isinstance(array, np.ndarray):
        raise InputError(f"{path}: key {key!r} is not a .npy array inside the archive")
    return array


def _as_halves(array: np.ndarray, path: Path, key: str) -> np.ndarray:
    """Accept uint8, or float in [0, 1] that maps exactly onto 0..255, with an optional channel axis."""
    if array.ndim == 4 and array.shape[1] == 1:
        array = array[:, 0]
    if array.ndim != 3 or array.shape[1:] != (HEIGHT, HALF_WIDTH):
        raise InputError(f"{path}: key {key!r} must have shape (N, 28, 14) or (N, 1, 28, 14), got {array.shape}")
    if array.shape[0] == 0:
        raise InputError(f"{path}: key {key!r} is empty")
    if array.dtype == np.uint8:
        return np.ascontiguousarray(array)
    if array.dtype.kind == "f":
        if not np.isfinite(array).all():
            raise InputError(f"{path}: key {key!r} contains NaN or inf")
        if array.min() < 0 or array.max() > 1:
            raise InputError(f"{path}: key {key!r} float values must lie in [0, 1]")
        scaled = array.astype(np.float64) * 255.0
        rounded = np.rint(scaled)
        if np.abs(scaled - rounded).max() > 1e-3:
            raise InputError(f"{path}: key {key!r} float values are not multiples of 1/255")
        return rounded.astype(np.uint8)
    raise InputError(f"{path}: key {key!r} must be uint8 or float in [0, 1], got {array.dtype}")


def load_halves(path: Path, allow_unequal: bool = False) -> tuple[np.ndarray, np.ndarray]:
    """Left and right halves from a halves npz, validated."""
    with _open_npz(path) as npz:
        keys = set(npz.files)
        if keys != {"left", "right"}:
            raise InputError(f"{path}: expected exactly the keys 'left' and 'right', found {sorted(keys)}")
        left = _as_halves(_read_array(npz, path, "left"), path, "left")
        right = _as_halves(_read_array(npz, path, "right"), path, "right")
    if len(left) != len(right) and not allow_unequal:
        raise InputError(
            f"{path}: 'left' has {len(left)} halves but 'right' has {len(right)}; "
            "counts must match, or pass --allow-unmatched"
        )
    return left, right


def load_key(path: Path, count: int, partners: int | None = None) -> np.ndarray:
    """The answer key: right_for_left, a permutation of range(count); or, where PARTNERS (the
    number of rights) is given, distinct indices below it, with -1 for a left that has none."""
    with _open_npz(path) as npz:
        if "right_for_left" not in npz.files:
            raise InputError(f"{path}: expected key 'right_for_left', found {sorted(npz.files)}")
        key = _read_array(npz, path, "right_for_left")
    if key.ndim != 1 or key.dtype.kind not in "iu":
        raise InputError(f"{path}: 'right_for_left' must be a 1-D integer array, got {key.dtype} {key.shape}")
    if len(key) != count:
        raise InputError(f"{path}: 'right_for_left' has {len(key)} entries, the halves have {count}")
    if partners is not None:
        matched = key[key != -1]
        if len(matched) and (matched.min() < 0 or matched.max() >= partners or len(np.unique(matched)) != len(matched)):
            raise InputError(f"{path}: 'right_for_left' must hold distinct indices below {partners}, or -1 for no partner")
        return key.astype(np.int64)
    if not np.array_equal(np.sort(key), np.arange(count)):
        raise InputError(f"{path}: 'right_for_left' is not a permutation of 0..{count - 1}")
    return key.astype(np.int64)


@contextmanager
def atomic_path(target: Path) -> Iterator[Path]:
    """Yield a temporary path beside TARGET; rename it onto TARGET only if the block succeeds."""
    with atomic_group(target) as (tmp,):
        yield tmp


@contextmanager
def _temporary_beside(target: Path) -> Iterator[Path]:
    """A fresh, world-readable temporary file in TARGET's directory, removed unless renamed away."""
    fd, tmp_name = tempfile.mkstemp(prefix=f".{target.name}.", suffix=".part", dir=target.parent or ".")
    os.close(fd)
    tmp = Path(tmp_name)
    umask = os.umask(0)
    os.umask(umask)
    tmp.chmod(0o666 & ~umask)  # mkstemp's 0600 would make shared outputs unreadable to others
    try:
        yield tmp
    finally:
        if tmp.exists():
            tmp.unlink()


@contextmanager
def atomic_group(*targets: Path) -> Iterator[list[Path]]:
    """Temporary paths for several outputs that appear together or not at all: all are renamed
    onto their targets only after the block succeeds; on any failure all are removed."""
    with ExitStack() as stack:
        temporaries = [stack.enter_context(_temporary_beside(Path(target))) for target in targets]
        yield temporaries
        for tmp, target in zip(temporaries, targets):
            os.replace(tmp, target)


def write_npz(path: Path, **arrays: np.ndarray) -> None:
    """Write an npz to exactly PATH (numpy would append .npz to a temporary name)."""
    with open(path, "wb") as handle:
        np.savez(handle, **arrays)


def save_npz(target: Path, **arrays: np.ndarray) -> None:
    """Write an npz atomically."""
    target = Path(target)
    if not target.parent.is_dir():
        raise InputError(f"{target}: directory {target.parent} does not exist")
    with atomic_path(target) as tmp:
        write_npz(tmp, **arrays)
