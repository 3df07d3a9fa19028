"""How MNIST digits were made, as a fixed penalty on joining two halves.

Each digit was scaled so its larger side is 20 pixels, then shifted by whole
pixels to put its centre of mass at 14 +- 0.5 on both axes. A (left, right)
pair that joins into anything else does not belong together: on the 60,000
training digits the penalty below is zero for all but 13.

Written with arithmetic operators and abs() only, so the one formula runs on
numpy arrays (runtime), torch tensors (training) and exports to ONNX.

Per-half geometry features, in this order (see train/model.py `geometry`):
mass, sum of mass * row, sum of mass * column (full 28-wide frame), top inked
row, bottom inked row, outer inked column (leftmost for a left half, rightmost
for a right half).
"""

from __future__ import annotations

from dataclasses import dataclass

GEOMETRY_SIZE = 6
CENTRE_LOW, CENTRE_HIGH, BOX_SIDE = 13.5, 14.5, 20.0
MIN_MASS = 1e-3


def _relu(x):
    return (x + abs(x)) * 0.5


def _max(a, b):
    return (a + b + abs(a - b)) * 0.5


def _min(a, b):
    return (a + b - abs(a - b)) * 0.5


def geometry_penalty(left, right, com_weight: float, box_weight: float):
    """Broadcastable (..., 6) x (..., 6) -> (...): com_weight per pixel the joined centre of mass
    lies outside [13.5, 14.5] on each axis, plus box_weight per pixel its larger side is off 20."""
    mass = _max(left[..., 0] + right[..., 0], MIN_MASS)
    com_row = (left[..., 1] + right[..., 1]) / mass
    com_col = (left[..., 2] + right[..., 2]) / mass
    outside = (
        _relu(com_row - CENTRE_HIGH) + _relu(CENTRE_LOW - com_row)
        + _relu(com_col - CENTRE_HIGH) + _relu(CENTRE_LOW - com_col)
    )
    height = _max(left[..., 4], right[..., 4]) - _min(left[..., 3], right[..., 3]) + 1
    width = right[..., 5] - left[..., 5] + 1
    box = abs(_max(height, width) - BOX_SIDE)
    return com_weight * outside + box_weight * box


@dataclass(frozen=True)
class GeometrySpec:
    """Where the geometry features sit in a feature vector and how the head weighs them."""

    start: int
    com_weight: float
    box_weight: float
