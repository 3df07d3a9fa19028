"""Training-time augmentation of whole digits, before they are cut (so a seam stays a true seam)."""

from __future__ import annotations

import math

import numpy as np
import torch
from torch.nn import functional as F

from amphisbaena.train.recipe import Recipe


def half_turned(images: np.ndarray) -> np.ndarray:
    """Digits turned 180 degrees and shifted one pixel down and right. A centre of mass at c moves to
    28 - c, so one in [13.5, 14.5] stays there, and the box keeps its sides: the turned digit obeys the
    rules the geometry penalty encodes exactly, as long as its first row and column were blank."""
    turned = np.zeros_like(images)
    turned[:, 1:, 1:] = images[:, ::-1, ::-1][:, :-1, :-1]
    return turned


def with_half_turns(images: np.ndarray, labels: np.ndarray, classes: list[int]) -> np.ndarray:
    """IMAGES followed by the half-turned copies of those whose label is in CLASSES and whose first row
    and column are blank (all but 23 of the 60,000 training digits): nothing is cut off."""
    if not classes:
        return images
    chosen = np.isin(labels, classes) & (images[:, 0, :].max(axis=1) == 0) & (images[:, :, 0].max(axis=1) == 0)
    return np.concatenate([images, half_turned(images[chosen])])


def augment(pixels: torch.Tensor, max_shift: int, generator: torch.Generator) -> torch.Tensor:
    """Shift whole digits (float pixels in 0..255) by whole pixels on both axes before cutting, so
    both halves move together and the new seam is still a true seam; PIXELS itself when off.

    Only the learned path sees the shifted digit: the geometry features, whose rules
    (centre of mass at 14 +- 0.5) a shift would break, come from the unshifted digit.
    """
    if max_shift == 0:
        return pixels
    shifts = torch.randint(-max_shift, max_shift + 1, (len(pixels), 2), generator=generator).to(pixels.device)
    return _shifted(pixels, shifts, max_shift)


def _shifted(pixels: torch.Tensor, shifts: torch.Tensor, max_shift: int) -> torch.Tensor:
    """Each digit of PIXELS (N, 28, 28) rolled by its own whole-pixel SHIFTS (N, 2) (rows, columns); a digit
    whose shift is beyond MAX_SHIFT comes back blank."""
    out = torch.zeros_like(pixels)
    for dy in range(-max_shift, max_shift + 1):
        for dx in range(-max_shift, max_shift + 1):
            chosen = (shifts[:, 0] == dy) & (shifts[:, 1] == dx)
            if chosen.any():
                out[chosen] = torch.roll(pixels[chosen], (dy, dx), dims=(1, 2))
    return out


def _resampled(pixels: torch.Tensor, theta: torch.Tensor) -> torch.Tensor:
    """Digits (N, 28, 28) under the affine maps THETA (N, 2, 3) of `F.affine_grid` (output coordinates to
    input), sampled bilinearly with blank outside."""
    grid = F.affine_grid(theta.to(pixels.device), (len(pixels), 1, 28, 28), align_corners=False)
    return F.grid_sample(pixels[:, None], grid, mode="bilinear", padding_mode="zeros", align_corners=False)[:, 0]


def warp(pixels: torch.Tensor, recipe: Recipe, generator: torch.Generator) -> torch.Tensor:
    """Rotate and scale whole digits about the centre by small random amounts (RECIPE.rotate
    degrees, RECIPE.scale fraction), then round to grey levels. The cut comes after the warp, so
    strokes still run continuously across the seam: new pairs, not new noise. Learned path only."""
    if recipe.rotate == 0 and recipe.scale == 0:
        return pixels
    n = len(pixels)
    angle = (torch.rand(n, generator=generator) * 2 - 1) * math.radians(recipe.rotate)
    zoom = 1 + (torch.rand(n, generator=generator) * 2 - 1) * recipe.scale
    cos, sin = torch.cos(angle) / zoom, torch.sin(angle) / zoom
    theta = torch.stack([torch.stack([cos, -sin, torch.zeros(n)], 1), torch.stack([sin, cos, torch.zeros(n)], 1)], 1)
    return _resampled(pixels, theta).round().clamp(0, 255)


