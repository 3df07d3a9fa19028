"""Halves and their files: cutting digits, shuffling, the halves and key npz formats, and validating them.

A halves file holds uint8 'left' and 'right' arrays of shape (N, 28, 14); a key file holds
'right_for_left', the position of each left's right half (-1: it has none).
"""

from __future__ import annotations

import zipfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from amphisbaena.errors import InputError
from amphisbaena.files import atomic_group, write_npz

HEIGHT, HALF_WIDTH = 28, 14


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


@dataclass(frozen=True)
class HalvesRequest:
    """make-halves: cut SPLIT of DATASET (or the idx file IMAGES), the first COUNT digits, shuffled by
    SEED, optionally dropping partners; write the halves to OUTPUT and the key to KEY."""

    output: Path
    key: Path
    split: str = "test"
    seed: int = 0
    images: Path | None = None
    count: int | None = None
    drop_left: float = 0.0
    drop_right: float = 0.0
    dataset: str = "mnist"
    data_dir: Path | None = None


def write_halves(request: HalvesRequest) -> list[str]:
    """Validate REQUEST, cut and shuffle, write both files together; return the lines to print."""
    from amphisbaena.datasets import check_dataset_name, load_images_idx, load_split

    check_dataset_name(request.dataset)
    for path in (request.output, request.key):
        if not path.parent.is_dir():
            raise InputError(f"{path}: directory {path.parent} does not exist")
    if request.output.resolve() == request.key.resolve():
        raise InputError(f"{request.output}: the halves and the key must be different files")
    if request.count is not None and request.count < 1:
        raise InputError(f"--count must be at least 1, got {request.count}")
    for name, fraction in (("--drop-left", request.drop_left), ("--drop-right", request.drop_right)):
        if not 0.0 <= fraction < 1.0:
            raise InputError(f"{name} must lie in [0, 1), got {fraction}")
    if request.images is not None:
        digits = load_images_idx(request.images)
    else:
        digits = load_split(request.split, request.data_dir, request.dataset)[0]
    digits = digits[: request.count] if request.count is not None else digits
    left, right, right_for_left = make_halves(digits, request.seed)
    if request.drop_left or request.drop_right:
        left, right, right_for_left = drop_partners(left, right, right_for_left, request.drop_left, request.drop_right, request.seed)
    with atomic_group(request.output, request.key) as (halves_tmp, key_tmp):
        write_npz(halves_tmp, left=left, right=right)
        write_npz(key_tmp, right_for_left=right_for_left)
    counts = f"{len(left)}" if len(left) == len(right) else f"{len(left)} left and {len(right)} right"
    return [f"wrote {counts} shuffled halves to {request.output} and the key to {request.key}"]
