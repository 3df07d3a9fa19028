"""The files a restore writes: every requested output appears together or not at all, each named once."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from amphisbaena.errors import InputError
from amphisbaena.files import atomic_group, write_npz
from amphisbaena.runtime.png import digit_grid, write_png

GRID_DIGITS = 200  # restored digits drawn in --grid


@dataclass(frozen=True)
class OutputTargets:
    """Where a restore writes: OUT the npz (right_for_left, images, per-pair values), GRID a PNG of
    the first restored digits, REPORT the visual report (PNG)."""

    out: Path | None = None
    grid: Path | None = None
    report: Path | None = None

    def paths(self) -> list[Path]:
        return [path for path in (self.out, self.grid, self.report) if path is not None]

    def check(self) -> None:
        """Refuse, before any work, a target whose directory does not exist."""
        for path in self.paths():
            if not path.parent.is_dir():
                raise InputError(f"{path}: directory {path.parent} does not exist")

    def write(
        self, arrays: dict[str, np.ndarray], wrong: np.ndarray | None = None, draw_report: Callable[[Path], None] | None = None
    ) -> list[str]:
        """Write every target (ARRAYS into OUT; WRONG, a mask over the lefts, framed in the grid) and
        return one line per file written."""
        with atomic_group(*self.paths()) as temporaries:
            written = dict(zip(self.paths(), temporaries))
            if self.out is not None:
                write_npz(written[self.out], **arrays)
            if self.grid is not None:
                shown = slice(0, GRID_DIGITS)
                write_png(written[self.grid], digit_grid(arrays["images"][shown], None if wrong is None else wrong[shown]))
            if self.report is not None and draw_report is not None:
                draw_report(written[self.report])
        return [f"wrote {path}" for path in self.paths()]
