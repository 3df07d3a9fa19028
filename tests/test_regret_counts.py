"""The summary says how each regret was found, and a spent search budget leaves proven lower bounds."""

from __future__ import annotations

import numpy as np
import pytest

from amphisbaena.runtime import confidence
from amphisbaena.runtime.restore import restore


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
