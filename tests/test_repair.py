"""The repair of a graph without a perfect matching: the matcher's maximum matching plus the best assignment of the
pairs it leaves is the optimum of the repaired graph, with duals that certify it, and no re-solve."""

from __future__ import annotations

import numpy as np
import pytest

from amphisbaena.runtime import repair
from amphisbaena.runtime.graph import CandidateGraph, SparseSolution
from amphisbaena.runtime.matcher import optimal_matching
from tests.test_matcher import assert_certified, dense_optimum, sparse_graph


def deficient_graph(n: int, seed: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """A random graph with a perfect matching, then holes: rows 0-29 keep only their edges into columns 0-19, and
    columns 50-59 keep only their edges from rows 50-54. At least 10 rows stay unmatched."""
    rows, cols, scores = sparse_graph(n, 8, seed)
    rng = np.random.default_rng(seed)
    rows = np.concatenate([rows, np.repeat(np.arange(30), 3)])
    cols = np.concatenate([cols, rng.integers(0, 20, 90)])
    scores = np.concatenate([scores, rng.normal(size=90) * 4 + 2])
    first = np.unique(rows * n + cols, return_index=True)[1]
    rows, cols, scores = rows[first], cols[first], scores[first]
    crowd = rows < 30
    keep = (~crowd | (cols < 20)) & (~((cols >= 50) & (cols < 60)) | ((rows >= 50) & (rows < 55)))
    return rows[keep], cols[keep], scores[keep]


@pytest.mark.parametrize("seed", [0, 1, 2])
@pytest.mark.parametrize("block_offset", [6.0, 0.0, -12.0])
def test_the_maximum_matching_completed_by_the_block_is_the_optimum_of_the_repaired_graph(
    seed: int, block_offset: float, monkeypatch: pytest.MonkeyPatch
) -> None:
    n = 600
    rows, cols, scores = deficient_graph(n, seed)
    right_for_left, u, w = optimal_matching(rows, cols, scores, n)
    unmatched_rows, open_cols = repair.unmatched(CandidateGraph(rows, cols, scores, np.full(n, -np.inf), np.full(n, -np.inf)), SparseSolution(right_for_left, u, w))
    assert len(unmatched_rows) >= 10
    block = np.random.default_rng(seed + 10).normal(size=(len(unmatched_rows), len(open_cols))) * 4 + block_offset
    original = CandidateGraph(rows, cols, scores, np.full(n, -np.inf), np.full(n, -np.inf))
    graph = original.with_edges(np.repeat(unmatched_rows, len(open_cols)), np.tile(open_cols, len(unmatched_rows)), block.ravel(), block.size)
    reaches = []
    raise_reach = repair._raise_reach
    monkeypatch.setattr(repair, "_raise_reach", lambda *a: reaches.append(1) or raise_reach(*a))
    solution = repair.completed(original, graph, SparseSolution(right_for_left, u, w), unmatched_rows, open_cols, block)
    assert solution is not None and solution.perfect
    np.testing.assert_array_equal(solution.right_for_left[right_for_left >= 0], right_for_left[right_for_left >= 0])
    found = (solution.right_for_left, solution.row_potential, solution.col_potential)
    total = assert_certified(graph.rows, graph.cols, graph.scores, n, found)
    assert total == pytest.approx(dense_optimum(graph.rows, graph.cols, graph.scores, n), abs=1e-6)
    assert len(reaches) == (seed != 1)  # seeds 0 and 2 need `_raise_reach` (every block offset), seed 1 does not
