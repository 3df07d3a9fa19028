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
    out = torch.empty_like(pixels)
    for dy in range(-max_shift, max_shift + 1):
        for dx in range(-max_shift, max_shift + 1):
            chosen = (shifts[:, 0] == dy) & (shifts[:, 1] == dx)
            out[chosen] = torch.roll(pixels[chosen], (dy, dx), dims=(1, 2))
    return out


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
    grid = F.affine_grid(theta.to(pixels.device), (n, 1, 28, 28), align_corners=False)
    warped = F.grid_sample(pixels[:, None], grid, mode="bilinear", padding_mode="zeros", align_corners=False)[:, 0]
    return warped.round().clamp(0, 255)
