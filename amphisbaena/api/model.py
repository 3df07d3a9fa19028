"""A loaded model: its files and its backend's sessions, created once and reused by every call."""

from __future__ import annotations

import threading
from collections.abc import Callable
from contextlib import AbstractContextManager, nullcontext
from pathlib import Path
from typing import TYPE_CHECKING, Literal

import numpy as np

from amphisbaena.api.halves import as_path
from amphisbaena.api.restoration import Restoration
from amphisbaena.engines.base import Backend
from amphisbaena.engines.select import BackendChoice
from amphisbaena.errors import InputError
from amphisbaena.halves import as_images, check_counts
from amphisbaena.model_files import ModelFiles, model_to_run
from amphisbaena.progress import Progress, for_terminal
from amphisbaena.runtime.match import OTHER_SIDE, PartnerPool

if TYPE_CHECKING:  # the runtime's assignment modules load scipy: imported when a restore needs them
    from amphisbaena.runtime.partial import PartialResult

ASSIGNMENTS = ("sparse", "dense")


def load(
    dataset: str = "mnist",
    *,
    model_dir: str | Path | None = None,
    backend: str = "auto",
    precision: str = "auto",
    threads: int | None = None,
    engine_cache: str | Path | None = None,
) -> Model:
    """The model shipped for DATASET ('mnist' or 'fashion-mnist'), or the exported model in MODEL_DIR,
    on BACKEND ('auto': the fastest of tensorrt, ort-trt, ort-cuda, ort-cpu that runs here) in PRECISION
    ('auto', 'fp32', 'fp16' or 'int8'). THREADS: onnxruntime's intra-op threads (default: all cores).
    The graphs are read and checked against the manifest's checksums, and the sessions created, once."""
    if threads is not None and (isinstance(threads, bool) or not isinstance(threads, (int, np.integer)) or threads < 0):
        raise InputError(f"--threads must be a number of threads, got {threads!r}")
    choice = BackendChoice(backend, precision, threads, None if engine_cache is None else as_path(engine_cache, "engine_cache"))
    choice.check()
    created, fallbacks = choice.create(model_to_run(None if model_dir is None else as_path(model_dir, "model_dir"), dataset))
    return Model(created, fallbacks)


def check_restore_options(assignment: str = "sparse", k: int | None = None, no_partner_score: float | None = None) -> None:
    """Refuse, before any work, options that `Model.restore` cannot take."""
    if assignment not in ASSIGNMENTS:
        raise InputError(f"--assignment must be 'sparse' or 'dense', got {assignment!r}")
    if k is not None:
        check_k(k)
    if no_partner_score is not None and (not isinstance(no_partner_score, (int, float, np.number)) or not np.isfinite(no_partner_score)):
        raise InputError(f"--no-partner-score must be a finite number, got {no_partner_score}")


def check_side(side: str) -> None:
    if side not in OTHER_SIDE:
        raise InputError(f"--side must be 'left' or 'right', got {side!r}")


def check_k(k: int) -> None:
    if isinstance(k, bool) or not isinstance(k, (int, np.integer)) or k < 1:
        raise InputError(f"--k must be at least 1, got {k!r}")


class Model:
    """A model ready to run: the files it was loaded from (`files`) with the backend that runs them.

    Calls may come from several threads at once; a backend that allows no concurrent calls (TensorRT)
    takes them one at a time."""

    def __init__(self, backend: Backend, fallbacks: list[str] | None = None) -> None:
        self.backend = backend
        self.fallbacks = list(fallbacks or [])  # why `auto` skipped each faster backend
        self._turns = threading.Lock()

    @property
    def files(self) -> ModelFiles:
        """The model files the backend runs (the precision variant chosen for it)."""
        return self.backend.model

    def __repr__(self) -> str:
        return f"Model({self.files.directory}, backend={self.backend.name!r}, precision={self.backend.precision!r})"

    def _turn(self) -> AbstractContextManager:
        return nullcontext() if self.backend.any_thread else self._turns

    def restore(
        self,
        left: np.ndarray,
        right: np.ndarray,
        *,
        k: int | None = None,
        assignment: str = "sparse",
        allow_unmatched: bool = False,
        no_partner_score: float | None = None,
        progress: bool | Literal["notes"] = False,
    ) -> Restoration:
        """Pair each of the (N, 28, 14) lefts with one of the (M, 28, 14) rights (uint8, or float in [0, 1])
        so that the total score is maximal: the pairing of `amphisbaena restore`.

        K: candidates kept per half (sparse; default 32, or 64 above 10,000 halves). ASSIGNMENT: 'sparse'
        (proven optimal over all pairs) or 'dense'. ALLOW_UNMATCHED: counts may differ, and a pair is made
        only where it scores above NO_PARTNER_SCORE (default: the model's calibrated value). PROGRESS: the
        command's progress bars on a terminal's stderr."""
        check_restore_options(assignment, k, no_partner_score)
        left, right = as_images(left, "left"), as_images(right, "right")
        check_counts(left, right, "", allow_unmatched)
        shown = for_terminal(notes_only=progress == "notes") if progress else Progress()
        with self._turn():
            if allow_unmatched:
                result = self._restore_partial(left, right, k, no_partner_score, shown)
            else:
                from amphisbaena.runtime.restore import restore

                result = restore(self.backend, left, right, method=assignment, k=k, progress=shown)
        return Restoration(result, left, right, self.backend, self.fallbacks)

    def _restore_partial(
        self, left: np.ndarray, right: np.ndarray, k: int | None, no_partner_score: float | None, progress: Progress
    ) -> PartialResult:
        from amphisbaena.runtime.partial import restore_partial

        # The calibration of the variant that runs: int8 arms score slightly differently from fp32.
        threshold = no_partner_score if no_partner_score is not None else self.files.no_partner_score
        if threshold is None:
            raise InputError(f"{self.files.directory}: the model has no calibrated no-partner score; pass --no-partner-score")
        return restore_partial(self.backend, left, right, threshold, None, k, progress)

    def pool(self, halves: np.ndarray, side: str = "right") -> Pool:
        """A pool of (P, 28, 14) HALVES of SIDE ('left' or 'right') whose arm features are computed now,
        once, for any number of `Pool.best` queries of the other side."""
        check_side(side)
        halves = as_images(halves, f"{side} pool")
        with self._turn():
            return Pool(PartnerPool.of_halves(self.backend, halves, side), self._turn)


class Pool:
    """Halves of one side with their arm features (P, D), kept for queries of the other side."""

    def __init__(self, partners: PartnerPool, turn: Callable[[], AbstractContextManager]) -> None:
        self._partners = partners
        self._turn = turn
        self.side: str = partners.side

    def __len__(self) -> int:
        return len(self._partners.features)

    def __repr__(self) -> str:
        return f"Pool({len(self)} {self.side} halves)"

    def best(self, queries: np.ndarray, k: int = 5) -> tuple[np.ndarray, np.ndarray]:
        """The K best partners in the pool of each of the (Q, 28, 14) QUERIES (halves of the other side):
        partners (Q, min(K, P)) int64 pool positions and their scores (Q, min(K, P)) float32, best first;
        ties go to the lower position. The same partners and scores as `amphisbaena match`."""
        check_k(k)
        queries = as_images(queries, f"{OTHER_SIDE[self.side]} queries")
        with self._turn():
            return self._partners.query(queries, k)
