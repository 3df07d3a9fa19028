"""Halves as a user holds them: cut from digits, loaded from the files `make-halves` writes, saved back."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from amphisbaena import halves as formats
from amphisbaena.errors import InputError
from amphisbaena.files import atomic_group, write_npz


@dataclass(frozen=True, eq=False)
class Halves:
    """Shuffled halves and, where known, the answer.

    left: (N, 28, 14) uint8. right: (M, 28, 14) uint8 (M == N unless some halves lack a partner).
    key: (N,) int64 right_for_left, the position in `right` of each left's partner (-1: none), or None."""

    left: np.ndarray
    right: np.ndarray
    key: np.ndarray | None = None

    def __len__(self) -> int:
        return len(self.left)

    def __repr__(self) -> str:
        keyed = "with" if self.key is not None else "without"
        return f"Halves({len(self.left)} left, {len(self.right)} right, {keyed} key)"

    def save(self, path: str | Path, key: str | Path | None = None) -> None:
        """Write the halves npz (uint8 'left' and 'right') to PATH and, with KEY, the key npz
        ('right_for_left'): the files `make-halves` writes, both or neither."""
        targets = [as_path(path, "path")] + ([as_path(key, "key")] if key is not None else [])
        if key is not None and self.key is None:
            raise InputError(f"{key}: these halves have no key to write")
        check_targets(*targets)
        with atomic_group(*targets) as temporaries:
            write_npz(temporaries[0], left=self.left, right=self.right)
            if key is not None:
                write_npz(temporaries[1], right_for_left=self.key)


def as_path(value: object, what: str) -> Path:
    """VALUE (str or path-like) as a Path; anything else is refused in one line."""
    try:
        return Path(value)  # type: ignore[arg-type]
    except TypeError:
        raise InputError(f"{what} must be a file path, got {type(value).__name__}") from None


def check_targets(*paths: Path) -> None:
    """Refuse, before any work, output PATHS in missing directories, or the halves and the key in one file."""
    for path in paths:
        if not path.parent.is_dir():
            raise InputError(f"{path}: directory {path.parent} does not exist")
    if len({path.resolve() for path in paths}) != len(paths):
        raise InputError(f"{paths[0]}: the halves and the key must be different files")


def cut(digits: np.ndarray, seed: int = 0, drop_left: float = 0.0, drop_right: float = 0.0) -> Halves:
    """Cut (N, 28, 28) digits (uint8, or float in [0, 1]; an (N, 1, 28, 28) channel axis is accepted)
    into halves, shuffle each side with SEED, and drop a fraction DROP_LEFT of the lefts and DROP_RIGHT
    of the rights (their partners then have none: key -1). The same halves as `make-halves`."""
    for name, fraction in (("--drop-left", drop_left), ("--drop-right", drop_right)):
        if not 0.0 <= fraction < 1.0:
            raise InputError(f"{name} must lie in [0, 1), got {fraction}")
    images = formats.as_images(digits, "digits", width=2 * formats.HALF_WIDTH)
    left, right, key = formats.make_halves(images, seed)
    if drop_left or drop_right:
        left, right, key = formats.drop_partners(left, right, key, drop_left, drop_right, seed)
    return Halves(left, right, key)


def test_halves(seed: int = 0, count: int | None = None, dataset: str = "mnist", data_dir: str | Path | None = None) -> Halves:
    """The test split of DATASET (the first COUNT digits), cut and shuffled with SEED, with its key.
    The MNIST test split is built into the package: no data directory or network is needed."""
    return cut(split_digits("test", count, dataset, data_dir), seed)


def split_digits(
    split: str, count: int | None = None, dataset: str = "mnist", data_dir: str | Path | None = None, images: Path | None = None
) -> np.ndarray:
    """(N, 28, 28) uint8: the first COUNT digits of SPLIT ('test' or 'train') of DATASET, or of the
    idx images file IMAGES where given."""
    from amphisbaena.datasets import check_dataset_name, load_images_idx, load_split

    check_dataset_name(dataset)
    if count is not None and count < 1:
        raise InputError(f"--count must be at least 1, got {count}")
    if images is not None:
        return load_images_idx(images)[:count]
    return load_split(split, None if data_dir is None else Path(data_dir), dataset)[0][:count]


def load_halves(path: str | Path, key: str | Path | None = None, allow_unmatched: bool = False) -> Halves:
    """Halves from a halves npz at PATH (and their key from the key npz KEY), validated as `restore`
    validates them. Counts must match unless ALLOW_UNMATCHED; the key then may hold -1."""
    path = as_path(path, "path")
    left, right = formats.load_halves(path, allow_unequal=allow_unmatched)
    if key is None:
        return Halves(left, right)
    partners = len(right) if allow_unmatched else None
    return Halves(left, right, formats.load_key(as_path(key, "key"), len(left), partners=partners))
