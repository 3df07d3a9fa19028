"""A grid of restored digits as a PNG, written with zlib alone (no imaging dependency)."""

from __future__ import annotations

import struct
import zlib
from pathlib import Path

import numpy as np

BACKGROUND = 40  # grey between the digits
WRONG_FRAME = (255, 40, 40)  # red: visible beside white strokes and the grey background


def digit_grid(images: np.ndarray, wrong: np.ndarray | None = None, columns: int = 20, gap: int = 2) -> np.ndarray:
    """Tile (N, 28, 28) uint8 digits into one image: greyscale (H, W), or with WRONG (a bool mask over
    the digits, from a key) RGB (H, W, 3), each wrong digit framed in red in the gap around it."""
    count = len(images)
    rows = max(1, -(-count // columns))
    h, w = images.shape[1:]
    canvas = np.full((rows * (h + gap) + gap, columns * (w + gap) + gap), BACKGROUND, dtype=np.uint8)
    if wrong is not None:
        canvas = np.repeat(canvas[:, :, None], 3, axis=2)
    for index, image in enumerate(images):
        r, c = divmod(index, columns)
        top, left = gap + r * (h + gap), gap + c * (w + gap)
        if wrong is not None and wrong[index]:
            canvas[top - gap : top + h + gap, left - gap : left + w + gap] = WRONG_FRAME
        canvas[top : top + h, left : left + w] = image if wrong is None else image[:, :, None]
    return canvas


def write_png(path: Path, image: np.ndarray) -> None:
    """8-bit greyscale (H, W) or RGB (H, W, 3) PNG to exactly PATH (callers make it atomic)."""
    Path(path).write_bytes(png_bytes(image))


def png_bytes(image: np.ndarray) -> bytes:
    """The PNG file of an 8-bit greyscale (H, W) or RGB (H, W, 3) image."""

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)

    height, width = image.shape[:2]
    colour_type = 2 if image.ndim == 3 else 0
    raw = b"".join(b"\x00" + image[row].tobytes() for row in range(height))
    return (
        b"\x89PNG\r\n\x1a\n"
        + chunk(b"IHDR", struct.pack(">IIBBBBB", width, height, 8, colour_type, 0, 0, 0))
        + chunk(b"IDAT", zlib.compress(raw, 9))
        + chunk(b"IEND", b"")
    )
