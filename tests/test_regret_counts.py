"""The regret searches: a budget that grows with the matches, each search stopped at its cheapest two-pair cycle,
the summary's count of how each regret was found, and proven lower bounds where the budget runs out."""

from __future__ import annotations

import numpy as np
import pytest

from amphisbaena.runtime import confidence
from amphisbaena.runtime.restore import restore


def test_budget_grows_with_the_matches_beyond_the_reference_size() -> None:
    assert confidence.search_budget(500) == confidence.search_budget(10_000) == confidence.SEARCH_CELLS
    assert confidence.search_budget(60_000) == 6 * confidence.SEARCH_CELLS
    assert confidence.search_budget(1_000_000) == 100 * confidence.SEARCH_CELLS


def test_two_pair_cycles_bound_the_regret_from_above_and_are_found_by_the_search() -> None:
    # lefts 0 and 1 can swap their rights at slacks 0.25 + 0.5; left 2 has no partner to swap with
    tails, heads, slack = np.array([0, 1, 2]), np.array([1, 0, 0]), np.array([0.25, 0.5, 0.1])
    np.testing.assert_array_equal(confidence._two_pair_cycles(tails, heads, slack, 3), [0.75, 0.75, np.inf])


def test_counts_cover_every_match_and_a_spent_budget_leaves_lower_bounds(shipped, test_digits: np.ndarray, monkeypatch: pytest.MonkeyPatch) -> None:
    from amphisbaena.halves import make_halves

    left, right, _ = make_halves(test_digits[:1500], seed=3)
    full = restore(shipped, left, right)
    counts = full.assignment.regrets
    assert sum(counts.values()) == 1500 and counts["bound_only"] == 0 and counts["searched"] > 0
    monkeypatch.setattr(confidence, "SEARCH_CELLS", 300)  # room for a few searches only
    monkeypatch.setattr(confidence, "BATCH_CELLS", 100)
    starved = restore(shipped, left, right)
    np.testing.assert_array_equal(starved.right_for_left, full.right_for_left)
    spent = starved.assignment.regrets
    assert spent["bound_only"] > 0 and spent["searched"] < counts["searched"] and sum(spent.values()) == 1500
    assert (starved.confidence <= full.confidence + 1e-9).all() and (starved.confidence < full.confidence - 1e-6).any()
    assert starved.summary()["assignment"]["regrets"] == spent


def test_batches_hold_at_most_batch_sources_and_cover_every_source_in_order(monkeypatch: pytest.MonkeyPatch) -> None:
    component = np.repeat([0, 1, 2], [700, 20, 5])  # one large component, then two small ones, numbered in order
    ends = np.array([0, 700, 720, 725])
    sources = np.r_[np.arange(0, 700, 2), 700, 703, 720]
    monkeypatch.setattr(confidence, "BATCH_SOURCES", 64)
    batches = list(confidence._batches(sources, component, ends, cells=1 << 30, budget=1 << 40))
    assert all(len(batch) <= 64 for batch, _, _ in batches) and len(batches) == 6  # 350 + 3 sources: the small components join the last
    np.testing.assert_array_equal(np.concatenate([batch for batch, _, _ in batches]), sources)
    for batch, low, high in batches:  # every batch's lefts lie in its range
        assert (low <= batch).all() and (batch < high).all()


def test_smaller_batches_find_the_same_regrets(shipped, test_digits: np.ndarray, monkeypatch: pytest.MonkeyPatch) -> None:
    from amphisbaena.halves import make_halves

    left, right, _ = make_halves(test_digits[:1500], seed=4)
    whole = restore(shipped, left, right)
    monkeypatch.setattr(confidence, "BATCH_SOURCES", 3)
    split = restore(shipped, left, right)
    assert whole.assignment.regrets == split.assignment.regrets and whole.assignment.regrets["searched"] > 30
    np.testing.assert_array_equal(split.confidence, whole.confidence)
