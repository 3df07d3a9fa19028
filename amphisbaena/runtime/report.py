"""A one-page visual report of a restore run (matplotlib, an optional dependency).

Panels: restored digits (with a key, wrong ones framed in red); the least
confident matches beside their runner-up; with a key, wrong matches beside
their true partners with both scores, and the score distributions of true
pairs against the best wrong partner and against random pairs (an embedding
collapse shows as overlap); the score matrix of a small sample, true partners
on the diagonal; and the confidence (regret) of right and wrong matches.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from amphisbaena.engines.base import Backend
from amphisbaena.errors import InputError
from amphisbaena.halves import join_halves
from amphisbaena.runtime.png import digit_grid
from amphisbaena.runtime.results import RestoreResult
from amphisbaena.runtime.scorer import PairScorer

REPORT_HINT = "pip install 'amphisbaena[report]'"  # the README's install line for the report's extra
LEAST_CONFIDENT = 8
WRONG_SHOWN = 8
HEATMAP_SIZE = 24
SAMPLE_ROWS = 1_000


def require_matplotlib():
    """matplotlib.pyplot on the Agg backend; a one-line error with the install hint where it is missing."""
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        raise InputError(f"--report needs matplotlib: {REPORT_HINT}") from None
    return plt


def _pair_scores(backend: Backend, left_features: np.ndarray, right_features: np.ndarray, lefts: np.ndarray, rights: np.ndarray) -> np.ndarray:
    """Scores of the pairs (lefts[i], rights[i]), a block at a time through the tiled head."""
    out = np.empty(len(lefts), dtype=np.float32)
    for start in range(0, len(lefts), 256):
        block = slice(start, start + 256)
        out[block] = np.diagonal(backend.head(left_features[lefts[block]], right_features[rights[block]]))
    return out


def write_report(
    path: Path,
    backend: Backend,
    left: np.ndarray,
    right: np.ndarray,
    result: RestoreResult,
    key: np.ndarray | None = None,
    seed: int = 0,
) -> None:
    """Render the report to PATH (PNG)."""
    plt = require_matplotlib()
    rng = np.random.default_rng(seed)
    left_features, right_features = result.features  # computed once by restore(), reused here
    n = len(left)
    chosen = result.right_for_left

    figure = plt.figure(figsize=(21, 11), layout="constrained")
    grid = figure.add_gridspec(2, 4)
    accuracy = f", accuracy {result.accuracy:.2%}" if result.accuracy is not None else ""
    figure.suptitle(f"Amphisbaena restore report: {n} pairs, {result.backend} ({result.precision}){accuracy}", fontsize=14)

    # 1. Restored digits, wrong ones framed in red where a key tells.
    wrong = None if result.correct is None else ~result.correct[:100]
    mosaic = digit_grid(join_halves(left, right, chosen)[:100], wrong, columns=10)
    axis = figure.add_subplot(grid[0, 0])
    axis.imshow(mosaic, cmap="gray")
    axis.set_title("first 100 restored digits" + ("" if wrong is None else f" ({int(wrong.sum())} wrong, framed in red)"))
    axis.axis("off")

    # 2. Least confident matches beside their runner-up (the best other right for that left).
    least = np.argsort(result.confidence, kind="stable")[:LEAST_CONFIDENT]
    rows = PairScorer(backend, left_features, right_features).rows(least)
    rows[np.arange(len(least)), chosen[least]] = -np.inf
    runner_up = rows.argmax(axis=1)
    axis = figure.add_subplot(grid[0, 1])
    tiles = np.zeros((LEAST_CONFIDENT * 30, 2 * 30 + 6), dtype=np.uint8)
    for row, (i, j_other) in enumerate(zip(least, runner_up)):
        tiles[row * 30 + 1 : row * 30 + 29, 1:29] = np.concatenate([left[i], right[chosen[i]]], axis=1)
        tiles[row * 30 + 1 : row * 30 + 29, 37:65] = np.concatenate([left[i], right[j_other]], axis=1)
    axis.imshow(tiles, cmap="gray_r", aspect="equal")
    for row, i in enumerate(least):
        verdict = "" if key is None else ("  correct" if chosen[i] == key[i] else "  WRONG")
        axis.text(70, row * 30 + 16, f"left {i}: confidence {result.confidence[i]:.3f}{verdict}", fontsize=8, va="center")
    axis.set_xlim(0, 135)
    axis.set_title(f"{LEAST_CONFIDENT} least confident: chosen | runner-up")
    axis.axis("off")

    # 3. Score distributions.
    axis = figure.add_subplot(grid[0, 2])
    sample = rng.choice(n, size=min(SAMPLE_ROWS, n), replace=False)
    random_pairs = _pair_scores(backend, left_features, right_features, sample, rng.integers(0, len(right), len(sample)))
    sample_rows = PairScorer(backend, left_features, right_features).rows(sample)
    if key is not None:
        true_scores = _pair_scores(backend, left_features, right_features, np.arange(n), key)
        sample_rows[np.arange(len(sample)), key[sample]] = -np.inf
        best_wrong = sample_rows.max(axis=1)
        low = np.percentile(np.concatenate([true_scores, best_wrong]), 0.5)
        high = max(true_scores.max(), best_wrong.max())
        bins = np.linspace(low, high, 60)
        axis.hist(true_scores, bins=bins, alpha=0.6, label=f"true pairs ({n})")
        axis.hist(best_wrong, bins=bins, alpha=0.6, label=f"best wrong partner ({len(sample)} sampled lefts)")
        in_view = float(np.mean(random_pairs >= low))
        axis.hist(random_pairs, bins=bins, histtype="step", label=f"random pairs ({in_view:.1%} in view, the rest far below)")
        axis.set_title("scores: true pairs against the best impostor")
    else:
        best = sample_rows.max(axis=1)
        bins = np.linspace(np.percentile(best, 0.5), best.max(), 60)
        axis.hist(best, bins=bins, alpha=0.6, label="best partner per sampled left")
        axis.hist(random_pairs, bins=bins, histtype="step", label="random pairs (most far below)")
        axis.set_title("scores (no key given)")
    axis.set_ylabel("count")
    axis.set_xlabel("score")
    axis.legend(fontsize=8)

    # 4. Accuracy against coverage (keyed), else the confidence each coverage needs.
    axis = figure.add_subplot(grid[1, 0])
    order = np.argsort(-result.confidence, kind="stable")
    coverage = np.arange(1, n + 1) / n
    if result.correct is not None:
        axis.plot(coverage, np.cumsum(result.correct[order]) / np.arange(1, n + 1))
        axis.set_ylabel("accuracy of the matches kept")
        axis.set_title("accuracy against coverage")
    else:
        axis.plot(coverage, result.confidence[order])
        axis.set_ylabel("smallest confidence kept")
        axis.set_title("confidence against coverage")
    axis.set_xlabel("fraction of matches kept (most confident first)")
    axis.grid(alpha=0.3)

    # 5. Score heatmap of a small sample: with a key, rights ordered so true partners sit on the diagonal.
    axis = figure.add_subplot(grid[1, 1])
    lefts = np.sort(rng.choice(n, size=min(HEATMAP_SIZE, n), replace=False))
    rights = key[lefts] if key is not None else chosen[lefts]
    block = PairScorer(backend, left_features[lefts], right_features[rights]).all()
    low = float(np.diagonal(block).min()) - 25.0  # geometry penalties reach thousands: show the contest near the top
    image = axis.imshow(np.clip(block, low, None), cmap="viridis")
    figure.colorbar(image, ax=axis, shrink=0.8, label=f"score (clipped below at {low:.0f})")
    axis.set_xlabel("right half (" + ("true partner of the row's left" if key is not None else "restored partner") + " on the diagonal)")
    axis.set_ylabel("left half")
    axis.set_title(f"score matrix of {len(lefts)} sampled pairs")

    # 6. Confidence (regret), split by correct and wrong when keyed.
    axis = figure.add_subplot(grid[1, 2])
    bins = np.linspace(0.0, max(float(result.confidence.max()), 1e-6), 60)
    if result.correct is not None:
        axis.hist(result.confidence[result.correct], bins=bins, alpha=0.6, label="correct matches")
        axis.hist(result.confidence[~result.correct], bins=bins, alpha=0.6, label="wrong matches")
        axis.legend(fontsize=8)
    else:
        axis.hist(result.confidence, bins=bins)
    axis.set_xlabel("confidence: what the best total score loses if the match is forbidden (capped)")
    axis.set_ylabel("count")
    axis.set_yscale("log")
    axis.set_title("confidence (regret) of each match")

    # 7. Wrong matches beside their true partners, with both scores.
    axis = figure.add_subplot(grid[:, 3])
    if result.correct is not None and (~result.correct).any():
        wrong_lefts = np.flatnonzero(~result.correct)[:WRONG_SHOWN]
        chosen_scores = _pair_scores(backend, left_features, right_features, wrong_lefts, chosen[wrong_lefts])
        true_scores = _pair_scores(backend, left_features, right_features, wrong_lefts, key[wrong_lefts])
        tiles = np.zeros((len(wrong_lefts) * 30, 2 * 30 + 6), dtype=np.uint8)
        for row, i in enumerate(wrong_lefts):
            tiles[row * 30 + 1 : row * 30 + 29, 1:29] = np.concatenate([left[i], right[chosen[i]]], axis=1)
            tiles[row * 30 + 1 : row * 30 + 29, 37:65] = np.concatenate([left[i], right[key[i]]], axis=1)
        axis.imshow(tiles, cmap="gray_r", aspect="equal")
        for row, i in enumerate(wrong_lefts):
            axis.text(70, row * 30 + 16, f"left {i}\nchosen {chosen_scores[row]:.2f}\ntrue {true_scores[row]:.2f}", fontsize=8, va="center")
        axis.set_xlim(0, 110)
        axis.set_title(f"wrong matches ({int((~result.correct).sum())}): chosen | true partner")
    else:
        axis.text(0.5, 0.5, "no key given, or no wrong match" if result.correct is None or result.correct.all() else "", ha="center")
        axis.set_title("wrong matches")
    axis.axis("off")
    figure.savefig(path, dpi=80, format="png")
    plt.close(figure)
