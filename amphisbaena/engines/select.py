"""Pick a backend: `auto` takes the fastest one that actually runs here, and says why it skipped the others."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from amphisbaena.data import InputError
from amphisbaena.engines.base import Backend
from amphisbaena.export.manifest import ModelFiles

BACKENDS = ("tensorrt", "ort-trt", "ort-cuda", "ort-cpu")  # fastest first
CHOICES = ("auto", *BACKENDS)


def _create(name: str, model: ModelFiles, threads: int | None, engine_cache: Path | None) -> Backend:
    from amphisbaena.engines.onnxruntime_backend import OnnxRuntimeBackend, ProviderUnavailable
    from amphisbaena.export.tensorrt_build import EngineUnavailable

    try:
        if name == "tensorrt":
            from amphisbaena.engines.tensorrt_backend import TensorRTBackend

            return TensorRTBackend(model, engine_cache)
        return OnnxRuntimeBackend(model, threads=threads, name=name)
    except (EngineUnavailable, ProviderUnavailable) as reason:
        raise BackendUnavailable(f"{name}: {reason}") from None


def check_choice(requested: str) -> None:
    """Refuse an unknown backend name before any work is done."""
    if requested not in CHOICES:
        raise InputError(f"--backend must be one of {', '.join(CHOICES)}, got {requested!r}")


class BackendUnavailable(InputError):
    """A backend that was asked for by name cannot run here."""


def create_backend(
    requested: str,
    model: ModelFiles,
    threads: int | None = None,
    engine_cache: Path | None = None,
    notify: Callable[[str], None] = lambda message: None,
) -> Backend:
    """The backend REQUESTED, or for 'auto' the first of BACKENDS that works; NOTIFY hears each fallback."""
    check_choice(requested)
    if requested != "auto":
        return _create(requested, model, threads, engine_cache)
    for name in BACKENDS[:-1]:
        try:
            return _create(name, model, threads, engine_cache)
        except BackendUnavailable as reason:
            notify(str(reason))
    return _create(BACKENDS[-1], model, threads, engine_cache)
