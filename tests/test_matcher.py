"""The sparse matcher: exact optimum against scipy's dense solver, its certificate, re-solves, and graphs without a perfect matching."""

from __future__ import annotations

import numpy as np
import pytest

from amphisbaena.runtime import matcher
from amphisbaena.runtime.assignment import solve_dense
from amphisbaena.runtime.auction import auction_prices
from amphisbaena.runtime.matcher import optimal_matching

MISSING = -1e9


def sparse_graph(n: int, degree: int, seed: int, integer: bool = False) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """A random graph with a perfect matching: a hidden permutation plus DEGREE random edges per row,
    scores near the hidden pairs higher (as the model's are); INTEGER scores make many ties."""
    rng = np.random.default_rng(seed)
    hidden = rng.permutation(n)
    rows = np.concatenate([np.arange(n), np.repeat(np.arange(n), degree)])
    cols = np.concatenate([hidden, rng.integers(0, n, n * degree)])
    keys = np.unique(rows * n + cols)
    rows, cols = np.divmod(keys, n)
    scores = rng.normal(size=len(rows)) * 4 + np.where(hidden[rows] == cols, 3.0, 0.0)
    return rows, cols, (np.round(scores) if integer else scores)


def dense_matrix(rows: np.ndarray, cols: np.ndarray, scores: np.ndarray, n: int) -> np.ndarray:
    """(N, N) SCORES on the edges, MISSING elsewhere."""
    matrix = np.full((n, n), MISSING)
    matrix[rows, cols] = scores
    return matrix


def dense_optimum(rows: np.ndarray, cols: np.ndarray, scores: np.ndarray, n: int) -> float:
    matrix = dense_matrix(rows, cols, scores, n)
    return float(matrix[np.arange(n), solve_dense(matrix)].sum())


def assert_certified(rows: np.ndarray, cols: np.ndarray, scores: np.ndarray, n: int, found: tuple) -> float:
    """FOUND is a perfect matching on the edges with feasible duals tight on it; returns its total."""
    right_for_left, u, w = found
    assert sorted(right_for_left.tolist()) == list(range(n))
    lookup = dict(zip((rows * n + cols).tolist(), scores.tolist(), strict=True))
    chosen = np.array([lookup[i * n + j] for i, j in enumerate(right_for_left.tolist())])
    reduced = u[rows] + w[cols] - scores
    assert reduced.min() >= -1e-9
    assert np.allclose(u + w[right_for_left], chosen, atol=1e-9)
    return float(chosen.sum())


