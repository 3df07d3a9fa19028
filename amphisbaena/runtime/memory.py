"""What a restore will cost, known before any heavy work: its memory (a run that would not fit is
refused) and a rough time, which long runs announce."""

from __future__ import annotations

import os

from amphisbaena.errors import InputError
from amphisbaena.progress import Progress
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


PROCESS_BYTES = 300 * 2**20  # the interpreter, numpy, scipy, onnxruntime and the model, before any halves
HALF_PAIR_BYTES = 2 * 28 * 14  # one left and one right half, uint8
# The sparse path's arrays below, times this, give the whole process's measured peak RSS within about 10% at
# 60,000 and 100,000 pairs and at a million up to the matching (docs/performance.md, issue 23's third stop)
SPARSE_MEASURED_FACTOR = 1.15


def estimate_peak_bytes(n: int, feature_size: int, method: str, k: int = DEFAULT_K) -> int:
    """An estimate of the whole restore's peak resident memory for N pairs: the process, the halves and
    what restore() allocates."""
    process = PROCESS_BYTES + n * HALF_PAIR_BYTES
    features = 2 * n * feature_size * 4
    if method == "dense":
        return process + features + n * n * (4 + 8)  # float32 scores + scipy's float64 copy
    strip = TILE_ROWS * n * 32  # a strip of scores with its masks and gathers
    candidates = 2 * n * (k + 1) * (4 + 8) * 3  # best-per-item arrays, merges, the sparse graph
    return process + int(SPARSE_MEASURED_FACTOR * (features + strip + candidates))


def check_memory(n: int, feature_size: int, method: str, k: int = DEFAULT_K, progress: Progress | None = None) -> None:
    """Refuse before any heavy work when the run would not fit in the memory available now; PROGRESS hears
    a long run's estimate (`estimate_line`)."""
    needed, available = estimate_peak_bytes(n, feature_size, method, k), available_memory_bytes()
    if needed > 0.8 * available:
        hint = "; use --assignment sparse, which streams" if method == "dense" else ""
        raise InputError(
            f"restoring {n} pairs with {method} assignment needs about {needed / 2**30:.1f} GiB, "
            f"only {available / 2**30:.1f} GiB available{hint}"
        )
    announced = estimate_line(n, feature_size, method, k)
    if announced is not None and progress is not None:
        progress.note(announced)


# seconds ~ LINEAR_SECONDS * n + QUADRATIC_SECONDS * n^2 + CUBIC_SECONDS * n^3 for n pairs on two cores of this
# project's reference machine, fitted to whole-process restores of 10,000 to 200,000 pairs; the cubic term is the
# proof's check, whose share of the pairs grows with n (docs/performance.md, issue 23's fifth stop)
LINEAR_SECONDS, QUADRATIC_SECONDS, CUBIC_SECONDS = 1.35e-4, 3.9e-9, 1.23e-14
LONG_RUN_SECONDS = 20.0  # runs estimated at least this long announce their estimate


def estimate_seconds(n: int) -> float:
    """A rough whole-restore time for N pairs (sparse path, two cores like the reference machine)."""
    return LINEAR_SECONDS * n + QUADRATIC_SECONDS * n * n + CUBIC_SECONDS * n * n * n


def estimate_line(n: int, feature_size: int, method: str, k: int = DEFAULT_K) -> str | None:
    """One line announcing a long run's estimated time and peak memory, or None for a short one."""
    seconds = estimate_seconds(n)
    if seconds < LONG_RUN_SECONDS:
        return None
    needed = estimate_peak_bytes(n, feature_size, method, k)
    return f"restoring {n} pairs: about {_duration(seconds)} and {needed / 2**30:.1f} GiB at peak (rough estimate; Ctrl-C stops it, writing nothing)"


def _duration(seconds: float) -> str:
    minutes = round(seconds / 60)
    if minutes < 2:
        return f"{seconds:.0f} s"
    return f"{minutes} min" if minutes < 120 else f"{minutes // 60} h {minutes % 60:02d} min"
