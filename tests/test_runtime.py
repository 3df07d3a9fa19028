"""Runtime pieces with a numpy backend: tiling, streaming top-k, and sparse == dense with a proof."""

from __future__ import annotations

import numpy as np
import pytest
from conftest import DeviceTopKBackend, NumpyBackend, random_halves

from amphisbaena.runtime import candidates, duals, overlap, proof, topk
from amphisbaena.runtime import graph as graphs
from amphisbaena.runtime.features import arm_features, both_arms
from amphisbaena.runtime.restore import restore
from amphisbaena.runtime.scorer import PairScorer, TilePlan


def test_tiled_scores_equal_one_shot() -> None:
    backend = NumpyBackend()
    left, right = random_halves(300, 1)
    fl, fr = arm_features(backend, "left", left, batch=64), arm_features(backend, "right", right)
    tiled = np.concatenate([strip.copy() for _, strip in PairScorer(backend, fl, fr, tiles=TilePlan(37, 50)).strips()])
    np.testing.assert_allclose(tiled, backend.head(fl, fr), rtol=1e-5, atol=1e-5)


def test_stream_candidates_are_the_true_top_k() -> None:
    backend = NumpyBackend(seed=2)
    left, right = random_halves(257, 3)
    fl, fr = arm_features(backend, "left", left), arm_features(backend, "right", right)
    full = backend.head(fl, fr)
    graph = PairScorer(backend, fl, fr, tiles=TilePlan(40, 64, 40, 64)).candidates(k=5)
    edges = set(zip(graph.rows.tolist(), graph.cols.tolist()))
    for i in range(257):
        assert {(i, j) for j in np.argsort(-full[i])[:5]} <= edges
        assert graph.row_bound[i] == pytest.approx(np.sort(full[i])[-6], abs=1e-5)  # tiles round differently in fp32
    for j in range(257):
        assert {(i, j) for i in np.argsort(-full[:, j])[:5]} <= edges
        assert graph.col_bound[j] == pytest.approx(np.sort(full[:, j])[-6], abs=1e-5)
    np.testing.assert_allclose(graph.scores, full[graph.rows, graph.cols], rtol=1e-6, atol=1e-5)


@pytest.mark.parametrize("seed", range(12))
@pytest.mark.parametrize("k", [1, 3, 16])
def test_sparse_assignment_equals_dense_on_random_instances(seed: int, k: int) -> None:
    n = [50, 200, 333][seed % 3]
    backend = NumpyBackend(seed=seed, sharpness=[0.2, 1.0, 5.0][seed % 3])
    left, right = random_halves(n, 100 + seed)
    sparse = restore(backend, left, right, method="sparse", k=k)
    dense = restore(backend, left, right, method="dense")
    np.testing.assert_array_equal(sparse.right_for_left, dense.right_for_left)
    # Same pairs; the totals may differ in the last fp32 bits, as the two paths score through different tile shapes.
    assert sparse.assignment.total_score == pytest.approx(dense.assignment.total_score, rel=1e-6)
    if sparse.assignment.method == "sparse":
        assert "dual potentials" in sparse.assignment.proof


def test_potentials_certify_the_matching() -> None:
    """The duals the solver reports satisfy u_i + w_j >= s_ij everywhere, with equality on the matching."""
    backend = NumpyBackend(seed=9)
    left, right = random_halves(120, 9)
    fl, fr = arm_features(backend, "left", left), arm_features(backend, "right", right)
    full = backend.head(fl, fr).astype(np.float64)
    graph = PairScorer(backend, fl, fr).candidates(k=120)
    solution = duals.solve_sparse(graph)
    slack = solution.row_potential[:, None] + solution.col_potential[None, :] - full
    assert slack.min() > -1e-4
    assert np.abs(slack[np.arange(120), solution.right_for_left]).max() < 1e-4


@pytest.mark.parametrize("seed", range(6))
def test_re_solve_from_the_previous_solution_is_exact(seed: int) -> None:
    """Edges added after a solve (as the rescoring adds them) are re-solved from the previous duals,
    on the edges within the total violation of them: the same optimum as a solve from scratch, and
    duals that certify it on every edge."""
    rng = np.random.default_rng(seed)
    n = 150
    full = rng.normal(size=(n, n)) * [0.3, 1.0, 3.0][seed % 3]
    keep = full >= np.sort(full, axis=1)[:, -4:-3]  # each row's best four
    rows, cols = np.nonzero(keep | (full >= np.sort(full, axis=0)[-4:-3, :]))
    nothing = np.full(n, -np.inf)
    graph = graphs.CandidateGraph(rows, cols, full[rows, cols], nothing, nothing)
    previous = duals.solve_sparse(graph)
    slack = previous.row_potential[:, None] + previous.col_potential[None, :] - full
    absent = np.ones((n, n), dtype=bool)
    absent[rows, cols] = False
    violating = np.argwhere(absent & (slack < -1e-9))
    assert len(violating), "the instance must have excluded pairs the duals do not cover"
    added = violating[rng.permutation(len(violating))[: 1 + seed * 3]]
    rows, cols = np.concatenate([rows, added[:, 0]]), np.concatenate([cols, added[:, 1]])
    bigger = graphs.CandidateGraph(rows, cols, full[rows, cols], nothing, nothing)
    warm, cold = duals.solve_sparse(bigger, previous), duals.solve_sparse(bigger)
    total = lambda solution: full[np.arange(n), solution.right_for_left].sum()
    assert total(warm) == pytest.approx(total(cold), abs=1e-9)
    assert total(warm) > total(previous) - 1e-9
    edge_slack = warm.row_potential[rows] + warm.col_potential[cols] - full[rows, cols]
    assert edge_slack.min() > -1e-9
    assert np.abs(edge_slack[warm.right_for_left[rows] == cols]).max() < 1e-9


