"""Refusing a restore that would not fit in memory, before any heavy work starts."""

from __future__ import annotations

import os

from amphisbaena.errors import InputError
from amphisbaena.shapes import DEFAULT_K, TILE_ROWS


def available_memory_bytes() -> int:
    """MemAvailable from /proc/meminfo, else total physical memory."""
    try:
        with open("/proc/meminfo") as meminfo:
            for line in meminfo:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    return os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")


def estimate_peak_bytes(n: int, feature_size: int, method: str, k: int = DEFAULT_K) -> int:
    """Upper estimate of what restore() allocates beyond the halves themselves."""
    features = 2 * n * feature_size * 4
    if method == "dense":
        return features + n * n * (4 + 8)  # float32 scores + scipy's float64 copy
    strip = TILE_ROWS * n * 32  # a strip of scores with its masks and gathers, or of rescored rows
    candidates = 2 * n * (k + 1) * (4 + 8) * 3  # best-per-item arrays, merges, the sparse graph
    return features + strip + candidates


def check_memory(n: int, feature_size: int, method: str, k: int = DEFAULT_K) -> None:
    """Refuse before any heavy work when the run would not fit in the memory available now."""
    needed, available = estimate_peak_bytes(n, feature_size, method, k), available_memory_bytes()
    if needed > 0.8 * available:
        hint = "; use --assignment sparse, which streams" if method == "dense" else ""
        raise InputError(
            f"restoring {n} pairs with {method} assignment needs about {needed / 2**30:.1f} GiB, "
            f"only {available / 2**30:.1f} GiB available{hint}"
        )
