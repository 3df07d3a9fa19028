"""Pairs the geometry penalty rules out, found before any pair is scored.

A pair's score is learned(l, r) - penalty(l, r). Both parts can be bounded
without running the head on the pair:

* learned(l, r) = s <g_l, g_r> + sum_h w_h (a_l[h] + a_r[h])^2 is at most
  s |g_l| |g_r| + 2 P_l + 2 P_r with P = sum_h max(w_h, 0) a[h]^2, because
  (a + b)^2 <= 2 a^2 + 2 b^2 and the units with w_h < 0 only subtract;
* penalty(l, r) is at least its value under interval arithmetic over a group
  of lefts (their ranges of mass, moments and extents) against one right. The
  centring part is bounded through the window's edges: with torque t and mass
  m about 14, a pair lies outside the window by relu(|t_l + t_r| - (m_l + m_r) / 2)
  = max(e_l + e_r, -(f_l + f_r), 0) with e = t - m / 2 and f = t + m / 2, so
  each half's two edges are ranged, not its torque and mass separately,
  which leaves fewer pairs to score (docs/performance.md).

MNIST digits are centred and boxed, so on the test set about 95% of all pairs
have a penalty far above any learned score. Lefts are grouped by a k-d split
that at each step cuts the statistic leaving fewest pairs (`bound_groups`:
window edges or extents), each group is scored only against
the rights its bound cannot rule out, and the bound of every pair left out
goes into the candidate graph's row and column bounds. The optimality proof in
`assignment` then covers those pairs like any other excluded pair, so pruning
never changes the result, only the time it takes.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from functools import cached_property

import numpy as np

from amphisbaena.engines.base import Backend
from amphisbaena.geometry import BOX_SIDE, CENTRE, CENTRE_HIGH, MIN_MASS
from amphisbaena.model_files import FeatureLayout

HALF_WINDOW = CENTRE_HIGH - CENTRE  # 0.5: how far the joined centre of mass may lie from 14
GROUP_SIZE = 256  # lefts per group: small groups have tight ranges, large ones amortise each head call (docs/performance.md)
BOUND_CELLS = 1 << 16  # (group, right) bounds computed at once: temporaries stay in cache
PRUNE_FLOOR = -20.0  # pairs whose score bound is below this are not scored (well under a row's 33rd best)
BUCKET_SIZE = 12_000  # rights per bucket of the proof's caps: small buckets bound tightly, but each is a head call per block of rows (docs/performance.md)


@dataclass(frozen=True)
class LearnedBound:
    """The head's weights that bound its learned part, read off the head itself."""

    scale: float  # s, the embedding similarity's scale
    positive_weights: np.ndarray  # max(w_h, 0) for every hidden unit (head share and seam)
    layout: FeatureLayout

    @classmethod
    def probe(cls, backend: Backend) -> LearnedBound:
        """Run the head on unit features with a zero-penalty geometry: a left with only hidden unit h
        set against a blank right scores w_h, and a shared unit embedding scores s."""
        layout = backend.layout
        e, g = layout.embedding, layout.geometry.start
        hidden = g - e
        left = np.zeros((hidden + 1, backend.feature_size), dtype=np.float32)
        right = np.zeros((1, backend.feature_size), dtype=np.float32)
        left[0, 0] = right[0, 0] = 1.0
        left[np.arange(1, hidden + 1), np.arange(e, g)] = 1.0
        # Each half holds unit mass at (14, 14), rows 4..23, outer columns 7 and 20: a centred
        # 20 x 14 digit, which the penalty leaves alone.
        left[:, g : g + 6] = [1.0, CENTRE, CENTRE, 4.0, 23.0, 7.0]
        right[:, g : g + 6] = [1.0, CENTRE, CENTRE, 4.0, 23.0, 20.0]
        scores = backend.head(left, right)[:, 0].astype(np.float64)
        return cls(float(scores[0]), np.maximum(scores[1:], 0.0), layout)

    def half_terms(self, features: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Per half: the embedding's norm and P = sum_h max(w_h, 0) a[h]^2.

        In float32 (much faster than float64): its relative rounding, about 1e-7 per term
        over a few hundred terms, stays far inside the 1e-3 relative widening of every bound."""
        e, g = self.layout.embedding, self.layout.geometry.start
        embedding, hidden = features[:, :e], features[:, e:g]
        norms = np.sqrt(np.einsum("ij,ij->i", embedding, embedding))
        squares = (hidden * hidden) @ self.positive_weights.astype(np.float32)
        return norms.astype(np.float64), squares.astype(np.float64)


WINDOW_EDGES = (8, 10)  # columns of half_statistics holding e = t - m / 2 of the row, then the column axis; f follows each


def half_statistics(features: np.ndarray, bound: LearnedBound) -> np.ndarray:
    """(N, 12) per half: mass, row torque and column torque about 14, top, bottom and outer
    extents, embedding norm and P, then the window edges e = t - HALF_WINDOW * m and
    f = t + HALF_WINDOW * m of the row and of the column torque."""
    g = bound.layout.geometry.start
    geometry = features[:, g : g + 6].astype(np.float64)
    mass = geometry[:, 0]
    row_torque, col_torque = geometry[:, 1] - CENTRE * mass, geometry[:, 2] - CENTRE * mass
    norms, squares = bound.half_terms(features)
    edges = [torque + sign * HALF_WINDOW * mass for torque in (row_torque, col_torque) for sign in (-1, 1)]
    return np.column_stack([mass, row_torque, col_torque, geometry[:, 3:6], norms, squares, *edges])


def centre_groups(statistics: np.ndarray, size: int = GROUP_SIZE) -> list[np.ndarray]:
    """Halves (their statistics, (N, 12)) split into groups of similar centre of mass: alternately at the
    median column and row torque, until a group holds at most SIZE (so more than SIZE / 2)."""
    groups, pending, depth = [], [(np.arange(len(statistics)), 0)], 0
    while pending:
        members, depth = pending.pop()
        if len(members) <= size:
            groups.append(members)
            continue
        axis = 2 if depth % 2 == 0 else 1
        ordered = members[np.argsort(statistics[members, axis], kind="stable")]
        half = len(ordered) // 2
        pending += [(ordered[half:], depth + 1), (ordered[:half], depth + 1)]
    return groups


SPLIT_STATISTICS = (8, 9, 10, 11, 3, 4, 5)  # the four window edges, then top, bottom and outer extent
EXTENTS = (3, 4, 5)  # whole pixels: a split keeps each value on one side, so small groups get exact boxes
SAMPLE_RIGHTS = 512  # rights the splits are judged against: enough to rank them (1,500 chose groups that keep as many pairs)
JUDGED_LEFTS = 4_096  # a larger node judges its splits on this many of its lefts, spread evenly
VISIT_PAIRS = 128  # what a right costs a block beyond its scored pairs (its offer and slots), in pairs (docs/performance.md)
MIN_SPLIT = 32  # groups this small are not split further


@dataclass(frozen=True)
class Group:
    """A group of lefts and the rights its bound keeps (`bound_groups`)."""

    members: np.ndarray  # lefts
    cols: np.ndarray  # ascending: every right whose bound with the group reaches the floor
    left_out: float  # a bound on any member's score with every other right (-inf where none is left out)


def bound_groups(
    lefts: np.ndarray, rights: np.ndarray, bound: LearnedBound, floor: float, size: int = GROUP_SIZE, col_left_out: np.ndarray | None = None
) -> Iterator[Group]:
    """Lefts (statistics, (N, 12)) split into groups of at most SIZE (where their statistics differ) that leave
    few pairs to score, each with the rights (RIGHTS, (M, 12)) it keeps at FLOOR. A k-d split where each node
    takes, of the median splits of SPLIT_STATISTICS, the one whose halves cost least against a fixed sample
    of the rights: the (left, right) pairs each half keeps, plus VISIT_PAIRS per right it keeps. A node of
    at most SIZE stays whole unless splitting it costs less.

    The exact bound is a conjunction of sharp conditions on all six of a left's geometry statistics, so
    splitting on whichever binds most narrows groups where it matters (docs/performance.md). Each group is
    yielded as the depth-first split finds it, so the stream scores the first while the rest are split.

    A node's range lies inside its parent's, so its bound is no higher: each node bounds only the rights its
    parent kept (a leaf, about a third of what bounding every right would cost at 60,000 pairs). A right a
    node leaves out is left out of every group below it, at that node's bound, which goes into the groups'
    `left_out` and into COL_LEFT_OUT (M,), per right the largest bound of a node that left it out."""
    sample = rights[np.linspace(0, len(rights) - 1, min(SAMPLE_RIGHTS, len(rights))).astype(np.int64)]
    pending = [(np.arange(len(lefts)), sample, np.arange(len(rights)), -np.inf)]
    while pending:
        members, reached, cols, left_out = pending.pop()  # REACHED: the sampled rights the node's own range keeps
        upper = _range_bounds(lefts[members], rights, bound, cols)
        kept = upper >= floor
        if not kept.all():
            left_out = max(left_out, float(upper[~kept].max()))
            if col_left_out is not None:
                col_left_out[cols[~kept]] = np.maximum(col_left_out[cols[~kept]], upper[~kept])
            cols = cols[kept]
        judged = members if len(members) <= JUDGED_LEFTS else members[np.linspace(0, len(members) - 1, JUDGED_LEFTS).astype(np.int64)]
        statistics = lefts[judged]
        splits = _median_splits(statistics) if len(members) > MIN_SPLIT else []
        if not splits:
            yield Group(members, cols, left_out)
            continue
        sides = [np.flatnonzero(side) for axis, threshold in splits for side in _sides(statistics[:, axis], threshold)]
        sizes = np.array([len(side) for side in sides])
        gathered, starts = statistics[np.concatenate(sides)], np.cumsum(sizes) - sizes
        low, high = np.minimum.reduceat(gathered, starts), np.maximum.reduceat(gathered, starts)
        judged_kept = score_upper_bounds(low, high, reached, bound) >= floor  # a half's range lies in its node's: it keeps no more
        cost = (judged_kept.sum(axis=1) * (sizes * (len(members) / len(judged)) + VISIT_PAIRS)).reshape(-1, 2).sum(axis=1)
        best = int(np.argmin(cost))
        if len(members) <= size and cost[best] >= len(reached) * (len(members) + VISIT_PAIRS):
            yield Group(members, cols, left_out)
            continue
        axis, threshold = splits[best]
        below, above = _sides(lefts[members, axis], threshold)
        pending += [
            (members[above], reached[judged_kept[2 * best + 1]], cols, left_out),
            (members[below], reached[judged_kept[2 * best]], cols, left_out),
        ]


def _range_bounds(members: np.ndarray, rights: np.ndarray, bound: LearnedBound, cols: np.ndarray | None = None) -> np.ndarray:
    """(len(COLS),) bounds on the score of any left in the range of MEMBERS (statistics) with each right COLS
    of RIGHTS (every right where COLS is None), a cache-sized batch of rights at a time."""
    low, high = members.min(axis=0)[None], members.max(axis=0)[None]
    chosen = rights if cols is None else rights[cols]
    return np.concatenate([score_upper_bounds(low, high, chosen[i : i + BOUND_CELLS], bound)[0] for i in range(0, len(chosen), BOUND_CELLS)] or [np.zeros(0)])


def _sides(values: np.ndarray, threshold: float) -> tuple[np.ndarray, np.ndarray]:
    below = values < threshold
    return below, ~below


def _median_splits(statistics: np.ndarray) -> list[tuple[int, float]]:
    """(axis, threshold) of each statistic's median split (below the threshold, and the rest) that leaves
    neither side empty. An extent's median value goes wholly to the side that balances the two better."""
    splits = []
    for axis in SPLIT_STATISTICS:
        values = statistics[:, axis]
        middle = float(np.partition(values, len(values) // 2)[len(values) // 2])
        threshold = middle
        if axis in EXTENTS and abs(2 * (values <= middle).sum() - len(values)) < abs(2 * (values < middle).sum() - len(values)):
            threshold = middle + 0.5
        if 0 < (values < threshold).sum() < len(values):
            splits.append((axis, threshold))
    return splits


def score_upper_bounds(low: np.ndarray, high: np.ndarray, rights: np.ndarray, bound: LearnedBound, rights_high: np.ndarray | None = None) -> np.ndarray:
    """(G, N) upper bounds on the score of any left of each group (statistics in [LOW, HIGH], (G, 12))
    with each right (RIGHTS, (N, 12)), or with RIGHTS_HIGH with any right of each of N ranges of rights
    (statistics in [RIGHTS, RIGHTS_HIGH]): the learned bound minus the penalty's interval lower bound."""
    spec = bound.layout.geometry
    lo, hi = low[:, None, :], high[:, None, :]
    r_lo, r_hi = rights[None, :, :], (rights if rights_high is None else rights_high)[None, :, :]
    mass_low, mass_high = lo[..., 0] + r_lo[..., 0], hi[..., 0] + r_hi[..., 0]
    beyond = np.zeros(mass_low.shape)  # torque beyond the window, summed over both axes
    for e in WINDOW_EDGES:  # past the high edge (e_l + e_r > 0) or the low one (f_l + f_r < 0); never both
        beyond += np.maximum(lo[..., e] + r_lo[..., e], 0) + np.maximum(-(hi[..., e + 1] + r_hi[..., e + 1]), 0)
    with np.errstate(divide="ignore", invalid="ignore"):
        outside = np.where(mass_low >= MIN_MASS, beyond / mass_high, 0.0)  # near-blank pairs: the clamped mass, no claim
    height_low = np.maximum(lo[..., 4], r_lo[..., 4]) - np.minimum(hi[..., 3], r_hi[..., 3]) + 1
    height_high = np.maximum(hi[..., 4], r_hi[..., 4]) - np.minimum(lo[..., 3], r_lo[..., 3]) + 1
    width_low, width_high = r_lo[..., 5] - hi[..., 5] + 1, r_hi[..., 5] - lo[..., 5] + 1
    side_low, side_high = np.maximum(height_low, width_low), np.maximum(height_high, width_high)
    box = np.maximum(side_low - BOX_SIDE, 0) + np.maximum(BOX_SIDE - side_high, 0)
    penalty = spec.com_weight * outside + spec.box_weight * box
    learned = bound.scale * hi[..., 6] * r_hi[..., 6] + 2 * hi[..., 7] + 2 * r_hi[..., 7]
    # float32 scores carry rounding the float64 bound does not: widen it
    return learned - penalty + 1e-3 * (1.0 + np.abs(learned) + 1e-3 * penalty)


class GeometryPruner:
    """Score bounds for one restore: the probed head weights, every half's statistics, the floor below
    which a pair is not scored, and the groups of lefts with the rights they keep (`bound_groups`), split as
    they are first needed."""

    def __init__(self, backend: Backend, left_features: np.ndarray, right_features: np.ndarray, group_size: int = GROUP_SIZE) -> None:
        self.bound = LearnedBound.probe(backend)
        self.lefts = half_statistics(left_features, self.bound)
        self.rights = half_statistics(right_features, self.bound)
        self.floor = PRUNE_FLOOR
        self.col_left_out = np.full(len(self.rights), -np.inf)  # complete once every group is split
        self._group_size = group_size

    def each_group(self) -> Iterator[Group]:
        """The groups of lefts in order, each as soon as it is split off. Split anew for each stream (seconds at a
        million pairs) rather than kept: their rights would hold gigabytes there."""
        return bound_groups(self.lefts, self.rights, self.bound, self.floor, self._group_size, self.col_left_out)

    @property
    def groups(self) -> list[np.ndarray]:
        """The members of every group of lefts, all split."""
        return [group.members for group in self.each_group()]

    def bounds(self, sets: list[np.ndarray]) -> Iterator[np.ndarray]:
        """For each set of lefts in turn, (N_right,) bounds on any of its scores with each right (`_range_bounds`)."""
        return (_range_bounds(self.lefts[members], self.rights, self.bound) for members in sets)

    @cached_property
    def buckets(self) -> list[np.ndarray]:
        """The rights split by centre of mass into buckets of at most BUCKET_SIZE, for the proof's check
        (`proof.uncovered`): a left's bound against a whole bucket rules out most of the pairs its row's
        bound leaves open."""
        return centre_groups(self.rights, BUCKET_SIZE)

    @cached_property
    def _bucket_ranges(self) -> tuple[np.ndarray, np.ndarray]:
        return np.stack([self.rights[b].min(axis=0) for b in self.buckets]), np.stack([self.rights[b].max(axis=0) for b in self.buckets])

    def bucket_caps(self, lefts: np.ndarray, bucket: int) -> np.ndarray:
        """(len(LEFTS),) upper bounds on the score of each of the lefts LEFTS with any right in `buckets`[BUCKET]."""
        statistics = self.lefts[lefts]
        low, high = self._bucket_ranges
        return score_upper_bounds(statistics, statistics, low[bucket : bucket + 1], self.bound, high[bucket : bucket + 1])[:, 0]


def pruning_applies(backend: Backend) -> bool:
    """Only a head with a geometry penalty has pairs to rule out."""
    layout = backend.layout
    return layout is not None and (layout.geometry.com_weight > 0 or layout.geometry.box_weight > 0)


def pruner_for(backend: Backend, left_features: np.ndarray, right_features: np.ndarray) -> GeometryPruner | None:
    """The pruner for these halves, or None where the head has nothing to rule out."""
    return GeometryPruner(backend, left_features, right_features) if pruning_applies(backend) else None
