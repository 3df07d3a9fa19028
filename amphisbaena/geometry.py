"""How MNIST digits were made, as a fixed penalty on joining two halves.

Each digit was scaled so its larger side is 20 pixels, then shifted by whole
pixels to put its centre of mass at 14 +- 0.5 on both axes. A (left, right)
pair that joins into anything else does not belong together: on the 60,000
training digits that penalty is zero for all but 13.

The penalty itself is computed by the head (train/model.py, exported to ONNX);
the runtime only bounds it (runtime/pruning.py). Both read the constants here.

Per-half geometry features, in this order (see train/model.py `geometry`):
mass, sum of mass * row, sum of mass * column (full 28-wide frame), top inked
row, bottom inked row, outer inked column (leftmost for a left half, rightmost
for a right half).
"""

from __future__ import annotations

from dataclasses import dataclass

GEOMETRY_SIZE = 6
CENTRE_LOW, CENTRE_HIGH, BOX_SIDE = 13.5, 14.5, 20.0
CENTRE = 0.5 * (CENTRE_LOW + CENTRE_HIGH)  # 14: torques are taken about the centre
MIN_MASS = 1e-3


@dataclass(frozen=True)
class GeometrySpec:
    """Where the geometry features sit in a feature vector and how the head weighs them."""

    start: int
    com_weight: float
    box_weight: float
