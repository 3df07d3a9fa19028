"""Halves and their files: cutting digits, shuffling, the halves and key npz formats, and validating them.

A halves file holds uint8 'left' and 'right' arrays of shape (N, 28, 14); a key file holds
'right_for_left', the position of each left's right half (-1: it has none).
"""

from __future__ import annotations

import zipfile
from pathlib import Path

import numpy as np

from amphisbaena.errors import InputError

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


def as_images(array: object, where: str, width: int = HALF_WIDTH) -> np.ndarray:
    """ARRAY as contiguous (N, 28, WIDTH) uint8: uint8, or float in [0, 1] that maps exactly onto 0..255,
    with an optional channel axis (N, 1, 28, WIDTH). WHERE names the array in the one-line error."""
    array = np.asarray(array)
    if array.ndim == 4 and array.shape[1] == 1:
        array = array[:, 0]
    if array.ndim != 3 or array.shape[1:] != (HEIGHT, width):
        raise InputError(f"{where} must have shape (N, 28, {width}) or (N, 1, 28, {width}), got {array.shape}")
    if array.shape[0] == 0:
        raise InputError(f"{where} is empty")
    if array.dtype == np.uint8:
        return np.ascontiguousarray(array)
    if array.dtype.kind == "f":
        if not np.isfinite(array).all():
            raise InputError(f"{where} contains NaN or inf")
        if array.min() < 0 or array.max() > 1:
            raise InputError(f"{where} float values must lie in [0, 1]")
        scaled = array.astype(np.float64) * 255.0
        rounded = np.rint(scaled)
        if np.abs(scaled - rounded).max() > 1e-3:
            raise InputError(f"{where} float values are not multiples of 1/255")
        return rounded.astype(np.uint8)
    raise InputError(f"{where} must be uint8 or float in [0, 1], got {array.dtype}")


def check_counts(left: np.ndarray, right: np.ndarray, where: str, allow_unequal: bool) -> None:
    """Refuse unequal counts of lefts and rights unless ALLOW_UNEQUAL (WHERE prefixes the message)."""
    if len(left) != len(right) and not allow_unequal:
        raise InputError(
            f"{where}'left' has {len(left)} halves but 'right' has {len(right)}; "
            "counts must match, or pass --allow-unmatched"
        )


def load_halves(path: Path, allow_unequal: bool = False) -> tuple[np.ndarray, np.ndarray]:
    """Left and right halves from a halves npz, validated."""
    with _open_npz(path) as npz:
        keys = set(npz.files)
        if keys != {"left", "right"}:
            raise InputError(f"{path}: expected exactly the keys 'left' and 'right', found {sorted(keys)}")
        left = as_images(_read_array(npz, path, "left"), f"{path}: key 'left'")
        right = as_images(_read_array(npz, path, "right"), f"{path}: key 'right'")
    check_counts(left, right, f"{path}: ", allow_unequal)
    return left, right


def load_key(path: Path, count: int, partners: int | None = None) -> np.ndarray:
    """The answer key from a key npz, validated by `check_key`."""
    with _open_npz(path) as npz:
        if "right_for_left" not in npz.files:
            raise InputError(f"{path}: expected key 'right_for_left', found {sorted(npz.files)}")
        key = _read_array(npz, path, "right_for_left")
    return check_key(key, count, partners, f"{path}: ")


def check_key(key: object, count: int, partners: int | None = None, where: str = "") -> np.ndarray:
    """KEY as (COUNT,) int64 right_for_left: a permutation of range(COUNT); or, where PARTNERS (the
    number of rights) is given, distinct indices below it, with -1 for a left that has none.
    WHERE prefixes the one-line error."""
    key = np.asarray(key)
    if key.ndim != 1 or key.dtype.kind not in "iu":
        raise InputError(f"{where}'right_for_left' must be a 1-D integer array, got {key.dtype} {key.shape}")
    if len(key) != count:
        raise InputError(f"{where}'right_for_left' has {len(key)} entries, the halves have {count}")
    if partners is not None:
        matched = key[key != -1]
        if len(matched) and (matched.min() < 0 or matched.max() >= partners or len(np.unique(matched)) != len(matched)):
            raise InputError(f"{where}'right_for_left' must hold distinct indices below {partners}, or -1 for no partner")
        return key.astype(np.int64)
    if not np.array_equal(np.sort(key), np.arange(count)):
        raise InputError(f"{where}'right_for_left' is not a permutation of 0..{count - 1}")
    return key.astype(np.int64)
