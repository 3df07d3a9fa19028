"""A grid of restored digits as a greyscale PNG, written with zlib alone (no imaging dependency)."""

from __future__ import annotations

import struct
import zlib
from pathlib import Path

import numpy as np


def digit_grid(images: np.ndarray, columns: int = 20, gap: int = 2) -> np.ndarray:
    """Tile (N, 28, 28) uint8 digits into one image; the cut line is marked by nothing but the digit."""
    count = len(images)
    rows = max(1, -(-count // columns))
    h, w = images.shape[1:]
    canvas = np.full((rows * (h + gap) + gap, columns * (w + gap) + gap), 40, dtype=np.uint8)
    for index, image in enumerate(images):
        r, c = divmod(index, columns)
        canvas[gap + r * (h + gap) : gap + r * (h + gap) + h, gap + c * (w + gap) : gap + c * (w + gap) + w] = image
    return canvas


def write_png(path: Path, image: np.ndarray) -> None:
    """8-bit greyscale PNG to exactly PATH (callers make it atomic)."""

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)

    height, width = image.shape
    raw = b"".join(b"\x00" + image[row].tobytes() for row in range(height))
    payload = (
        b"\x89PNG\r\n\x1a\n"
        + chunk(b"IHDR", struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0))
        + chunk(b"IDAT", zlib.compress(raw, 9))
        + chunk(b"IEND", b"")
    )
    Path(path).write_bytes(payload)
