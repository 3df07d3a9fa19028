"""One `restore` command from request to printed lines: check everything first, then restore and write.

The halves travel one way: halves file -> arms and assignment (`restore` or `partial`) -> the output
files (`outputs`) -> the summary (JSON) and the lines a user reads.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from amphisbaena.engines.select import BackendChoice
from amphisbaena.errors import InputError
from amphisbaena.export.manifest import model_to_run
from amphisbaena.halves import join_halves, load_halves, load_key
from amphisbaena.progress import Progress
from amphisbaena.runtime.outputs import OutputTargets


@dataclass(frozen=True)
class RestoreRequest:
    """Everything `amphisbaena restore` was asked for."""

    halves: Path
    key: Path | None = None
    outputs: OutputTargets = field(default_factory=OutputTargets)
    backend: BackendChoice = field(default_factory=BackendChoice)
    model_dir: Path | None = None
    dataset: str = "mnist"
    assignment: str = "sparse"
    k: int | None = None
    allow_unmatched: bool = False
    no_partner_score: float | None = None

    def check(self) -> None:
        """Refuse bad options, missing directories and missing optional dependencies before any work."""
        self.backend.check()
        if self.assignment not in ("sparse", "dense"):
            raise InputError(f"--assignment must be 'sparse' or 'dense', got {self.assignment!r}")
        if self.k is not None and self.k < 1:
            raise InputError(f"--k must be at least 1, got {self.k}")
        self.outputs.check()
        if self.no_partner_score is not None and not np.isfinite(self.no_partner_score):
            raise InputError(f"--no-partner-score must be a finite number, got {self.no_partner_score}")
        if self.allow_unmatched and self.outputs.report is not None:
            raise InputError("--report is for one-to-one restores; drop it or --allow-unmatched")
        if self.outputs.report is not None:
            from amphisbaena.runtime.report import require_matplotlib

            require_matplotlib()


def run_restore(request: RestoreRequest, progress: Progress | None = None) -> tuple[dict, list[str]]:
    """Restore REQUEST's halves; write its outputs; return the JSON summary and the lines to print.
    PROGRESS hears the long stages (`progress.for_terminal`)."""
    from amphisbaena.runtime.restore import restore

    request.check()
    left, right = load_halves(request.halves, allow_unequal=request.allow_unmatched)
    partners = len(right) if request.allow_unmatched else None
    answer = load_key(request.key, len(left), partners=partners) if request.key is not None else None
    backend, fallbacks = request.backend.create(model_to_run(request.model_dir, request.dataset))
    if request.allow_unmatched:
        return _restore_partial(request, backend, left, right, answer, fallbacks, progress)
    result = restore(backend, left, right, answer, method=request.assignment, k=request.k, progress=progress)

    def draw_report(path: Path) -> None:
        from amphisbaena.runtime.report import write_report

        write_report(path, backend, left, right, result, answer)

    arrays = {
        "right_for_left": result.right_for_left,
        "images": join_halves(left, right, result.right_for_left),
        "confidence": result.confidence.astype(np.float32),
    }
    wrong = None if result.correct is None else ~result.correct
    written = request.outputs.write(arrays, wrong, draw_report)
    return {**result.summary(), "backend_fallbacks": fallbacks}, result.text(fallbacks) + _kept(written)


def _restore_partial(request: RestoreRequest, backend, left, right, answer, fallbacks, progress) -> tuple[dict, list[str]]:
    """restore --allow-unmatched: pairs only where they beat the no-partner score."""
    from amphisbaena.runtime.partial import restore_partial

    # The calibration of the variant that runs: int8 arms score slightly differently from fp32.
    threshold = request.no_partner_score if request.no_partner_score is not None else backend.model.no_partner_score
    if threshold is None:
        raise InputError(f"{backend.model.directory}: the model has no calibrated no-partner score; pass --no-partner-score")
    result = restore_partial(backend, left, right, threshold, answer, request.k, progress)
    arrays = {
        "right_for_left": result.right_for_left,
        "images": join_halves(left, right, result.right_for_left),
        "scores": result.scores.astype(np.float32),
    }
    wrong = None if answer is None else result.right_for_left != answer
    written = request.outputs.write(arrays, wrong)
    return {**result.summary(), "backend_fallbacks": fallbacks}, result.text(fallbacks) + _kept(written)


def _kept(written: list[str]) -> list[str]:
    """One line per file written, or one line saying nothing was kept."""
    return written or ["nothing written: pass --out FILE to keep the pairing"]
