"""A restore's result as a user holds it: the pairing, its confidences, the restored digits, the summary
that `restore --json` prints, the files `restore` writes, and a picture in a notebook."""

from __future__ import annotations

import base64
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from amphisbaena.api.halves import as_path
from amphisbaena.engines.base import Backend
from amphisbaena.errors import InputError
from amphisbaena.halves import check_key, join_halves
from amphisbaena.runtime.outputs import OutputTargets
from amphisbaena.runtime.png import digit_grid, png_bytes
from amphisbaena.runtime.results import RestoreResult

if TYPE_CHECKING:  # scipy's import waits until a restore runs (`runtime.restore`)
    from amphisbaena.runtime.partial import PartialResult

NOTEBOOK_DIGITS = 60  # restored digits drawn inline by _repr_html_


def check_outputs(out: Path | None, grid: Path | None, report: Path | None, allow_unmatched: bool) -> OutputTargets:
    """The output files of a restore, refused before any work where they cannot be written."""
    targets = OutputTargets(out, grid, report)
    targets.check()
    if allow_unmatched and report is not None:
        raise InputError("--report is for one-to-one restores; drop it or --allow-unmatched")
    if report is not None:
        from amphisbaena.runtime.report import require_matplotlib

        require_matplotlib()
    return targets


class Restoration:
    """The pairing of N lefts with M rights that `Model.restore` found.

    right_for_left: (N,) int64, the right each left is paired with (-1: none, with allow_unmatched).
    confidence: (N,) float32, each match's regret, a proven lower bound on how much the total score
    would drop without it (with allow_unmatched: the pair's score, NaN where no pair was made).
    images: (N, 28, 28) uint8, the restored digits in left order."""

    def __init__(
        self, result: RestoreResult | PartialResult, left: np.ndarray, right: np.ndarray, backend: Backend, fallbacks: list[str]
    ) -> None:
        self._result = result
        self.left, self.right = left, right
        self._backend = backend
        self.fallbacks = fallbacks  # why faster backends were skipped (auto only)
        self.right_for_left: np.ndarray = result.right_for_left
        one_to_one = isinstance(result, RestoreResult)
        self.confidence: np.ndarray = (result.confidence if one_to_one else result.scores).astype(np.float32)
        self._value_name = "confidence" if one_to_one else "scores"  # as `restore --out` names it
        self._key: np.ndarray | None = None
        self._images: np.ndarray | None = None

    def __len__(self) -> int:
        return len(self.right_for_left)

    def __repr__(self) -> str:
        shown = "" if self._key is None else f", accuracy {self._accuracy():.4f}"
        return f"Restoration({len(self)} lefts, {self.backend}{shown})"

    @property
    def backend(self) -> str:
        """The backend that ran, with its precision, e.g. 'ort-cpu (int8)'."""
        return f"{self._result.backend} ({self._result.precision})"

    @property
    def images(self) -> np.ndarray:
        """(N, 28, 28) uint8: each left beside its chosen right (blank where it has none)."""
        if self._images is None:
            self._images = join_halves(self.left, self.right, self.right_for_left)
        return self._images

    def accuracy(self, key: np.ndarray) -> float:
        """The fraction of lefts paired as KEY ((N,) right_for_left, -1 for no partner) says; the key is
        kept, so `summary`, `grid` and the notebook view then show what was right and wrong."""
        self._key = self._checked_key(key)
        if isinstance(self._result, RestoreResult):
            self._result.correct = self.right_for_left == self._key
        else:
            self._result.key = self._key
        return self._accuracy()

    def _accuracy(self) -> float:
        return float(np.mean(self.right_for_left == self._key))

    def _checked_key(self, key: np.ndarray) -> np.ndarray:
        partners = None if isinstance(self._result, RestoreResult) else len(self.right)
        return check_key(key, len(self), partners, "key: ")

    @property
    def summary(self) -> dict:
        """What `restore --json` prints: counts, backend, the assignment's proof, seconds per stage, the
        least confident matches and, once `accuracy` was called, the accuracy and its coverage table."""
        return {**self._result.summary(), "backend_fallbacks": self.fallbacks}

    @property
    def lines(self) -> list[str]:
        """What `restore` prints as text, a line each."""
        return self._result.text(self.fallbacks)

    def save(self, path: str | Path) -> None:
        """Write right_for_left, images and confidence (scores with allow_unmatched) as `restore --out` does."""
        self.write(out=as_path(path, "path"))

    def grid(self, path: str | Path, key: np.ndarray | None = None) -> None:
        """Write a PNG of the first restored digits as `restore --grid` does; with KEY the wrong ones are framed."""
        self.write(grid=as_path(path, "path"), key=key)

    def write(self, out: Path | None = None, grid: Path | None = None, report: Path | None = None, key: np.ndarray | None = None) -> list[str]:
        """Write every file asked for, all together or none; one line per file written. KEY (default:
        the one given to `accuracy`) frames the wrong digits in GRID and marks them in REPORT."""
        targets = check_outputs(out, grid, report, not isinstance(self._result, RestoreResult))
        key = self._key if key is None else self._checked_key(key)
        wanted = out is not None or grid is not None  # the restored images are built only for a file that holds them
        arrays = {"right_for_left": self.right_for_left, "images": self.images, self._value_name: self.confidence} if wanted else {}
        wrong = None if key is None else self.right_for_left != key

        def draw_report(path: Path) -> None:
            from amphisbaena.runtime.report import write_report

            write_report(path, self._backend, self.left, self.right, self._result, key)

        return targets.write(arrays, wrong, draw_report)

    def _repr_html_(self) -> str:
        """A notebook's view: size and backend, the accuracy where a key was given, and the first restored
        digits as an inline PNG, wrong ones framed in red."""
        shown = slice(0, NOTEBOOK_DIGITS)
        wrong = None if self._key is None else (self.right_for_left != self._key)[shown]
        picture = base64.b64encode(png_bytes(digit_grid(self.images[shown], wrong))).decode("ascii")
        paired = int((self.right_for_left >= 0).sum())
        facts = [f"{len(self)} lefts, {len(self.right)} rights, {paired} pairs", f"backend {self.backend}"]
        if self._key is not None:
            facts.append(f"accuracy {self._accuracy():.4f} ({int(np.sum(self.right_for_left == self._key))}/{len(self)})")
        caption = " · ".join(facts)
        return (
            f"<div><b>Restoration</b>: {caption}<br>"
            f'<img src="data:image/png;base64,{picture}" alt="the first {min(len(self), NOTEBOOK_DIGITS)} restored digits" '
            'style="image-rendering: pixelated; width: 50%"></div>'
        )
