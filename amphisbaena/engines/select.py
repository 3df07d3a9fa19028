"""Pick a backend: `auto` takes the fastest one that actually runs here, and says why it skipped the others."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from amphisbaena.engines.base import Backend
from amphisbaena.errors import InputError
from amphisbaena.model_files import INT8, PRECISIONS, ModelFiles, has_variant, load_variant

BACKENDS = ("tensorrt", "ort-trt", "ort-cuda", "ort-cpu")  # fastest first
CHOICES = ("auto", *BACKENDS)
PRECISION_CHOICES = ("auto", *PRECISIONS)


def model_for(name: str, model: ModelFiles, precision: str) -> ModelFiles:
    """The variant of MODEL that backend NAME runs. auto: the int8 arms on onnxruntime's CPU provider
    where the model has them (faster arms at the same accuracy: docs/performance.md), else MODEL."""
    if precision == "auto":
        return load_variant(model, INT8) if name == "ort-cpu" and has_variant(model, INT8) else model
    if precision == INT8 and name != "ort-cpu":
        raise BackendUnavailable(f"{name}: the int8 arms use onnxruntime CPU operators; they run on ort-cpu only")
    return load_variant(model, precision)


def _create(name: str, model: ModelFiles, threads: int | None, engine_cache: Path | None, precision: str) -> Backend:
    from amphisbaena.engines.onnxruntime_backend import OnnxRuntimeBackend, ProviderUnavailable
    from amphisbaena.engines.tensorrt_build import EngineUnavailable

    model = model_for(name, model, precision)
    try:
        if name == "tensorrt":
            from amphisbaena.engines.tensorrt_backend import TensorRTBackend

            return TensorRTBackend(model, engine_cache)
        return OnnxRuntimeBackend(model, threads=threads, name=name)
    except (EngineUnavailable, ProviderUnavailable) as reason:
        raise BackendUnavailable(f"{name}: {reason}") from None


def check_choice(requested: str, precision: str = "auto") -> None:
    """Refuse an unknown backend or precision name before any work is done."""
    if requested not in CHOICES:
        raise InputError(f"--backend must be one of {', '.join(CHOICES)}, got {requested!r}")
    if precision not in PRECISION_CHOICES:
        raise InputError(f"--precision must be one of {', '.join(PRECISION_CHOICES)}, got {precision!r}")


class BackendUnavailable(InputError):
    """A backend that was asked for by name cannot run here."""


def create_backend(
    requested: str,
    model: ModelFiles,
    threads: int | None = None,
    engine_cache: Path | None = None,
    notify: Callable[[str], None] = lambda message: None,
    precision: str = "auto",
) -> Backend:
    """The backend REQUESTED, or for 'auto' the first of BACKENDS that works, running MODEL's PRECISION
    variant (`model_for`); NOTIFY hears each fallback."""
    check_choice(requested, precision)
    if requested != "auto":
        return _create(requested, model, threads, engine_cache, precision)
    for name in BACKENDS[:-1]:
        try:
            return _create(name, model, threads, engine_cache, precision)
        except BackendUnavailable as reason:
            notify(str(reason))
    return _create(BACKENDS[-1], model, threads, engine_cache, precision)


@dataclass(frozen=True)
class BackendChoice:
    """What the user asked for: a backend NAME (or auto), a PRECISION (or auto), onnxruntime THREADS
    and a TensorRT ENGINE_CACHE."""

    name: str = "auto"
    precision: str = "auto"
    threads: int | None = None
    engine_cache: Path | None = None

    def check(self) -> None:
        """Refuse unknown names before any work."""
        check_choice(self.name, self.precision)

    def create(self, model: ModelFiles) -> tuple[Backend, list[str]]:
        """The backend for MODEL, and why each faster backend was skipped (empty unless auto fell back)."""
        skipped: list[str] = []
        backend = create_backend(self.name, model, self.threads, self.engine_cache, notify=skipped.append, precision=self.precision)
        return backend, skipped
