"""The repair of a graph without a perfect matching: the deficit of a maximum matching (its unmatched rows, the
Hall set S and the columns R), and the best pairs across S x R added until a maximum matching is perfect."""

from __future__ import annotations

from types import SimpleNamespace

import numpy as np
import pytest

from amphisbaena.runtime import repair
from amphisbaena.runtime.graph import CandidateGraph
from amphisbaena.runtime.matcher import optimal_matching
from amphisbaena.shapes import TilePlan
from tests.test_matcher import sparse_graph


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


def graph_of(rows: np.ndarray, cols: np.ndarray, scores: np.ndarray, n: int, scored: int | None = None) -> CandidateGraph:
    return CandidateGraph(rows, cols, scores, np.full(n, -np.inf), np.full(n, -np.inf), scored)


class DenseScorer:
    """A scorer over a full (N, N) matrix: what the repair needs of `scorer.PairScorer`."""

    def __init__(self, matrix: np.ndarray, streamed: CandidateGraph | None = None) -> None:
        self.matrix = matrix.astype(np.float32)
        self.backend = SimpleNamespace(any_thread=True)
        self.size = matrix.shape
        self.tiles = TilePlan(rows=64, cols=128)  # small: each block of items meets several slices of the other side
        self.streamed, self.streams = streamed, []
        self.scored_blocks = []

    def columns(self, lefts: np.ndarray, cols: np.ndarray, beside_host: bool = False) -> np.ndarray:
        self.scored_blocks.append((lefts, cols))
        return self.matrix[np.ix_(lefts, cols)]

    def candidates(self, k: int) -> CandidateGraph:
        self.streams.append(k)
        return self.streamed


def has_perfect_matching(graph: CandidateGraph) -> bool:
    return len(repair.deficit(graph).unmatched) == 0


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_the_deficit_of_a_maximum_matching_is_a_hall_set_and_the_columns_no_edge_of_it_reaches(seed: int) -> None:
    n = 600
    rows, cols, scores = deficient_graph(n, seed)
    graph = graph_of(rows, cols, scores, n)
    right_for_left = optimal_matching(rows, cols, scores, n)[0]
    found = repair.deficit(graph, right_for_left)
    assert len(found.unmatched) >= 10
    np.testing.assert_array_equal(found.unmatched, np.flatnonzero(right_for_left < 0))
    assert np.isin(found.unmatched, found.hall_rows).all()
    neighbours = np.unique(cols[np.isin(rows, found.hall_rows)])
    assert len(neighbours) == len(found.hall_rows) - len(found.unmatched)  # Hall's condition fails by exactly |U|
    assert not (np.isin(rows, found.hall_rows) & np.isin(cols, found.reach_cols)).any()  # else a path would augment M
    open_cols = np.setdiff1d(np.arange(n), right_for_left)
    assert np.isin(open_cols, found.reach_cols).all()
    assert len(repair.deficit(graph).unmatched) == len(found.unmatched)  # Hopcroft-Karp's maximum matching: as large


@pytest.mark.parametrize("seed", [0, 1, 2])
@pytest.mark.parametrize("start", ["empty", "maximum less 200 rows", "greedy"])
def test_a_matching_augments_to_a_maximum_one_without_unmatching_a_row(seed: int, start: str) -> None:
    n = 600
    rows, cols, scores = deficient_graph(n, seed)
    graph = graph_of(rows, cols, scores, n)
    size = n - len(repair.deficit(graph).unmatched)  # Hopcroft-Karp's
    matching = np.full(n, -1)
    if start == "maximum less 200 rows":
        matching = optimal_matching(rows, cols, scores, n)[0].copy()
        matching[np.random.default_rng(seed).choice(n, 200, replace=False)] = -1
    elif start == "greedy":
        taken = set()
        for row, col in zip(rows, cols):
            if matching[row] < 0 and col not in taken:
                matching[row] = col
                taken.add(col)
    found = repair.deficit(graph, matching)
    matched = found.right_for_left >= 0
    assert matched.sum() == size and len(found.unmatched) == n - size
    assert len(np.unique(found.right_for_left[matched])) == size  # no column twice
    edges = set(zip(rows.tolist(), cols.tolist()))
    assert all((row, col) in edges for row, col in zip(np.flatnonzero(matched).tolist(), found.right_for_left[matched].tolist()))
    assert matched[matching >= 0].all()  # an augmenting path never leaves a matched row unmatched
    neighbours = np.unique(cols[np.isin(rows, found.hall_rows)])
    assert len(neighbours) == len(found.hall_rows) - len(found.unmatched)