@pytest.fixture(params=["tight matchings only", "paths from the first phase"])
def tail_rows(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> int:
    """Every phase takes a maximum matching of the tight edges, or every phase after the first augments along
    its shortest paths (`matcher.TAIL_ROWS`)."""
    rows = 0 if request.param == "tight matchings only" else 10**9
    monkeypatch.setattr(matcher, "TAIL_ROWS", rows)
    return rows


@pytest.mark.parametrize("integer", [False, True])
@pytest.mark.parametrize(("n", "degree", "seed"), [(1, 1, 0), (2, 1, 1), (7, 2, 2), (60, 3, 3), (300, 8, 4), (2_000, 6, 5)])
def test_matcher_finds_the_dense_optimum_and_certifies_it(n: int, degree: int, seed: int, integer: bool, tail_rows: int) -> None:
    rows, cols, scores = sparse_graph(n, degree, seed, integer)
    found = optimal_matching(rows, cols, scores, n)
    assert found is not None
    total = assert_certified(rows, cols, scores, n, found)
    assert total == pytest.approx(dense_optimum(rows, cols, scores, n), abs=1e-6)


@pytest.mark.parametrize("integer", [False, True])
@pytest.mark.parametrize("tail", [0, 30])
def test_the_working_sets_change_nothing_however_near_they_reach(
    integer: bool, tail: int, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Phases search a working set of the edges (`matcher._Edges.within`). However little it reaches, and so however
    often it is taken anew, the matching and both duals are the very ones the whole graph gives, bit for bit: a
    search never crosses an edge the working set left out. Also with a graph that has no perfect matching.
    With LIMITS_AHEAD inf no working set is taken; with 1 and no WORKING_SHARE, one is taken nearly every phase.
    TAIL: `matcher.TAIL_ROWS`, so that both kinds of search run on working sets: those of the tail follow a finite
    limit only once an earlier phase has set one."""
    monkeypatch.setattr(matcher, "TAIL_ROWS", tail)
    whole = sparse_graph(1_500, 6, 10, integer)
    hole = ~np.isin(whole[1], [0, 1]) | np.isin(whole[0], [3])  # columns 0-1 reachable from row 3 only
    taken: list[int] = []
    within = matcher._Edges.within
    monkeypatch.setattr(
        matcher._Edges, "within", lambda self, u, w, reach: taken.append(1) or within(self, u, w, reach)
    )
    for rows, cols, scores in (whole, tuple(part[hole] for part in whole)):
        found = {}
        for ahead, share in ((1.0, 0.0), (3.0, 0.04), (np.inf, 0.04)):
            monkeypatch.setattr(matcher, "LIMITS_AHEAD", ahead)
            monkeypatch.setattr(matcher, "WORKING_SHARE", share)
            taken.clear()
            found[ahead] = optimal_matching(rows, cols, scores, 1_500)
            assert found[ahead] is not None
            assert len(taken) >= {1.0: 3, 3.0: 1, np.inf: 0}[ahead]
        for ahead in (1.0, 3.0):
            for got, on_the_whole_graph in zip(found[ahead], found[np.inf], strict=True):
                np.testing.assert_array_equal(got, on_the_whole_graph)


def test_matcher_takes_edges_in_any_order() -> None:
    rows, cols, scores = sparse_graph(500, 5, 6)
    order = np.random.default_rng(0).permutation(len(rows))
    in_order = optimal_matching(rows, cols, scores, 500)
    shuffled = optimal_matching(rows[order], cols[order], scores[order], 500)
    assert in_order is not None and shuffled is not None
    np.testing.assert_array_equal(in_order[0], shuffled[0])


def test_a_resolve_from_earlier_duals_finds_the_optimum_of_the_larger_graph(tail_rows: int) -> None:
    n = 800
    rows, cols, scores = sparse_graph(n, 6, 7)
    rng = np.random.default_rng(8)
    some_matching = solve_dense(dense_matrix(rows, cols, np.zeros(len(rows)), n))  # a perfect matching on the edges
    first = (rng.random(len(rows)) < 0.6) | (some_matching[rows] == cols)  # a subgraph with a perfect matching
    base = optimal_matching(rows[first], cols[first], scores[first], n)
    assert base is not None
    grown = optimal_matching(rows, cols, scores, n, start_col_potential=base[2])
    assert grown is not None
    total = assert_certified(rows, cols, scores, n, grown)
    assert total == pytest.approx(dense_optimum(rows, cols, scores, n), abs=1e-6)
    assert total >= assert_certified(rows[first], cols[first], scores[first], n, base) - 1e-9


def test_without_a_perfect_matching_the_matching_is_maximum_with_feasible_duals(tail_rows: int) -> None:
    """Rows 0 and 1 both have only column 0; a Hall violation the first phases cannot see (rows 0-2 reach only
    columns 0-1); and a random graph with a hole. Each gives a maximum matching (as large as Hopcroft-Karp's)
    with feasible duals, tight on it; a row with no edge at all gives None."""
    from scipy.sparse import csr_matrix
    from scipy.sparse.csgraph import maximum_bipartite_matching

    rows, cols, scores = sparse_graph(400, 3, 9)
    hole = ~np.isin(cols, [0, 1, 2]) | np.isin(rows, [5])  # columns 0-2 reachable from row 5 only
    cases = [
        (np.array([0, 1, 2, 2]), np.array([0, 0, 1, 2]), np.array([1.0, 2.0, 3.0, 4.0]), 3),
        (np.array([0, 0, 1, 1, 2, 2, 3]), np.array([0, 1, 0, 1, 0, 1, 3]), np.arange(7.0), 4),
        (rows[hole], cols[hole], scores[hole], 400),
    ]
    for rows, cols, scores, n in cases:
        right_for_left, u, w = optimal_matching(rows, cols, scores, n)
        size = (maximum_bipartite_matching(csr_matrix((np.ones(len(rows)), (rows, cols)), shape=(n, n))) >= 0).sum()
        matched = np.flatnonzero(right_for_left >= 0)
        assert len(matched) == size < n and len(np.unique(right_for_left[matched])) == size
        edge = dict(zip((rows * n + cols).tolist(), scores.tolist(), strict=True))
        assert all(np.isclose(u[i] + w[right_for_left[i]], edge[i * n + right_for_left[i]]) for i in matched)
        assert (u[rows] + w[cols] - scores).min() >= -1e-9
    assert optimal_matching(np.array([0, 1]), np.array([0, 1]), np.array([1.0, 1.0]), 3) is None  # row 2 has no edge


def test_an_empty_graph_is_an_empty_matching() -> None:
    found = optimal_matching(np.zeros(0, np.int64), np.zeros(0, np.int64), np.zeros(0), 0)
    assert found is not None and len(found[0]) == 0


def test_auction_prices_are_finite_and_rank_the_contested_column_highest() -> None:
    # Three rows (edges 0-1, 2-3, 4-6) all prefer column 0; the auction must price it above the others.
    cols = np.array([0, 1, 0, 2, 0, 1, 2])
    scores = np.array([10.0, 1.0, 10.0, 2.0, 10.0, 0.5, 0.1])
    indptr = np.array([0, 2, 4, 7])
    price = auction_prices(indptr, cols, scores, 3)
    assert np.isfinite(price).all()
    assert price[0] > price[1] and price[0] > price[2]


@pytest.mark.parametrize("seed", range(3))
def test_auction_prices_do_not_depend_on_the_spans_rows_are_worked_out_in(seed: int, monkeypatch: pytest.MonkeyPatch) -> None:
    """Bids depend only on the prices of their round, so working them out a few rows at a time changes nothing."""
    from amphisbaena.runtime import auction

    rng = np.random.default_rng(seed)
    n = 300
    rows = np.concatenate([np.arange(n), rng.integers(0, n, 4000)])
    cols = np.concatenate([rng.permutation(n), rng.integers(0, 40, 2000), rng.integers(0, n, 2000)])  # a crowded corner
    keys = np.unique(rows * n + cols)
    rows, cols = keys // n, keys % n
    scores = rng.normal(size=len(keys))
    indptr = np.concatenate([[0], np.cumsum(np.bincount(rows, minlength=n))])
    whole = auction.auction_prices(indptr, cols, scores, n)
    monkeypatch.setattr(auction, "CHUNK_EDGES", 17)
    np.testing.assert_array_equal(auction.auction_prices(indptr, cols, scores, n), whole)