@pytest.mark.parametrize("seed", range(4))
def test_duals_from_a_small_core_still_certify_every_edge(seed: int) -> None:
    """Duals found on the core first are corrected on the whole graph: feasible on every edge and
    tight on the matching, however few edges the core holds."""
    rng = np.random.default_rng(seed)
    n = 200
    full = rng.normal(size=(n, n)) * [0.3, 3.0][seed % 2]
    keep = (full >= np.sort(full, axis=1)[:, -12:-11]) | (full >= np.sort(full, axis=0)[-12:-11, :])
    rows, cols = np.nonzero(keep)
    nothing = np.full(n, -np.inf)
    core = rng.random(len(rows)) < [0.05, 0.3][seed // 2]
    graph = graphs.CandidateGraph(rows, cols, full[rows, cols], nothing, nothing, core=core)
    solution = duals.solve_sparse(graph)
    edge_slack = solution.row_potential[rows] + solution.col_potential[cols] - full[rows, cols]
    assert edge_slack.min() > -1e-9
    assert np.abs(edge_slack[solution.right_for_left[rows] == cols]).max() < 1e-9


def test_graph_core_holds_each_rows_and_columns_best(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(candidates, "CORE_K", 3)
    backend = NumpyBackend(seed=6)
    left, right = random_halves(150, 6)
    fl, fr = arm_features(backend, "left", left), arm_features(backend, "right", right)
    full = backend.head(fl, fr)
    graph = PairScorer(backend, fl, fr).candidates(k=8)
    core = set(zip(graph.rows[graph.core].tolist(), graph.cols[graph.core].tolist()))
    best_cols, best_rows = np.argsort(-full, axis=1)[:, :3], np.argsort(-full, axis=0)[:3, :]
    expected = {(i, int(j)) for i in range(150) for j in best_cols[i]} | {(int(i), j) for j in range(150) for i in best_rows[:, j]}
    assert core == expected
    assert 0 < graph.core.mean() < 0.6


def test_rounds_with_added_edges_still_equal_dense() -> None:
    """k = 1 leaves most true partners out: rescoring adds edges and the later rounds start from the
    earlier solution; the result is still the dense optimum."""
    backend = NumpyBackend(seed=3, sharpness=0.5)
    left, right = random_halves(300, 3)
    sparse = restore(backend, left, right, method="sparse", k=1)
    dense = restore(backend, left, right, method="dense")
    assert sparse.assignment.method == "sparse" and sparse.assignment.added_edges > 0 and sparse.assignment.rounds > 1
    np.testing.assert_array_equal(sparse.right_for_left, dense.right_for_left)


@pytest.mark.parametrize("warm", [True, False])
def test_the_matcher_phases_solve_every_round_as_scipy_does(warm: bool, monkeypatch: pytest.MonkeyPatch) -> None:
    """Large restores match in the matcher's phases, re-solves starting from the last round's duals (WARM)
    or afresh; after a repair, the repaired graph is solved afresh: forced onto a small restore with added edges,
    the result equals scipy's path."""
    backend = NumpyBackend(seed=3, sharpness=0.5)
    left, right = random_halves(300, 3)
    scipy_path = restore(backend, left, right, method="sparse", k=1)
    monkeypatch.setattr(duals, "PHASES_FROM", 0)
    monkeypatch.setattr(duals, "WARM_START_SHARE", 1.0 if warm else 0.0)
    calls = []  # per solve: (started warm, whether the solve before it ended at a perfect matching)
    real = duals.optimal_matching

    def recording(*args):
        found = real(*args)
        calls.append((args[4] is not None, found is not None and bool((found[0] >= 0).all())))
        return found

    monkeypatch.setattr(duals, "optimal_matching", recording)
    phases_path = restore(backend, left, right, method="sparse", k=1)
    warm_after_perfect = [started_warm for (started_warm, _), (_, before) in zip(calls[1:], calls) if before]
    assert calls[:2] == [(False, False), (False, True)]  # no perfect matching at k = 1: repaired, then solved afresh
    assert any(warm_after_perfect) == warm
    assert phases_path.assignment.rounds > 1 and scipy_path.assignment.rounds > 1
    np.testing.assert_array_equal(phases_path.right_for_left, scipy_path.right_for_left)
    np.testing.assert_allclose(phases_path.confidence, scipy_path.confidence, rtol=0, atol=1e-9)  # exact regrets, from other duals


@pytest.mark.parametrize("threaded", [True, False])
def test_one_ahead_keeps_order_and_passes_failures_on(threaded: bool) -> None:
    """Results come back in call order, each call runs once, and a failing call's exception reaches
    the consumer at that call's turn, after every result before it."""
    ran = []

    def call(number: int) -> int:
        ran.append(number)
        if number == 5:
            raise ValueError("call 5 failed")
        return number * number

    received = []
    with pytest.raises(ValueError, match="call 5 failed"):
        for value in overlap.one_ahead(((lambda number=number: call(number)) for number in range(8)), threaded):
            received.append(value)  # noqa: PERF402  (a list() would lose the values before the failure)
    assert received == [number * number for number in range(5)]
    assert sorted(ran) == list(range(len(ran))) and 6 <= len(ran) <= 7  # at most one call ahead of the failure
    assert list(overlap.one_ahead(((lambda number=number: number) for number in range(40)), threaded)) == list(range(40))


@pytest.mark.parametrize("dense_limit", [10_000, 100])
def test_past_the_dense_limit_the_rounds_go_on_until_the_proof_holds(dense_limit: int, monkeypatch: pytest.MonkeyPatch) -> None:
    """With one round allowed, a set that needs more falls back to the dense solver where it may hold the matrix;
    past DENSE_LIMIT there is no fallback, and the sparse rounds go on to the same optimum."""
    from amphisbaena.runtime import assignment

    monkeypatch.setattr(assignment, "MAX_ROUNDS", 1)
    monkeypatch.setattr(assignment, "DENSE_LIMIT", dense_limit)
    backend = NumpyBackend(seed=3, sharpness=0.5)
    left, right = random_halves(300, 3)
    restored = restore(backend, left, right, method="sparse", k=1)
    dense = restore(backend, left, right, method="dense")
    if dense_limit > 300:
        assert restored.assignment.method == "dense" and "unsettled after 1 rounds" in restored.assignment.fallback_reason
    else:
        assert restored.assignment.method == "sparse" and restored.assignment.rounds > 1
    np.testing.assert_array_equal(restored.right_for_left, dense.right_for_left)


def test_one_ahead_with_two_in_flight_keeps_order_and_bounds_the_calls_running() -> None:
    """Two calls in flight: results still come back in call order when later calls finish first, and
    never more than two calls run at once."""
    import threading
    import time

    running, most, lock = [0], [0], threading.Lock()

    def call(number: int) -> int:
        with lock:
            running[0] += 1
            most[0] = max(most[0], running[0])
        time.sleep(0.004 if number % 3 == 0 else 0.0005)  # every third call is slow: its successors overtake it
        with lock:
            running[0] -= 1
        return number

    calls = ((lambda number=number: call(number)) for number in range(30))
    assert list(overlap.one_ahead(calls, True, in_flight=2)) == list(range(30))
    assert most[0] == 2


def test_an_interrupted_one_ahead_waits_for_no_running_call_and_starts_no_other() -> None:
    """Ctrl-C while a call runs: closing the results waits neither for the running call nor the one
    queued behind it, and the calls not yet started never start."""
    import threading

    release, started = threading.Event(), []

    def call(number: int) -> int:
        started.append(number)
        if number == 1:
            release.wait()  # a long head call, still running at the interrupt
        return number

    results = overlap.one_ahead(((lambda number=number: call(number)) for number in range(6)), True, in_flight=2)
    assert next(results) == 0
    closer = threading.Thread(target=results.close)
    closer.start()
    closer.join(timeout=10)
    finished_before_release = not closer.is_alive()
    release.set()
    closer.join()
    assert finished_before_release
    assert set(started) <= {0, 1, 2}


def test_one_ahead_wakes_for_signals_while_a_call_runs(monkeypatch: pytest.MonkeyPatch) -> None:
    """The wait for a result comes back to Python code in slices, where a pending Ctrl-C is raised."""
    import threading

    release, waits = threading.Event(), []
    monkeypatch.setattr(overlap, "WAKE_SECONDS", 0.01)
    real_result = overlap.Future.result

    def counting_result(self, timeout=None):
        waits.append(timeout)
        if len(waits) == 3:
            release.set()
        return real_result(self, timeout)

    monkeypatch.setattr(overlap.Future, "result", counting_result)
    assert list(overlap.one_ahead([lambda: release.wait() and 7], True)) == [7]
    assert len(waits) >= 3 and all(timeout == 0.01 for timeout in waits)


@pytest.mark.parametrize("any_thread", [True, False])
def test_both_arms_equal_one_side_at_a_time(any_thread: bool) -> None:
    backend = NumpyBackend(seed=5)
    backend.any_thread = any_thread
    left, right = random_halves(5000, 5)
    fl, fr = both_arms(backend, left, right)
    np.testing.assert_array_equal(fl, arm_features(backend, "left", left))
    np.testing.assert_array_equal(fr, arm_features(backend, "right", right))


def _prefix_pairs(plan: proof.Uncovered, n: int) -> np.ndarray:
    """The keys row * n + col of every pair a check plan covers, sorted."""
    return np.sort(np.concatenate([row * n + plan.orders[lane][:length] for row, lane, length in zip(plan.rows, plan.lane, plan.length)] or [np.zeros(0, dtype=np.int64)]))


def test_bound_check_covers_the_pairs_that_could_violate() -> None:
    graph = graphs.CandidateGraph(
        rows=np.array([0, 1]), cols=np.array([0, 1]), scores=np.array([1.0, 1.0]),
        row_bound=np.array([0.5, 5.0]), col_bound=np.array([5.0, 5.0]),
    )
    solution = graphs.SparseSolution(np.array([0, 1]), np.array([0.5, 0.5]), np.array([0.5, 0.5]))
    # Row 0: every excluded score <= 0.5 <= u + w = 1.0. Row 1: pair (1, 0) could reach 5.0 (and so could the edge (1, 1)).
    plan = proof.uncovered(graph, solution, 0.0)
    np.testing.assert_array_equal(plan.rows, [1])
    assert {1 * 2 + 0} <= set(_prefix_pairs(plan, 2)) <= {1 * 2 + 0, 1 * 2 + 1}
    # With a margin of 0.6, row 0 is checked too: its bound 0.5 leaves pair (0, 1) only 0.5 of slack.
    assert 0 * 2 + 1 in set(_prefix_pairs(proof.uncovered(graph, solution, 0.6), 2))


@pytest.mark.parametrize("seed", range(6))
def test_check_covers_every_loose_pair_and_keeps_the_near_ones(seed: int, monkeypatch: pytest.MonkeyPatch) -> None:
    """Against every pair, on random bounds, scores and duals, in blocks of a few rows and columns."""
    rng = np.random.default_rng(seed)
    n = 60
    edges = np.unique(rng.integers(0, n * n, 400))
    graph = graphs.CandidateGraph(edges // n, edges % n, np.zeros(len(edges)), rng.normal(size=n), rng.normal(size=n))
    graph.row_bound[rng.random(n) < 0.1] = -np.inf
    scores = np.minimum(rng.normal(size=(n, n)), np.minimum(graph.row_bound[:, None], graph.col_bound[None, :]))  # bounds hold
    scores[graph.rows, graph.cols] = graph.scores = rng.normal(size=len(edges))
    solution = graphs.SparseSolution(np.arange(n), rng.normal(size=n), rng.normal(size=n))
    margin = 0.3
    certified = solution.row_potential[:, None] + solution.col_potential[None, :]
    loose = np.minimum(graph.row_bound[:, None], graph.col_bound[None, :]) > certified - margin
    assert set(np.flatnonzero(loose)) <= set(_prefix_pairs(proof.uncovered(graph, solution, margin), n))
    monkeypatch.setattr(proof, "BLOCK_ROWS", 3)
    monkeypatch.setattr(proof, "BLOCK_CELLS", 12)
    monkeypatch.setattr(proof, "VIOLATIONS_KEPT", 10**9)  # every near pair, even of rows that break the duals
    checked = proof.check(lambda rows, cols: scores[np.ix_(rows, cols)], graph, solution, margin, threaded=True)
    near = scores > certified - margin
    near[graph.rows, graph.cols] = False
    np.testing.assert_array_equal(np.sort(checked.rows * n + checked.cols), np.flatnonzero(near))
    np.testing.assert_array_equal(checked.scores, scores[checked.rows, checked.cols])
    assert checked.violated == bool((near & (scores > certified + graph.tolerance)).any())


@pytest.mark.parametrize("seed", range(3))
def test_a_row_that_breaks_the_duals_adds_only_its_most_violated_pairs(seed: int, monkeypatch: pytest.MonkeyPatch) -> None:
    """Rows whose duals are far too low have nearly every pair within the margin; per block of columns, only their
    VIOLATIONS_KEPT most violated pairs are kept. Every other row keeps every near pair, and the check still says
    that the duals are broken."""
    rng = np.random.default_rng(seed)
    n = 200
    graph = graphs.CandidateGraph(np.arange(n), np.arange(n), np.zeros(n), np.full(n, 10.0), np.full(n, 10.0))
    scores = np.minimum(rng.normal(size=(n, n)), 1.4)  # under every dual but the low ones: near, not broken
    scores[np.arange(n), np.arange(n)] = 0.0
    u = np.full(n, 1.5)
    low = rng.choice(n, 5, replace=False)
    u[low] = -3.0  # these rows' pairs nearly all break the duals
    solution = graphs.SparseSolution(np.arange(n), u, np.zeros(n))
    monkeypatch.setattr(proof, "BLOCK_CELLS", 64 * proof.BLOCK_ROWS)  # several blocks of columns per row
    monkeypatch.setattr(proof, "VIOLATIONS_KEPT", 4)
    margin = 0.5
    checked = proof.check(lambda rows, cols: scores[np.ix_(rows, cols)], graph, solution, margin, threaded=False)
    slack = u[:, None] - scores
    slack[np.arange(n), np.arange(n)] = np.inf
    assert checked.violated
    kept = np.zeros((n, n), dtype=bool)
    kept[checked.rows, checked.cols] = True
    others = np.setdiff1d(np.arange(n), low)
    np.testing.assert_array_equal(kept[others], (slack < margin)[others])
    for row in low:
        mine = np.flatnonzero(kept[row])
        assert 4 <= len(mine) < (slack[row] < 0).sum() / 2 and (slack[row, mine] < 0).all()
        assert slack[row, mine].min() == slack[row].min()  # the most violated pair is among them


@pytest.mark.parametrize("where", ["first", "past the probe", "nowhere"])
def test_a_large_check_probes_the_first_columns_of_each_prefix(where: str, monkeypatch: pytest.MonkeyPatch) -> None:
    """Past PROBE_FROM pairs, the check first scores each row's first PROBE_COLUMNS columns by danger, and stops there
    if they break the duals; otherwise the whole plan is scored, and its breaking or near pairs are found whole."""
    rng = np.random.default_rng(5)
    n = 120
    graph = graphs.CandidateGraph(np.arange(n), np.arange(n), np.zeros(n), np.full(n, 10.0), np.full(n, 10.0))
    w = np.sort(rng.uniform(0.0, 1.0, n))  # the columns by w ascending: the first are the most dangerous
    u = np.full(n, 1.0)
    scores = np.minimum(rng.normal(size=(n, n)) * 0.1, 0.3)  # over half a unit of slack: no pair is near
    scores[np.arange(n), np.arange(n)] = 0.0
    if where == "first":
        scores[7, 2] = 5.0
    elif where == "past the probe":
        scores[7, n - 3] = 5.0
    solution = graphs.SparseSolution(np.arange(n), u, w)
    monkeypatch.setattr(proof, "PROBE_FROM", n)
    monkeypatch.setattr(proof, "PROBE_COLUMNS", 16)
    checked = proof.check(lambda rows, cols: scores[np.ix_(rows, cols)], graph, solution, 0.5, threaded=False)
    slack = u[:, None] + w[None, :] - scores
    slack[np.arange(n), np.arange(n)] = np.inf
    assert checked.violated == (where != "nowhere")
    np.testing.assert_array_equal(np.sort(checked.rows * n + checked.cols), np.flatnonzero(slack < (0.0 if checked.violated else 0.5)))
    probe = n * 16
    assert checked.scored == (probe if where == "first" else probe + n * n)  # every row's prefix holds all n columns, its own edge too


def test_no_perfect_matching_widens_k() -> None:
    """All lefts prefer the same right: top-1 per row and column cannot match everyone."""

    class Popular(NumpyBackend):
        def head(self, left: np.ndarray, right: np.ndarray, beside_host: bool = False) -> np.ndarray:
            return (left[:, :1] * 0 + right[:, 0][None, :]).astype(np.float32) + 0.001 * (left[:, :1] @ right[:, :1].T)

    backend = Popular(seed=4)
    left, right = random_halves(40, 4)
    sparse = restore(backend, left, right, method="sparse", k=1)
    dense = restore(backend, left, right, method="dense")
    assert sparse.assignment.total_score == pytest.approx(dense.assignment.total_score, rel=1e-6)
    assert sparse.assignment.k > 1 or sparse.assignment.method == "dense"


def test_memory_guard_refuses_before_work(monkeypatch: pytest.MonkeyPatch) -> None:
    from amphisbaena.errors import InputError
    from amphisbaena.runtime import memory as restore_module

    backend = NumpyBackend()
    monkeypatch.setattr(restore_module, "available_memory_bytes", lambda: 2 * 2**30)
    left, right = random_halves(20_000, 0)
    with pytest.raises(InputError, match=r"needs about 4\.8 GiB, only 2\.0 GiB available; use --assignment sparse"):
        restore(backend, left, right, method="dense")
    assert backend.head_calls == 0
    # The streaming path needs O(N k) memory and is accepted for the same N.
    assert restore_module.estimate_peak_bytes(20_000, 24, "sparse") < 2**30
    assert restore_module.estimate_peak_bytes(10_000_000, 24, "sparse") > 2 * 2**30


def test_accuracy_by_coverage_keeps_the_most_confident() -> None:
    from amphisbaena.runtime.results import AssignmentReport, RestoreResult

    result = RestoreResult(np.arange(4), np.array([0.1, 3.0, 2.0, -1.0]), "numpy", "fp32", AssignmentReport("dense"))
    result.correct = np.array([False, True, True, False])
    table = {row["coverage"]: row["accuracy"] for row in result.accuracy_by_coverage((1.0, 0.5))}
    assert table == {1.0: 0.5, 0.5: 1.0}
    assert [m["left"] for m in result.least_confident(2)] == [3, 0]


@pytest.mark.parametrize("n_left, n_right, tile_rows, tile_cols", [(100, 100, 32, 40), (61, 83, 16, 30), (50, 9, 8, 8)])
def test_device_topk_streaming_equals_exact_streaming(n_left: int, n_right: int, tile_rows: int, tile_cols: int) -> None:
    """Tiles whose last window is shorter than topk reach back into the previous one; nothing is counted twice."""
    device = DeviceTopKBackend(seed=4)
    plain = NumpyBackend(seed=4)
    left, _ = random_halves(n_left, 5)
    _, right = random_halves(n_right, 6)
    fl, fr = arm_features(plain, "left", left), arm_features(plain, "right", right)
    reduced = PairScorer(device, fl, fr, tiles=TilePlan(tile_rows, tile_cols, tile_rows, tile_cols)).candidates(k=4)
    exact = PairScorer(plain, fl, fr, tiles=TilePlan(tile_rows, tile_cols, tile_rows, tile_cols)).candidates(k=4)
    assert set(zip(reduced.rows.tolist(), reduced.cols.tolist())) == set(zip(exact.rows.tolist(), exact.cols.tolist()))
    np.testing.assert_allclose(reduced.row_bound, exact.row_bound, atol=1e-5)
    np.testing.assert_allclose(reduced.col_bound, exact.col_bound, atol=1e-5)


def test_device_topk_path_restores_like_dense() -> None:
    device = DeviceTopKBackend(seed=8, sharpness=3.0)
    left, right = random_halves(120, 9)
    sparse = restore(device, left, right, method="sparse", k=6)
    dense = restore(NumpyBackend(seed=8, sharpness=3.0), left, right, method="dense")
    np.testing.assert_array_equal(sparse.right_for_left, dense.right_for_left)


def brute_force_regrets(full: np.ndarray, right_for_left: np.ndarray) -> np.ndarray:
    """What the optimal total loses when each chosen pair in turn is forbidden, by re-solving."""
    from scipy.optimize import linear_sum_assignment

    best = full[np.arange(len(full)), right_for_left].sum()
    regrets = np.empty(len(full))
    for i, j in enumerate(right_for_left):
        forbidden = full.copy()
        forbidden[i, j] = -1e9
        rows, cols = linear_sum_assignment(forbidden, maximize=True)
        regrets[i] = best - forbidden[rows, cols].sum()
    return regrets


@pytest.mark.parametrize("backend_type", [NumpyBackend, DeviceTopKBackend])
def test_confidence_is_the_exact_regret_on_the_full_graph_and_on_candidates(backend_type) -> None:
    """Dense (every pair a candidate, k >= N): the regret of every match, exactly (up to the cap).
    Sparse (k = 4): exact as well, because the proof leaves no pair outside the graph within the cap of the
    duals (`assignment.PROOF_MARGIN`), so no cheaper cycle leaves the graph; with every pair a candidate too."""
    from amphisbaena.runtime.confidence import REGRET_LIMIT

    backend = backend_type(seed=5)
    left, right = random_halves(60, 5)
    dense = restore(backend, left, right, method="dense")
    sparse = restore(backend, left, right, method="sparse", k=4)
    full = backend.head(arm_features(backend, "left", left), arm_features(backend, "right", right)).astype(np.float64)
    expected = np.minimum(brute_force_regrets(full, dense.right_for_left), REGRET_LIMIT)
    np.testing.assert_allclose(dense.confidence, expected, atol=1e-3)
    np.testing.assert_array_equal(sparse.right_for_left, dense.right_for_left)
    np.testing.assert_allclose(sparse.confidence, expected, atol=1e-3)
    every_pair = restore(backend, left, right, method="sparse", k=60)  # every pair a candidate: exact again
    np.testing.assert_allclose(every_pair.confidence, expected, atol=1e-3)


@pytest.mark.parametrize("partner_group_count", [1, 9, 150])  # each left in one block; blocks wider than 4 * COUNT; narrower than COUNT
@pytest.mark.parametrize("ties", [False, True])
@pytest.mark.parametrize("in_flight", [0, 2])  # offers taken at once; or two blocks later, from stale floors, as the stream's workers see them
def test_blocks_leave_every_item_its_true_top_count(ties: bool, partner_group_count: int, in_flight: int) -> None:
    """Blocks of ragged left and right sets (each pair offered once, as the pruned stream does), in any
    order, offered to the rights as the stream does (`block_offer`, then `take`) and, read the other way round
    (the block transposed, without a copy), to the lefts, leave every item its true best COUNT: scores, and
    distinct partners that hold them. Wide blocks take first floors from chunk maxima; items seen again
    get more than COUNT entries and have their floors raised. An offer found from floors that were copied
    IN_FLIGHT blocks before it is taken (`block_offer` in a worker) changes nothing."""
    rng = np.random.default_rng(7)
    n_left, n_right, count = 300, 900, 9
    full = rng.normal(size=(n_left, n_right)).astype(np.float32)
    if ties:
        full = np.round(full * 2) / 2  # few distinct values: ties at every floor
    left_groups = np.array_split(rng.permutation(n_left), 7)
    right_groups = np.array_split(rng.permutation(n_right), partner_group_count)
    blocks = [(lefts, rights) for lefts in left_groups for rights in right_groups if rng.random() < 0.8]
    offered = np.full_like(full, -np.inf)
    by_row = topk.BestPerItemFromBlocks(n_left, count)
    by_col = topk.BestPerItemFromBlocks(n_right, count)
    pending = []
    for block in rng.permutation(len(blocks)):
        lefts, rights = blocks[block]
        scores = np.ascontiguousarray(full[np.ix_(lefts, rights)])
        if in_flight:
            pending.append((rights, lefts, topk.block_offer(scores, by_col.floor[rights], count)))
            if len(pending) > in_flight:
                by_col.take(*pending.pop(0))
        else:
            by_col.take(rights, lefts, topk.block_offer(scores, by_col.floor[rights], count))
        by_row.take(lefts, rights, topk.block_offer(scores.T, by_row.floor[lefts], count))
        offered[np.ix_(lefts, rights)] = scores
    for offer in pending:
        by_col.take(*offer)
    for best, truth in ((by_row.best_first(), offered), (by_col.best_first(), np.ascontiguousarray(offered.T))):
        np.testing.assert_array_equal(best.score, -np.sort(-truth, axis=1)[:, :count])
        held = np.isfinite(best.score)
        assert np.all(best.partner[~held] == -1)
        np.testing.assert_array_equal(truth[np.nonzero(held)[0], best.partner[held]], best.score[held])
        for item in range(len(truth)):  # partners are distinct within an item
            kept = best.partner[item][best.partner[item] >= 0]
            assert len(set(kept.tolist())) == len(kept)


@pytest.mark.parametrize("width", [9, 40, 1000])  # exactly COUNT; narrower than 4 * COUNT; many chunks
@pytest.mark.parametrize("ties", [False, True])
def test_best_of_each_row_is_each_rows_top_count_ties_to_the_lower_position(ties: bool, width: int) -> None:
    """A left's final list from its one block (`best_of_each_row`): its best COUNT, best first, and where
    scores tie, the lower position first, exactly as sorting the whole row would give."""
    rng = np.random.default_rng(width)
    count = 9
    scores = rng.normal(size=(57, width)).astype(np.float32)
    if ties:
        scores = np.round(scores * 2) / 2
    positions, values = topk.best_of_each_row(scores, count)
    order = np.lexsort((np.broadcast_to(np.arange(width), scores.shape), -scores), axis=1)[:, :count]
    np.testing.assert_array_equal(positions, order)
    np.testing.assert_array_equal(values, np.take_along_axis(scores, order, axis=1))


@pytest.mark.parametrize("ties", [False, True])
def test_graph_from_is_the_union_of_row_and_column_lists_with_each_edges_best_rank(ties: bool) -> None:
    """graph_from, written as a merge of sorted runs, against the union built literally: every row's and
    column's best k (empty slots left out), each edge once, in (row, column) order, its score, core where
    either side ranks it among its best CORE_K, and the (k+1)-th bests as bounds."""
    rng = np.random.default_rng(11)
    n_left, n_right, k = 40, 30, 12
    count = k + 1
    full = rng.normal(size=(n_left, n_right)).astype(np.float32)
    if ties:
        full = np.round(full * 2) / 2
    full[rng.random(full.shape) < 0.4] = -np.inf  # pairs never scored: some items have fewer than k partners

    def best_of(matrix: np.ndarray) -> topk.BestPerItem:
        best = topk.BestPerItem(len(matrix), count)
        order = np.lexsort((np.broadcast_to(np.arange(matrix.shape[1]), matrix.shape), -matrix), axis=1)[:, :count]
        best.score = np.take_along_axis(matrix, order, axis=1)
        best.partner = np.where(np.isfinite(best.score), order, -1)
        return best

    by_row, by_col = best_of(full), best_of(np.ascontiguousarray(full.T))
    graph = candidates.graph_from(by_row, by_col, k, n_right)
    rank: dict[tuple[int, int], int] = {}
    for i in range(n_left):
        for place, j in enumerate(by_row.partner[i, :k]):
            if j >= 0:
                rank[(i, int(j))] = min(rank.get((i, int(j)), place), place)
    for j in range(n_right):
        for place, i in enumerate(by_col.partner[j, :k]):
            if i >= 0:
                rank[(int(i), j)] = min(rank.get((int(i), j), place), place)
    edges = sorted(rank)
    assert list(zip(graph.rows.tolist(), graph.cols.tolist())) == edges
    np.testing.assert_array_equal(graph.scores, np.array([full[e] for e in edges], dtype=np.float64))
    np.testing.assert_array_equal(graph.core, np.array([rank[e] < candidates.CORE_K for e in edges]))
    np.testing.assert_array_equal(graph.row_bound, by_row.score[:, k].astype(np.float64))
    np.testing.assert_array_equal(graph.col_bound, by_col.score[:, k].astype(np.float64))


@pytest.mark.parametrize("shape", [(1, 1), (3, 7), (64, 1), (1, 200), (33, 65), (0, 5), (5, 0)])
def test_nonzero_2d_equals_np_nonzero(shape: tuple[int, int]) -> None:
    from amphisbaena.runtime.arrays import nonzero_2d

    rng = np.random.default_rng(sum(shape))
    for density in (0.0, 0.1, 0.5, 1.0):
        mask = rng.random(shape) < density
        for got, want in zip(nonzero_2d(mask), np.nonzero(mask)):
            np.testing.assert_array_equal(got, want)


def test_import_beside_loads_the_module_and_leaves_a_failure_to_the_callers_import(capfd: pytest.CaptureFixture[str]) -> None:
    import sys

    sys.modules.pop("json.tool", None)
    overlap.import_beside("json.tool").join()
    assert "json.tool" in sys.modules
    overlap.import_beside("amphisbaena.no_such_module").join()
    assert capfd.readouterr().err == ""  # nothing printed from the worker
    with pytest.raises(ModuleNotFoundError):
        __import__("amphisbaena.no_such_module")


@pytest.mark.parametrize("high", [2, 60_000, 1 << 16, 1 << 40])
def test_stable_order_is_numpys_stable_argsort(high: int) -> None:
    from amphisbaena.runtime.arrays import stable_order

    keys = np.random.default_rng(high % 97).integers(0, high, 20_000)
    np.testing.assert_array_equal(stable_order(keys), np.argsort(keys, kind="stable"))  # ties keep their order
    assert len(stable_order(np.zeros(0, dtype=np.int64))) == 0


def test_best_first_sorts_by_score_then_partner_with_ties_and_signed_zeros() -> None:
    rng = np.random.default_rng(3)
    lists = topk.BestPerItemFromBlocks(300, 5)
    score = rng.integers(-3, 3, size=(300, 10)).astype(np.float32)  # many ties
    score[rng.random((300, 10)) < 0.2] = -np.inf
    score[score == 0] = np.where(rng.random(int((score == 0).sum())) < 0.5, np.float32(-0.0), np.float32(0.0))
    partner = np.stack([rng.permutation(1000)[:10] for _ in range(300)])
    lists.score, lists.partner = score, np.where(np.isneginf(score), -1, partner)
    best = lists.best_first()
    key_partner = np.where(np.isneginf(score), np.iinfo(np.int64).max, lists.partner)
    order = np.lexsort((key_partner, -score), axis=1)[:, :5]  # the reference: a two-key sort of every slot
    np.testing.assert_array_equal(best.score, np.take_along_axis(score, order, axis=1))
    np.testing.assert_array_equal(best.partner, np.take_along_axis(lists.partner, order, axis=1))


@pytest.mark.parametrize("groups, entries", [(1, 0), (7, 50), (60_000, 200_000)])
def test_minimum_by_group_is_minimum_at(groups: int, entries: int) -> None:
    from amphisbaena.runtime.arrays import minimum_by_group

    rng = np.random.default_rng(entries)
    initial, which, values = rng.normal(size=groups), rng.integers(0, groups, entries), rng.normal(size=entries)
    expected = initial.copy()
    np.minimum.at(expected, which, values)
    np.testing.assert_array_equal(minimum_by_group(initial, which, values), expected)


@pytest.mark.parametrize("sorted_rows", [True, False])
@pytest.mark.parametrize("keep_all", [True, False])
def test_edges_by_row_is_the_csr_layout_of_the_kept_edges(sorted_rows: bool, keep_all: bool, monkeypatch: pytest.MonkeyPatch) -> None:
    """Each row's kept edges in their own order (repeated pairs too), in chunks of a few edges, with the spare
    slots left after them."""
    from amphisbaena.runtime import arrays

    monkeypatch.setattr(arrays, "CHUNK_EDGES", 7)
    rng = np.random.default_rng(int(sorted_rows) + 2 * int(keep_all))
    n, e = 40, 300
    rows, cols, values = rng.integers(0, n, e), rng.integers(0, n, e), rng.normal(size=e)
    rows[rows == 3] = 4  # a row without edges
    if sorted_rows:
        rows = np.sort(rows)
    keep = None if keep_all else rng.random(e) < 0.6
    lengths, heads, starts = arrays.edges_by_row(rows, cols, keep, n, lambda at: values[at] * 2, 5)
    kept = np.ones(e, dtype=bool) if keep is None else keep
    assert len(lengths) == len(heads) == kept.sum() + 5 and heads.dtype == np.int32
    np.testing.assert_array_equal(starts, np.concatenate([[0], np.cumsum(np.bincount(rows[kept], minlength=n))]))
    for row in range(n):  # each row's edges in their original order: stable
        first, stop = starts[row], starts[row + 1]
        mine = np.flatnonzero(kept & (rows == row))
        np.testing.assert_array_equal(heads[first:stop], cols[mine] + n)
        np.testing.assert_array_equal(lengths[first:stop], values[mine] * 2)
