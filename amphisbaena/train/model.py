"""The two unshared arms and the pairwise head.

A pair's score is

    score(l, r) = <g_l, g_r> + sum_h v_h * relu(a_l[h] + a_r[h])

The first layer of the head is split per side: each arm emits its embedding
g and its head projection a (bias folded into the left side), so the arms run
once per half and only the cheap add-relu-dot part runs per pair. The bilinear
term can express squared differences of boundary pixels and balance terms
such as "the two halves' moments add up to a centred digit"; the relu part
adds what a bilinear form cannot, e.g. |x_l - x_r|.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import torch
from torch import nn
from torch.nn import functional as F

PIXELS = 28 * 14


@dataclass
class ModelConfig:
    """Shape of the network; recorded in the manifest so a model can be rebuilt."""

    arm: str = "mlp"  # "mlp" or "cnn"
    hidden: int = 1024
    depth: int = 4
    embedding: int = 128
    head_hidden: int = 32
    dropout: float = 0.1

    @property
    def feature_size(self) -> int:
        return self.embedding + self.head_hidden

    def to_dict(self) -> dict:
        return asdict(self)


class ConvTrunk(nn.Module):
    """Full-resolution convolutions near the pixels, one stride-2 stage, then a dense layer."""

    def __init__(self, hidden: int) -> None:
        super().__init__()
        self.convs = nn.Sequential(
            nn.Conv2d(1, 32, 3, padding=1),
            nn.GELU(),
            nn.Conv2d(32, 32, 3, padding=1),
            nn.GELU(),
            nn.Conv2d(32, 64, 3, padding=1, stride=2),
            nn.GELU(),
            nn.Conv2d(64, 64, 3, padding=1),
            nn.GELU(),
        )
        self.dense = nn.Linear(64 * 14 * 7, hidden)
        self.pixels = nn.Linear(PIXELS, hidden)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        conv = self.convs(x.reshape(-1, 1, 28, 14)).flatten(1)
        return self.dense(conv) + self.pixels(x)


class Arm(nn.Module):
    """One half's encoder: a residual MLP over the raw 28x14 pixels.

    An MLP keeps full resolution at the cut (a strided CNN blurs exactly the
    columns that matter most) and trains several times faster on a CPU.
    """

    def __init__(self, config: ModelConfig, fold_bias: bool) -> None:
        super().__init__()
        self.config = config
        self.stem = ConvTrunk(config.hidden) if config.arm == "cnn" else nn.Linear(PIXELS, config.hidden)
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

    def forward(self, halves: torch.Tensor) -> torch.Tensor:
        """uint8 or float halves (B, 28, 14) in 0..255 -> features (B, feature_size)."""
        x = halves.reshape(halves.shape[0], PIXELS).float() / 255.0
        h = self.stem(x)
        for block in self.blocks:
            h = h + block(h)
        h = self.norm(h)
        g = F.normalize(self.embed(h), dim=1)
        return torch.cat([g, self.project(h)], dim=1)


class PairHead(nn.Module):
    """Scores every (left, right) pair of two feature tiles: [Tl, D] x [Tr, D] -> [Tl, Tr]."""

    def __init__(self, config: ModelConfig) -> None:
        super().__init__()
        self.embedding = config.embedding
        self.log_scale = nn.Parameter(torch.tensor(2.5))
        self.out = nn.Parameter(torch.randn(config.head_hidden) * 0.05)

    def forward(self, left: torch.Tensor, right: torch.Tensor) -> torch.Tensor:
        e = self.embedding
        bilinear = left[:, :e] @ right[:, :e].T
        pairwise = torch.relu(left[:, None, e:] + right[None, :, e:]) @ self.out
        return self.log_scale.exp() * bilinear + pairwise


class Amphisbaena(nn.Module):
    """Left arm, right arm and pairwise head, trained together."""

    def __init__(self, config: ModelConfig) -> None:
        super().__init__()
        self.config = config
        self.left_arm = Arm(config, fold_bias=True)
        self.right_arm = Arm(config, fold_bias=False)
        self.head = PairHead(config)

    def forward(self, left: torch.Tensor, right: torch.Tensor) -> torch.Tensor:
        return self.head(self.left_arm(left), self.right_arm(right))