@pytest.mark.parametrize("seed", [0, 1, 2])
@pytest.mark.parametrize("partners", [1, 3, 256])
def test_the_repair_adds_exact_pairs_across_each_deficit_until_a_matching_is_perfect(
    seed: int, partners: int, monkeypatch: pytest.MonkeyPatch
) -> None:
    n = 600
    rows, cols, scores = deficient_graph(n, seed)
    matrix = np.random.default_rng(seed + 20).normal(size=(n, n)) * 4 - 3
    matrix[rows, cols] = scores
    graph = graph_of(rows, cols, matrix[rows, cols].astype(np.float32).astype(np.float64), n, scored=n * n)
    first = repair.deficit(graph)
    scorer = DenseScorer(matrix)
    monkeypatch.setattr(repair, "REPAIR_PARTNERS", partners)
    monkeypatch.setattr(repair, "REPAIR_CELLS", 64 * 8)  # slices as narrow as PARTNERS allows
    steps, best_across = [], repair._best_across
    monkeypatch.setattr(repair, "_best_across", lambda *a: steps.append(best_across(*a)) or steps[-1])
    repaired = repair.with_a_perfect_matching(scorer, graph, 4)
    assert has_perfect_matching(repaired.graph) and repaired.k == 4 and repaired.rows == len(first.unmatched)
    assert len(steps) >= 1 and scorer.streams == []
    added = slice(len(rows), None)
    new_rows, new_cols = repaired.graph.rows[added], repaired.graph.cols[added]
    np.testing.assert_array_equal(new_rows, np.concatenate([step[0] for step in steps]))
    assert len(np.unique(repaired.graph.rows * n + repaired.graph.cols)) == len(repaired.graph.rows)  # no pair twice
    np.testing.assert_array_equal(repaired.graph.scores[added], scorer.matrix[new_rows, new_cols])
    np.testing.assert_array_equal(repaired.graph.row_bound, graph.row_bound)
    # the first step: pairs of its S x R only, each item of the smaller side with its best PARTNERS there
    step_rows, step_cols, step_scores, scored = steps[0]
    assert scored == len(first.hall_rows) * len(first.reach_cols)
    assert np.isin(step_rows, first.hall_rows).all() and np.isin(step_cols, first.reach_cols).all()
    by_rows = len(first.hall_rows) <= len(first.reach_cols)
    items, others = (first.hall_rows, first.reach_cols) if by_rows else (first.reach_cols, first.hall_rows)
    item_of_pair = step_rows if by_rows else step_cols
    assert (np.bincount(item_of_pair, minlength=n)[items] == min(partners, len(others))).all()
    for item in items[:5]:
        row_scores = scorer.matrix[item, others] if by_rows else scorer.matrix[others, item]
        expected = np.sort(row_scores)[::-1][:partners]
        np.testing.assert_array_equal(np.sort(step_scores[item_of_pair == item])[::-1], expected)


def test_a_deficit_dearer_than_the_stream_streams_again_at_twice_k() -> None:
    n = 600
    rows, cols, scores = deficient_graph(n, 0)
    whole = graph_of(*np.divmod(np.arange(n * n), n), np.zeros(n * n), n)
    scorer = DenseScorer(np.zeros((n, n)), streamed=whole)
    repaired = repair.with_a_perfect_matching(scorer, graph_of(rows, cols, scores, n, scored=1_000), 4)
    assert scorer.streams == [8] and scorer.scored_blocks == []
    assert repaired.graph is whole and repaired.k == 8 and repaired.rows == 0
