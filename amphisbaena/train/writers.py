"""Writer-disjoint validation pools for MNIST, from QMNIST's public per-digit metadata.

The MNIST test set was written by people who wrote no training digit. A validation pool of whole
writers, none of whom wrote a training digit, is the same condition; the last 5,000 training digits
are not (31% of them come from writers who also wrote training digits).
"""

from __future__ import annotations

import gzip
from pathlib import Path

import numpy as np

from amphisbaena.datasets import resolve_data_dir
from amphisbaena.errors import InputError

QMNIST_TRAIN_LABELS = "qmnist-train-labels.tsv.gz"
TRAIN_DIGITS = 60_000


def find_writer_file(data_dir: Path) -> Path:
    """QMNIST's training metadata beside the MNIST files (DATA_DIR) or in a sibling qmnist/ directory."""
    for candidate in (data_dir / QMNIST_TRAIN_LABELS, data_dir.parent / "qmnist" / QMNIST_TRAIN_LABELS):
        if candidate.is_file():
            return candidate
    raise InputError(f"{QMNIST_TRAIN_LABELS} not found in {data_dir} or {data_dir.parent / 'qmnist'}; a writer-disjoint pool needs it")


def load_writer_ids(path: Path) -> np.ndarray:
    """(60000,) int64: one id per MNIST training digit, equal for digits of the same writer.

    A writer is a (NIST HSF series, writer id) pair: columns 2 and 3 of QMNIST's metadata."""
    try:
        with gzip.open(path, "rt") as handle:
            table = np.loadtxt(handle, dtype=np.int64, delimiter="\t", ndmin=2)
    except (OSError, ValueError, EOFError) as exc:
        raise InputError(f"{path}: not QMNIST metadata ({exc.__class__.__name__})") from None
    if table.shape != (TRAIN_DIGITS, 8):
        raise InputError(f"{path}: expected {TRAIN_DIGITS} rows of 8 columns, got {table.shape}")
    return table[:, 1] * 100_000 + table[:, 2]


def writer_ids_near(data_dir: Path | None) -> np.ndarray:
    """The writer ids of the MNIST training digits, from QMNIST's metadata beside the MNIST files."""
    return load_writer_ids(find_writer_file(resolve_data_dir(data_dir)))


def writer_disjoint_split(writers: np.ndarray, pool_size: int, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Training and validation digit indices with no writer in both.

    Writers are drawn in a random order (fixed by SEED) until they have written POOL_SIZE digits; the
    pool is their first POOL_SIZE digits, and the rest of the last writer's digits are left out of both.
    """
    order = np.random.default_rng(seed).permutation(np.unique(writers))
    counts = np.array([np.count_nonzero(writers == writer) for writer in order])
    chosen = order[: int(np.searchsorted(np.cumsum(counts), pool_size)) + 1]
    in_pool = np.isin(writers, chosen)
    return np.flatnonzero(~in_pool), np.flatnonzero(in_pool)[:pool_size]
