"""The two unshared arms and the pairwise head.

A pair's score is

    score(l, r) = s * <g_l, g_r> + sum_h v_h * (a_l[h] + a_r[h])^2
                + sum_y sum_c u_c * (q_l[y, c] + q_r[y, c])^2

The last term is the seam: each arm runs a small convolution down the few
columns next to the cut and emits C features per row y; the pair is scored
row by row with weights u shared by all rows. Sharing across rows is the
inductive bias continuity needs: a stroke crossing the cut at row 5 is
judged by the same rule as one crossing at row 20, so the rule is learned
from every row of every digit instead of memorised per position.

The first layer of the head is split per side: each arm emits its unit
embedding g and its share a of the head's hidden layer (bias folded into the
left side), so the arms run once per half and only the cheap per-pair part
runs over tiles. Squared sums and differences are what continuity across the
cut needs: (x_l - x_r)^2 for the pixels on either side of the seam, and
(m_l + m_r)^2 for moments that must balance in a centred digit.

Beside the learned part, the score subtracts a fixed geometry penalty: MNIST
digits were scaled to a 20-pixel larger side and centred by their centre of
mass, so a left and a right half that join into anything else do not belong
together. The arms compute those statistics exactly and pass them on.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import torch
from torch import nn
from torch.nn import functional as F

from amphisbaena.geometry import BOX_SIDE, CENTRE, CENTRE_HIGH, GEOMETRY_SIZE, MIN_MASS

ROWS = 28
PIXELS = ROWS * 14
EMPTY = 99.0  # extent of a half with no ink: never the min or max that matters


def geometry(pixels: torch.Tensor, column_offset: int) -> torch.Tensor:
    """Exact per-half statistics for amphisbaena.geometry's penalty.

    pixels: (B, 28, 14) floats in 0..1. column_offset: 0 for left halves, 14 for right halves.
    Returns (B, 6): mass, sum of mass * row, sum of mass * column (in the full 28-wide frame),
    top and bottom inked rows, and the outer inked column (leftmost for left halves, rightmost
    for right halves).
    """
    rows = torch.arange(28, dtype=pixels.dtype, device=pixels.device)
    cols = torch.arange(14, dtype=pixels.dtype, device=pixels.device) + column_offset
    mass = pixels.sum(dim=(1, 2))
    row_moment = (pixels.sum(dim=2) * rows).sum(dim=1)
    col_moment = (pixels.sum(dim=1) * cols).sum(dim=1)
    inked_rows = pixels.amax(dim=2) > 0
    inked_cols = pixels.amax(dim=1) > 0
    top = torch.where(inked_rows, rows, torch.full_like(rows, EMPTY)).amin(dim=1)
    bottom = torch.where(inked_rows, rows, torch.full_like(rows, -EMPTY)).amax(dim=1)
    if column_offset == 0:
        outer = torch.where(inked_cols, cols, torch.full_like(cols, EMPTY)).amin(dim=1)
    else:
        outer = torch.where(inked_cols, cols, torch.full_like(cols, -EMPTY)).amax(dim=1)
    return torch.stack([mass, row_moment, col_moment, top, bottom, outer], dim=1)


def geometry_penalty(left: torch.Tensor, right: torch.Tensor, com_weight: float, box_weight: float) -> torch.Tensor:
    """Broadcastable (..., 6) x (..., 6) -> (...): com_weight per pixel the joined centre of mass lies
    outside [13.5, 14.5] on each axis, plus box_weight per pixel its larger side is off 20
    (amphisbaena.geometry).

    Written for the exported head's speed: whatever can be is computed per half (torques about the
    centre, extents shifted by the box side) so that few operations run per pair."""
    mass = torch.clamp(left[..., 0] + right[..., 0], min=MIN_MASS)
    row_torque = (left[..., 1] - CENTRE * left[..., 0]) + (right[..., 1] - CENTRE * right[..., 0])
    col_torque = (left[..., 2] - CENTRE * left[..., 0]) + (right[..., 2] - CENTRE * right[..., 0])
    window = (CENTRE_HIGH - CENTRE) * mass
    outside = (torch.relu(row_torque.abs() - window) + torch.relu(col_torque.abs() - window)) / mass
    reach = BOX_SIDE - 1  # a side of 20 pixels spans 19 rows or columns beyond its first
    height_over = torch.maximum(left[..., 4], right[..., 4]) - torch.minimum(left[..., 3] + reach, right[..., 3] + reach)
    width_over = (right[..., 5] - reach) - left[..., 5]
    box = torch.maximum(height_over, width_over).abs()
    return com_weight * outside + box_weight * box


@dataclass
class ModelConfig:
    """Shape of the network; recorded in the manifest so a model can be rebuilt."""

    hidden: int = 1024
    depth: int = 4
    embedding: int = 128
    head_hidden: int = 64
    dropout: float = 0.3
    seam_channels: int = 16  # per-row features of the columns next to the cut (0: no seam term)
    seam_columns: int = 4  # how many columns next to the cut the seam convolution reads
    seam_width: int = 48  # channels inside the seam convolution
    com_weight: float = 50.0  # penalty per pixel the joined digit's centre of mass lies outside 14 +- 0.5
    box_weight: float = 10.0  # penalty per pixel the joined digit's larger side differs from 20

    @property
    def seam_size(self) -> int:
        return ROWS * self.seam_channels

    @property
    def geometry_start(self) -> int:
        return self.embedding + self.head_hidden + self.seam_size

    @property
    def feature_size(self) -> int:
        return self.geometry_start + GEOMETRY_SIZE

    def to_dict(self) -> dict:
        return asdict(self)


class Seam(nn.Module):
    """Per-row features of the columns next to the cut: (B, 28, 14) pixels -> (B, 28 * C).

    Convolutions along the rows, so every row is described by the same rule from
    its neighbourhood (7 + 4 + 2 rows), at full resolution across the cut.
    """

    def __init__(self, config: ModelConfig, side: str) -> None:
        super().__init__()
        self.columns = slice(14 - config.seam_columns, 14) if side == "left" else slice(0, config.seam_columns)
        width = config.seam_width
        self.strip = nn.Conv2d(1, width, kernel_size=(7, config.seam_columns), padding=(3, 0))
        self.rows = nn.Sequential(
            nn.GELU(),
            nn.Conv1d(width, width, kernel_size=5, padding=2),
            nn.GELU(),
            nn.Conv1d(width, config.seam_channels, kernel_size=3, padding=1),
        )

    def forward(self, pixels: torch.Tensor) -> torch.Tensor:
        strip = pixels[:, None, :, self.columns]  # (B, 1, 28, columns)
        per_row = self.rows(self.strip(strip).squeeze(3))  # (B, C, 28); squeeze, not [..., 0]: a view, where ONNX Gather copies
        return per_row.transpose(1, 2).reshape(pixels.shape[0], -1)  # row-major: row y, then channel c


class Arm(nn.Module):
    """One half's encoder: a residual MLP over the raw 28x14 pixels.

    An MLP keeps full resolution at the cut (a strided CNN blurs exactly the
    columns that matter most) and trains several times faster on a CPU.
    """

    def __init__(self, config: ModelConfig, side: str) -> None:
        super().__init__()
        self.config = config
        self.column_offset = 0 if side == "left" else 14
        fold_bias = side == "left"
        self.stem = nn.Linear(PIXELS, config.hidden)
        self.blocks = nn.ModuleList(
            nn.Sequential(
                nn.LayerNorm(config.hidden),
                nn.Linear(config.hidden, config.hidden),
                nn.GELU(),
                nn.Dropout(config.dropout),
                nn.Linear(config.hidden, config.hidden),
            )
            for _ in range(config.depth - 1)
        )
        self.norm = nn.LayerNorm(config.hidden)
        self.embed = nn.Linear(config.hidden, config.embedding)
        self.project = nn.Linear(config.hidden, config.head_hidden, bias=fold_bias)
        self.seam = Seam(config, side) if config.seam_channels else None

    def forward(self, halves: torch.Tensor, geometry_from: torch.Tensor | None = None) -> torch.Tensor:
        """uint8 or float halves (B, 28, 14) in 0..255 -> features (B, feature_size):
        the embedding, the head's hidden share, then the exact geometry (of GEOMETRY_FROM
        where given: training augments the learned path only)."""
        pixels = halves.float() / 255.0
        geometry_pixels = pixels if geometry_from is None else geometry_from.float() / 255.0
        # The trunk runs in its weights' dtype (fp16 for `export --fp16`); geometry always in fp32.
        x = pixels.reshape(halves.shape[0], PIXELS).to(self.stem.weight.dtype)
        h = self.stem(x)
        for block in self.blocks:
            h = h + block(h)
        h = self.norm(h)
        g = F.normalize(self.embed(h).float(), dim=1)
        parts = [g, self.project(h).float()]
        if self.seam is not None:
            parts.append(self.seam(pixels))
        parts.append(geometry(geometry_pixels, self.column_offset))
        return torch.cat(parts, dim=1)


class PairHead(nn.Module):
    """Scores every (left, right) pair of two feature tiles: [Tl, D] x [Tr, D] -> [Tl, Tr].

    score = s * <g_l, g_r> + sum_h v_h * (a_l[h] + a_r[h])^2
            + sum_(y,c) u_c * (q_l[y,c] + q_r[y,c])^2 - geometry_penalty(l, r)

    The learned part is a hidden layer z = a_l + a_r (the split first layer), a
    square activation and an output layer v, beside the embedding similarity.
    The square makes it factorise exactly into one matrix product per tile plus
    two rank-one terms, so it runs at GEMM speed. The geometry penalty is fixed
    (not learned) and elementwise.
    """

    def __init__(self, config: ModelConfig) -> None:
        super().__init__()
        self.embedding = config.embedding
        self.hidden = config.head_hidden
        self.geometry_start = config.geometry_start
        self.com_weight = config.com_weight
        self.box_weight = config.box_weight
        self.log_scale = nn.Parameter(torch.tensor(2.5))
        self.out = nn.Parameter(torch.randn(config.head_hidden) * 0.01)
        self.seam_out = nn.Parameter(torch.randn(config.seam_channels) * 0.01)

    def forward(self, left: torch.Tensor, right: torch.Tensor) -> torch.Tensor:
        g = self.geometry_start
        penalty = geometry_penalty(left[:, None, g:], right[None, :, g:], self.com_weight, self.box_weight)
        return self.learned(left, right) - penalty

    def _hidden_weights(self) -> torch.Tensor:
        """Output weight of every hidden unit: v for the head share, u repeated per row for the seam."""
        return torch.cat([self.out, self.seam_out.repeat(ROWS)])

    def learned(self, left: torch.Tensor, right: torch.Tensor) -> torch.Tensor:
        """The learned part over whole feature rows: one GEMM with per-feature coefficients (zero on
        the geometry, so no tile is sliced) plus the two per-half square terms, each a matrix-vector
        product written as [Tr, D] x [D, 1] (onnxruntime runs that faster than a 1-D MatMul)."""
        weights = self._hidden_weights()
        no_geometry = weights.new_zeros(GEOMETRY_SIZE)
        pair = torch.cat([self.log_scale.exp().expand(self.embedding), 2 * weights, no_geometry])
        square = torch.cat([weights.new_zeros(self.embedding), weights, no_geometry])[:, None]
        left_square = (left * left) @ square  # (Tl, 1)
        right_square = ((right * right) @ square).T  # (1, Tr)
        return (left * pair) @ right.T + left_square + right_square

    def reference(self, left: torch.Tensor, right: torch.Tensor) -> torch.Tensor:
        """The same scores computed literally (add, square, output layer): for tests only, O(Tl*Tr*H) memory."""
        e, g = self.embedding, self.geometry_start
        bilinear = self.log_scale.exp() * left[:, :e] @ right[:, :e].T
        hidden = left[:, None, e:g] + right[None, :, e:g]
        penalty = geometry_penalty(left[:, None, g:], right[None, :, g:], self.com_weight, self.box_weight)
        return bilinear + (hidden * hidden) @ self._hidden_weights() - penalty


class Amphisbaena(nn.Module):
    """Left arm, right arm and pairwise head, trained together."""

    def __init__(self, config: ModelConfig) -> None:
        super().__init__()
        self.config = config
        self.left_arm = Arm(config, side="left")
        self.right_arm = Arm(config, side="right")
        self.head = PairHead(config)

    def forward(
        self, left: torch.Tensor, right: torch.Tensor, geometry_from: tuple[torch.Tensor, torch.Tensor] | None = None
    ) -> torch.Tensor:
        left_geometry, right_geometry = geometry_from if geometry_from is not None else (None, None)
        return self.head(self.left_arm(left, left_geometry), self.right_arm(right, right_geometry))
