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
