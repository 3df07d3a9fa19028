"""The small interface every inference backend implements.

The runtime sees only this: arms turn uint8 halves into features, the head
turns two feature tiles into a score tile. Swapping onnxruntime for TensorRT
touches nothing above this line.
"""

from __future__ import annotations

from typing import Protocol

import numpy as np

from amphisbaena.geometry import GeometrySpec


class Backend(Protocol):
    name: str
    precision: str
    feature_size: int
    geometry: GeometrySpec | None  # set when head = head_bound - geometry penalty

    def arm(self, side: str, halves: np.ndarray) -> np.ndarray:
        """(B, 28, 14) uint8 halves of SIDE ('left' or 'right') -> (B, D) float32 features."""
        ...

    def head(self, left: np.ndarray, right: np.ndarray) -> np.ndarray:
        """Feature tiles (Tl, D) and (Tr, D) -> (Tl, Tr) float32 exact scores."""
        ...

    def head_bound(self, left: np.ndarray, right: np.ndarray) -> np.ndarray:
        """(Tl, Tr) upper bound on the scores, at matrix-product speed: the learned part of the head,
        without the geometry penalty. Only called when `geometry` is set."""
        ...
