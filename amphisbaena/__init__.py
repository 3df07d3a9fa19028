"""Restore MNIST digits from shuffled left and right halves.

    import amphisbaena as amph

    model = amph.load()                                  # the shipped MNIST model, sessions created once
    halves = amph.test_halves(seed=0)                    # the built-in MNIST test split, cut and shuffled
    r = model.restore(halves.left, halves.right)         # -> Restoration
    r.accuracy(halves.key)

The names are imported when first used, so `import amphisbaena` loads neither onnxruntime nor scipy.
"""

from __future__ import annotations

from importlib import import_module
from typing import TYPE_CHECKING, Any

from amphisbaena.errors import InputError

__version__ = "0.2.0"

__all__ = ["Halves", "InputError", "Model", "Pool", "Restoration", "cut", "load", "load_halves", "test_halves"]

_HOMES = {
    "Halves": "amphisbaena.api.halves",
    "cut": "amphisbaena.api.halves",
    "load_halves": "amphisbaena.api.halves",
    "test_halves": "amphisbaena.api.halves",
    "Model": "amphisbaena.api.model",
    "Pool": "amphisbaena.api.model",
    "load": "amphisbaena.api.model",
    "Restoration": "amphisbaena.api.restoration",
}

if TYPE_CHECKING:
    from amphisbaena.api.halves import Halves, cut, load_halves, test_halves
    from amphisbaena.api.model import Model, Pool, load
    from amphisbaena.api.restoration import Restoration


def __getattr__(name: str) -> Any:
    if name in _HOMES:
        value = getattr(import_module(_HOMES[name]), name)
        globals()[name] = value
        return value
    raise AttributeError(f"module 'amphisbaena' has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted([*globals(), *_HOMES])