def distorted(pixels: torch.Tensor, generator: torch.Generator, rotate: float = 12.0, shear: float = 0.2, stretch: float = 0.15) -> torch.Tensor:
    """Whole digits (N, 28, 28), floats in 0..255, under a random affine map each: a rotation of up to ROTATE
    degrees, a shear of up to SHEAR and a stretch of one axis against the other of up to STRETCH, about the
    centre; then renormalised as MNIST was (`renormalised`). New digits for scaling runs, not for training."""
    n = len(pixels)

    def uniform(limit: float) -> torch.Tensor:
        return (torch.rand(n, generator=generator) * 2 - 1) * limit

    angle, slant, aspect = uniform(math.radians(rotate)), uniform(shear), 1 + uniform(stretch)
    cos, sin = torch.cos(angle), torch.sin(angle)
    # (x, y) of the output -> rotation, then shear, then the stretch of x against y
    theta = torch.zeros(n, 2, 3)
    theta[:, 0, 0], theta[:, 0, 1] = aspect * cos, aspect * (-sin + slant * cos)
    theta[:, 1, 0], theta[:, 1, 1] = sin / aspect, (cos + slant * sin) / aspect
    return renormalised(_resampled(pixels, theta).round().clamp(0, 255))


def renormalised(pixels: torch.Tensor, side: int = 20, centre: float = 14.0) -> torch.Tensor:
    """Digits (N, 28, 28), floats in 0..255, made again the way MNIST made its digits: the ink's bounding box
    scaled (aspect kept) so that its larger side spans SIDE pixels, then shifted by whole pixels so that the
    centre of mass lies within half a pixel of CENTRE on both axes (pixel indices as in `train.model.geometry`).
    Rounded to grey levels. A digit whose resampled ink breaks those rules (a faint edge rounded away) comes
    back as it is: callers keep only the digits that `obeys_mnist_rules`."""
    n = len(pixels)
    ink = pixels > 0
    index = torch.arange(28, dtype=pixels.dtype)
    rows, cols = ink.any(dim=2), ink.any(dim=1)
    top = torch.where(rows, index, torch.full_like(index, 99)).amin(dim=1)
    bottom = torch.where(rows, index, torch.full_like(index, -99)).amax(dim=1)
    left = torch.where(cols, index, torch.full_like(index, 99)).amin(dim=1)
    right = torch.where(cols, index, torch.full_like(index, -99)).amax(dim=1)
    span = torch.maximum(bottom - top, right - left).clamp(min=1)  # between the outer ink pixels' centres
    step = span / (side - 1)  # input pixels per output pixel: the outer ink pixels land SIDE - 1 apart
    # output pixel p samples input c + (p - 13.5) * step about the box's centre c; in affine_grid's
    # normalised coordinates (align_corners=False) that is theta = [[step, 0, t_x], [0, step, t_y]]
    theta = torch.zeros(n, 2, 3)
    theta[:, 0, 0] = theta[:, 1, 1] = step
    theta[:, 0, 2] = (left + right + 1) / 28 - 1
    theta[:, 1, 2] = (top + bottom + 1) / 28 - 1
    boxed = _resampled(pixels, theta).round()
    mass = boxed.sum(dim=(1, 2)).clamp(min=1e-6)
    row_shift = torch.round(centre - (boxed.sum(dim=2) * index).sum(dim=1) / mass).long()
    col_shift = torch.round(centre - (boxed.sum(dim=1) * index).sum(dim=1) / mass).long()
    shifts = torch.stack([row_shift, col_shift], dim=1)
    return _shifted(boxed, shifts, 4).clamp(0, 255)  # the box leaves at least 3 blank pixels on each side of its larger axis


def obeys_mnist_rules(digits: np.ndarray, side: int = 20) -> np.ndarray:
    """(N,) bool: which (N, 28, 28) uint8 digits have ink whose larger side is exactly SIDE pixels and a centre
    of mass within [13.5, 14.5] on both axes, as every MNIST digit does."""
    ink = digits > 0
    rows, cols = ink.any(axis=2), ink.any(axis=1)
    height = 28 - rows.argmax(axis=1) - rows[:, ::-1].argmax(axis=1)
    width = 28 - cols.argmax(axis=1) - cols[:, ::-1].argmax(axis=1)
    weights = digits.astype(np.float64)
    mass = np.maximum(weights.sum(axis=(1, 2)), 1e-9)
    index = np.arange(28)
    row_centre = (weights.sum(axis=2) @ index) / mass
    col_centre = (weights.sum(axis=1) @ index) / mass
    centred = (np.abs(row_centre - 14) <= 0.5) & (np.abs(col_centre - 14) <= 0.5)
    return ink.any(axis=(1, 2)) & (np.maximum(height, width) == side) & centred
