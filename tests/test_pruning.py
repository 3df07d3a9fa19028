"""Geometry pruning on real MNIST with the shipped model: the bounds hold on every pair, they rule
out most pairs, and pruning never changes the optimal pairing."""

from __future__ import annotations

import numpy as np
import onnx
import pytest
from onnx import numpy_helper

from amphisbaena.engines.onnxruntime_backend import OnnxRuntimeBackend
from amphisbaena.halves import make_halves
from amphisbaena.model_files import load_model_files
from amphisbaena.runtime import pruning
from amphisbaena.runtime.features import arm_features
from amphisbaena.runtime.restore import restore
from amphisbaena.runtime.scorer import PairScorer


@pytest.fixture(scope="module")
def features(shipped: OnnxRuntimeBackend, test_digits: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    left, right, _ = make_halves(test_digits[:1500], seed=3)
    return arm_features(shipped, "left", left), arm_features(shipped, "right", right)


def test_probe_reads_the_heads_own_weights(shipped: OnnxRuntimeBackend) -> None:
    weights = {t.name: numpy_helper.to_array(t) for t in onnx.load(str(load_model_files().path("head"))).graph.initializer}
    bound = pruning.LearnedBound.probe(shipped)
    assert bound.scale == pytest.approx(np.exp(weights["log_scale"]), rel=1e-5)
    hidden = np.concatenate([weights["out"], np.tile(weights["seam_out"], 28)])
    np.testing.assert_allclose(bound.positive_weights, np.maximum(hidden, 0), rtol=1e-5, atol=1e-7)


@pytest.mark.parametrize("group_size, ruled_out", [(16, 0.79), (256, 0.51)])  # torque and mass ranged separately: 0.776, 0.477
def test_bounds_hold_on_every_pair_and_rule_out_most(shipped: OnnxRuntimeBackend, features, group_size: int, ruled_out: float) -> None:
    fl, fr = features
    scores = shipped.head(fl, fr).astype(np.float64)
    bound = pruning.LearnedBound.probe(shipped)
    lefts, rights = pruning.half_statistics(fl, bound), pruning.half_statistics(fr, bound)
    upper = np.empty_like(scores)
    for members in pruning.centre_groups(lefts, group_size):
        low, high = lefts[members].min(axis=0, keepdims=True), lefts[members].max(axis=0, keepdims=True)
        upper[members] = pruning.score_upper_bounds(low, high, rights, bound)
    assert np.all(scores <= upper), f"bound broken by {np.max(scores - upper):.4g}"
    assert np.mean(upper < pruning.PRUNE_FLOOR) > ruled_out  # narrower groups rule out more


def test_a_single_lefts_bound_carries_the_heads_exact_penalty(shipped: OnnxRuntimeBackend, features) -> None:
    """A group of one left has no range to lose: its bound is the learned bound minus exactly the
    penalty the head subtracts (so the centring bound is as tight as it can be per pair)."""
    torch = pytest.importorskip("torch")
    from amphisbaena.train.model import geometry_penalty

    fl, fr = features
    bound = pruning.LearnedBound.probe(shipped)
    lefts, rights = pruning.half_statistics(fl, bound), pruning.half_statistics(fr, bound)
    spec = shipped.layout.geometry
    g = spec.start
    penalty = geometry_penalty(
        torch.from_numpy(fl[:64, None, g:]).double(), torch.from_numpy(fr[None, :, g:]).double(), spec.com_weight, spec.box_weight
    ).numpy()
    learned = bound.scale * lefts[:64, None, 6] * rights[None, :, 6] + 2 * lefts[:64, None, 7] + 2 * rights[None, :, 7]
    upper = pruning.score_upper_bounds(lefts[:64], lefts[:64], rights, bound)
    widening = 1e-3 * (1.0 + np.abs(learned) + 1e-3 * penalty)
    np.testing.assert_allclose(learned - upper + widening, penalty, rtol=1e-9, atol=1e-6)
    assert (penalty > 0).mean() > 0.5  # most pairs are penalised: the check is not vacuous


def test_groups_partition_the_lefts(features) -> None:
    layout = load_model_files().layout
    bound = pruning.LearnedBound(1.0, np.zeros(layout.geometry.start - layout.embedding), layout)
    statistics = pruning.half_statistics(features[0], bound)
    groups = pruning.centre_groups(statistics, 100)
    assert sorted(np.concatenate(groups).tolist()) == list(range(1500))
    assert all(50 < len(g) <= 100 for g in groups)
    # the first split is at the median column torque
    first_half = np.concatenate(groups[: len(groups) // 2])
    assert statistics[first_half, 2].max() <= np.median(statistics[:, 2]) + 1e-9 or statistics[first_half, 2].min() >= np.median(statistics[:, 2]) - 1e-9


def test_bound_groups_partition_the_lefts_and_keep_fewer_pairs_than_torque_groups(shipped: OnnxRuntimeBackend, test_digits: np.ndarray) -> None:
    """On 6,000 test digits, against every right: groups chosen by the pairs they keep leave fewer pairs to
    score than the k-d split on the torques, at no more groups than twice as many."""
    left, right, _ = make_halves(test_digits[:6000], seed=5)
    fl, fr = arm_features(shipped, "left", left), arm_features(shipped, "right", right)
    bound = pruning.LearnedBound.probe(shipped)
    lefts, rights = pruning.half_statistics(fl, bound), pruning.half_statistics(fr, bound)

    def kept(groups: list[np.ndarray]) -> int:
        low = np.stack([lefts[g].min(axis=0) for g in groups])
        high = np.stack([lefts[g].max(axis=0) for g in groups])
        return int(((pruning.score_upper_bounds(low, high, rights, bound) >= pruning.PRUNE_FLOOR).sum(axis=1) * [len(g) for g in groups]).sum())

    chosen = [group.members for group in pruning.bound_groups(lefts, rights, bound, pruning.PRUNE_FLOOR, 256)]
    torque = pruning.centre_groups(lefts, 256)
    assert sorted(np.concatenate(chosen).tolist()) == list(range(6000))
    assert max(len(g) for g in chosen) <= 256 and len(chosen) <= 2 * len(torque)
    assert kept(chosen) < 0.95 * kept(torque)  # 0.88 here


def test_bound_groups_split_extents_between_values(features) -> None:
    """A split on an extent (whole pixels) never parts lefts of one value: with lefts that differ only in
    their top row, every group holds whole rows' worth of lefts."""
    layout = load_model_files().layout
    bound = pruning.LearnedBound(1.0, np.zeros(layout.geometry.start - layout.embedding), layout)
    statistics = pruning.half_statistics(features[0], bound)
    statistics[:] = statistics[0]
    tops = np.repeat(np.arange(10.0), 150)
    statistics[:, 3] = tops
    groups = [group.members for group in pruning.bound_groups(statistics, statistics, bound, pruning.PRUNE_FLOOR, 200)]
    assert sorted(np.concatenate(groups).tolist()) == list(range(1500))
    for group in groups:
        assert all((tops == top).sum() == (tops[group] == top).sum() for top in np.unique(tops[group]))


def test_groups_are_split_as_the_stream_needs_them_and_keep_what_their_own_bound_keeps(shipped: OnnxRuntimeBackend, features) -> None:
    """The first group comes before the last is split off, and a second pass (a later stream) meets the same
    groups. Each group keeps exactly the rights its own bound keeps, though it bounds only those its parent
    kept; every pair left out scores no more than its group's and its right's left-out bound, below the floor."""
    fl, fr = features
    scores = shipped.head(fl, fr)
    pruner = pruning.GeometryPruner(shipped, fl, fr, group_size=64)
    split = pruner.each_group()
    first = next(split)
    after_first = pruner.col_left_out.copy()
    assert next(pruner.each_group()).members.tolist() == first.members.tolist()
    groups = list(split)
    assert (pruner.col_left_out > after_first).any()  # the nodes after the first group were split only now
    assert groups[0].members.tolist() != first.members.tolist() and len(groups) + 1 == len(pruner.groups)
    groups = [first, *groups]
    assert sorted(np.concatenate([g.members for g in groups]).tolist()) == list(range(1500))
    for group, upper in zip(groups, pruner.bounds([g.members for g in groups])):
        np.testing.assert_array_equal(group.cols, np.flatnonzero(upper >= pruner.floor))
        left_out = np.setdiff1d(np.arange(1500), group.cols)
        assert group.left_out >= upper[left_out].max(initial=-np.inf) and group.left_out < pruner.floor
        assert np.all(pruner.col_left_out[left_out] >= upper[left_out])
        assert np.all(scores[np.ix_(group.members, left_out)] <= np.minimum(group.left_out, pruner.col_left_out[left_out]))


@pytest.mark.parametrize("floor", [None, 5.0])
def test_pruned_restore_equals_dense_on_real_digits(shipped: OnnxRuntimeBackend, test_digits: np.ndarray, floor, monkeypatch) -> None:
    """With the default floor and with one so high that many rows fail the proof and are rescored."""
    if floor is not None:
        monkeypatch.setattr(pruning, "PRUNE_FLOOR", floor)
    left, right, key = make_halves(test_digits[2000:3500], seed=4)
    pruned = restore(shipped, left, right, key=key)
    dense = restore(shipped, left, right, key=key, method="dense")
    np.testing.assert_array_equal(pruned.right_for_left, dense.right_for_left)
    assert pruned.assignment.total_score == pytest.approx(dense.assignment.total_score, rel=1e-6)
    assert "geometry bounds" in pruned.assignment.proof
    assert pruned.assignment.scored_pairs < 0.6 * len(left) ** 2 + pruned.assignment.rescored_rows * len(left)
    if floor is not None:
        assert pruned.assignment.rescored_rows > 0


@pytest.mark.parametrize("solver", ["scipy", "matcher"])
def test_a_graph_without_a_perfect_matching_is_repaired_not_streamed_again(
    shipped: OnnxRuntimeBackend, test_digits: np.ndarray, solver: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """With k = 2 the candidate graph of 3,000 test pairs has no perfect matching; the best pairs across the deficit
    of a maximum matching join it instead of a stream at k = 4, and the proof still reaches the dense optimum.
    scipy's solver (small graphs) only says no, so Hopcroft-Karp finds the first maximum matching; the matcher's
    phases (from PHASES_FROM pairs) end at one themselves. Each repaired graph's maximum matching is the last one
    augmented, never searched for from scratch."""
    from amphisbaena.runtime import duals, repair

    monkeypatch.setattr(duals, "PHASES_FROM", duals.PHASES_FROM if solver == "scipy" else 0)
    left, right, key = make_halves(test_digits[:3000], seed=4)
    fl, fr = arm_features(shipped, "left", left), arm_features(shipped, "right", right)
    missing = len(repair.deficit(PairScorer.pruned(shipped, fl, fr).candidates(2)).unmatched)
    assert missing > 0  # the case under test
    hopcroft_karp, searches = repair.maximum_bipartite_matching, []
    monkeypatch.setattr(repair, "maximum_bipartite_matching", lambda *a, **kw: searches.append(1) or hopcroft_karp(*a, **kw))
    steps, best_across = [], repair._best_across
    monkeypatch.setattr(repair, "_best_across", lambda *a: steps.append(len(a[1])) or best_across(*a))
    repaired = restore(shipped, left, right, key=key, k=2)
    dense = restore(shipped, left, right, key=key, method="dense")
    assert repaired.assignment.k == 2 and repaired.assignment.repaired_rows == missing
    assert len(steps) >= 1 and len(searches) == (1 if solver == "scipy" else 0)
    np.testing.assert_array_equal(repaired.right_for_left, dense.right_for_left)


def test_unpruned_streaming_is_still_available(shipped: OnnxRuntimeBackend, features) -> None:
    fl, fr = features
    graph = PairScorer(shipped, fl, fr).candidates(k=8)
    assert graph.scored_pairs is None and len(graph.rows) >= 8 * len(fl)


def test_bucket_caps_hold_on_every_pair_and_rule_most_buckets_out(shipped: OnnxRuntimeBackend, features, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(pruning, "BUCKET_SIZE", 100)
    fl, fr = features
    scores = shipped.head(fl, fr).astype(np.float64)
    pruner = pruning.GeometryPruner(shipped, fl, fr)
    assert sorted(np.concatenate(pruner.buckets).tolist()) == list(range(1500)) and len(pruner.buckets) >= 15
    lefts = np.arange(1500)
    caps = np.stack([pruner.bucket_caps(lefts, number) for number in range(len(pruner.buckets))], axis=1)
    for number, members in enumerate(pruner.buckets):
        assert np.all(scores[:, members] <= caps[:, [number]]), f"cap of bucket {number} broken by {np.max(scores[:, members] - caps[:, [number]]):.4g}"
    assert np.mean(caps < pruning.PRUNE_FLOOR) > 0.5  # a left's geometry rules out most buckets whole


@pytest.mark.parametrize("bucket_size", [100, 5000])
def test_the_check_with_bucket_caps_finds_every_near_pair(shipped: OnnxRuntimeBackend, features, bucket_size: int, monkeypatch: pytest.MonkeyPatch) -> None:
    """Against every pair: a small candidate graph (k = 4) leaves many pairs to the check, and the capped check
    must find each one within the margin of the duals, as the uncapped one does, while scoring fewer."""
    from amphisbaena.runtime import proof
    from amphisbaena.runtime.duals import solve_sparse

    monkeypatch.setattr(pruning, "BUCKET_SIZE", bucket_size)
    monkeypatch.setattr(proof, "BLOCK_ROWS", 16)
    monkeypatch.setattr(proof, "VIOLATIONS_KEPT", 10**9)  # every near pair, even of rows that break the duals
    fl, fr = features
    scorer = PairScorer.pruned(shipped, fl, fr)
    graph = scorer.candidates(4)
    solution = solve_sparse(graph, None)
    assert solution is not None
    scores = shipped.head(fl, fr).astype(np.float64)
    margin, rounding = 1.0, 1e-4  # the head's float32 sums differ slightly between tile shapes
    slack = solution.row_potential[:, None] + solution.col_potential[None, :] - margin - scores
    slack[graph.rows, graph.cols] = np.inf
    capped = proof.check(scorer.columns, graph, solution, margin, threaded=True, caps=scorer.pruner)
    plain = proof.check(scorer.columns, graph, solution, margin, threaded=True)
    for checked in (capped, plain):
        found = np.zeros_like(slack, dtype=bool)
        found[checked.rows, checked.cols] = True
        assert found[slack < -rounding].all() and (slack[found] < rounding).all()
        np.testing.assert_allclose(checked.scores, scores[checked.rows, checked.cols], atol=rounding)
    assert (slack < 0).sum() > 20 and capped.violated == plain.violated
    # one bucket of all 1,500 rights caps little; fifteen rule most of every row's loose pairs out
    assert capped.scored < plain.scored / 2 if len(scorer.pruner.buckets) > 1 else capped.scored <= plain.scored
