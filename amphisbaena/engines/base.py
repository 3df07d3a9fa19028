"""The small interface every inference backend implements.

The runtime sees only this: arms turn uint8 halves into features, the head
turns two feature tiles into a score tile. Swapping onnxruntime for TensorRT
touches nothing above this line.
"""

from __future__ import annotations

from typing import Protocol

import numpy as np

from amphisbaena.model_files import FeatureLayout, ModelFiles


class Backend(Protocol):
    model: ModelFiles  # the model files it runs (the precision variant chosen for it)
    name: str
    precision: str
    feature_size: int
    topk: int | None  # candidates per row and column of head_topk; None where the backend has no such graph
    layout: FeatureLayout | None  # where the head's inputs sit; None where the head is not Amphisbaena's (no pruning)
    any_thread: bool  # may be called from a worker thread (the runtime then scores the next tile while it merges the last)

    def arm(self, side: str, halves: np.ndarray) -> np.ndarray:
        """(B, 28, 14) uint8 halves of SIDE ('left' or 'right') -> (B, D) float32 features."""
        ...

    def head(self, left: np.ndarray, right: np.ndarray, beside_host: bool = False) -> np.ndarray:
        """Feature tiles (Tl, D) and (Tr, D) -> (Tl, Tr) float32 exact scores. BESIDE_HOST: the call runs in a
        worker while the host works on the last result (`overlap.one_ahead`); a CPU backend may then leave
        the host a core. The scores are the same either way."""
        ...

    def head_topk(self, left: np.ndarray, right: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
        """The best `topk` of every row and every column of the tile's exact scores, best first:
        row scores and partner columns (Tl, topk), column scores and partner rows (Tr, topk).
        Only called when `topk` is set, on tiles at least `topk` rows tall and wide."""
        ...
