"""Writing outputs so that a file appears whole or not at all: never a half-written output."""

from __future__ import annotations

import os
import tempfile
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from pathlib import Path

import numpy as np

from amphisbaena.errors import InputError


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
