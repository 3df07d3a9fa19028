"""What follows a restore's first repair: the proof's rounds after today's repair, or another way to a perfect matching.

    python benchmarks/repair_paths.py current --halves runs/million/pairs-200000/halves.npz --k 8 --max-rounds 14 --name NAME
    python benchmarks/repair_paths.py restream --halves runs/million/pairs-200000/halves.npz --k 8 --per-row 128 --name NAME
    python benchmarks/repair_paths.py ranks --halves runs/million/pairs-200000/halves.npz --key runs/million/pairs-200000/key.npz --k 8 --name NAME
    python benchmarks/repair_paths.py matching --halves runs/million/pairs-200000/halves.npz --k 8 --repeats 5 --name NAME
    python benchmarks/repair_paths.py search|honest --halves runs/million/pairs-200000/halves.npz --k 16 --name NAME

Each runs `amphisbaena restore HALVES --k K` up to its first call of `repair.with_a_perfect_matching` (a candidate
graph without a perfect matching), measure there the rows U a maximum matching leaves unmatched, the Hall set S
(every row an alternating path from U reaches: its rows have too few columns, N(S)) and the columns R that
alternating paths reach backwards from the unmatched columns (`repair.deficit`), then follow one path and stop:

- `current`: the package's repair (`repair.with_a_perfect_matching`), then rounds as `assignment.assign_sparse`
  runs them (a solve, `proof.check`, then `duals.solve_sparse` from the last round's solution), up to MAX_ROUNDS
  checks or until the proof holds. Up to commit 388ebcb the package's repair paired the
  unmatched rows with the unmatched columns (U x C); the `deepen` path of those commits is today's repair;
- `matching`: the package's repair step by step, and at each repaired graph its maximum matching found twice over,
  REPEATS times each, interleaved: by Hopcroft-Karp from scratch (`repair.deficit(graph)`, the repair up to 5e36e17)
  and by augmenting the last maximum matching (`repair.deficit(graph, last)`, the repair since); medians, the raw
  seconds, and whether both leave as many rows unmatched;
- `restream`: every row of S scored against every right, its best PER_ROW added as edges, and the graph solved from
  the maximum matching's duals; where that graph has a perfect matching, the same rounds follow;
- `search`: Dijkstra from U over the residual graph (slack as lengths) within REACH, then every reached row i's pairs
  with slack under REACH - d_i scored and added (`proof.check` on duals lowered by that much), until open columns
  are reached; the graph is then solved from the last maximum matching, and again while it has no perfect one;
- `honest`: every row of S scored against every right, and its pairs within REACH of its best reduced score
  max_j s_ij - w_j under the maximum matching's column duals added; solved from the maximum matching, and again
  with the new S while the graph has no perfect matching; then the same rounds.

Each step's seconds, the rows each check finds broken, the pairs it keeps and scores go to
benchmarks/results/NAME.json with the commit. Timed once: a development measurement, not a ratio.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from functools import partial
from pathlib import Path

import numpy as np
from bench_models import commit_of

HERE = Path(__file__).resolve().parent
ROWS_PER_CALL = 256  # rows of the Hall set scored against every right at once


class Recorder:
    def __init__(self) -> None:
        self.started = time.perf_counter()
        self.steps: list[dict] = []

    def note(self, step: str, seconds: float, **figures: object) -> None:
        self.steps.append({"step": step, "at": round(time.perf_counter() - self.started, 1), "seconds": round(seconds, 2), **figures})
        print(json.dumps(self.steps[-1]), flush=True)


def rounds(scorer, graph, solution, previous, max_rounds: int, record: Recorder) -> bool:
    """The proof's rounds as `assign_sparse` runs them, from SOLUTION (or a solve from PREVIOUS where it is None)."""
    from amphisbaena.runtime.assignment import PROOF_MARGIN
    from amphisbaena.runtime.duals import solve_sparse
    from amphisbaena.runtime.proof import check

    for number in range(1, max_rounds + 1):
        if solution is None:
            started = time.perf_counter()
            solution = solve_sparse(graph, previous)
            record.note("solve", time.perf_counter() - started, round=number, perfect=solution.perfect, edges=len(graph.rows))
            if not solution.perfect:
                return False
        started = time.perf_counter()
        checked = check(partial(scorer.columns, beside_host=True), graph, solution, PROOF_MARGIN, scorer.backend.any_thread, scorer.pruner)
        broken = checked.scores > solution.row_potential[checked.rows] + solution.col_potential[checked.cols] + graph.tolerance
        record.note(
            "check", time.perf_counter() - started, round=number, kept=len(checked.rows), broken_rows=len(np.unique(checked.rows[broken])),
            scored=checked.scored,
        )
        graph = checked.added_to(graph)
        if not checked.violated:
            return True
        previous, solution = solution, None
    return False


def against_every_right(scorer, rows: np.ndarray):
    """(part, scores (len(part), N)): ROWS scored against every right, ROWS_PER_CALL rows at a time."""
    every_right = np.arange(scorer.size[1])
    for part in np.array_split(rows, max(1, len(rows) // ROWS_PER_CALL)):
        yield part, scorer.columns(part, every_right)


def added_from_every_right(scorer, graph, rows: np.ndarray, choose):
    """(GRAPH plus the chosen pairs that are not edges yet, how many): ROWS scored against every right, and of each
    block the pairs CHOOSE(part, block) picks, as positions (r, c) in the block."""
    from amphisbaena.runtime.proof import _edges_among

    found_rows, found_cols, found_scores, scored = [], [], [], 0
    for part, block in against_every_right(scorer, rows):
        scored += block.size
        r, c = choose(part, block)
        found_rows.append(part[r])
        found_cols.append(c)
        found_scores.append(block[r, c])
    found_rows, found_cols, found_scores = np.concatenate(found_rows), np.concatenate(found_cols), np.concatenate(found_scores)
    new = ~_edges_among(graph, found_rows, found_cols)
    return graph.with_edges(found_rows[new], found_cols[new], found_scores[new], scored), int(new.sum())


def restreamed(scorer, graph, hall_rows: np.ndarray, per_row: int):
    """GRAPH plus each row of HALL_ROWS's best PER_ROW partners among every right (those not edges yet), scored whole."""

    def best(part, block):
        return np.repeat(np.arange(len(part)), per_row), np.argpartition(-block, per_row, axis=1)[:, :per_row].ravel()

    return added_from_every_right(scorer, graph, hall_rows, best)


def searched(scorer, graph, maximum, reach: float, record: Recorder):
    """GRAPH plus the pairs outside it that alternating paths from the unmatched rows could take within REACH of
    slack: Dijkstra from them over the residual graph (slack as lengths), then every reached row i's pairs with
    slack under REACH - d_i scored (`proof.check` on duals lowered by that much), until open columns are reached."""
    from scipy.sparse.csgraph import dijkstra

    from amphisbaena.runtime.duals import residual_with_source
    from amphisbaena.runtime.graph import SparseSolution
    from amphisbaena.runtime.proof import check

    n = graph.size
    u, w, right_for_left = maximum.row_potential, maximum.col_potential, maximum.right_for_left
    open_rows = np.flatnonzero(right_for_left < 0)
    matched = right_for_left >= 0
    open_cols = np.setdiff1d(np.arange(n), right_for_left[matched])
    column_heads = np.arange(n, 2 * n)  # an open column leads nowhere (a loop)
    column_heads[right_for_left[matched]] = np.flatnonzero(matched)
    while True:
        started = time.perf_counter()
        slack = u[graph.rows] + w[graph.cols] - graph.scores
        residual = residual_with_source(graph.rows, graph.cols, None, n, slack.__getitem__, column_heads, 0.0, open_rows, np.zeros(len(open_rows)))
        del slack
        distance = dijkstra(residual, directed=True, indices=2 * n, limit=reach)[: 2 * n]
        del residual
        reached = np.flatnonzero(np.isfinite(distance[:n]))
        open_reached = int(np.isfinite(distance[n + open_cols]).sum())
        searched_at = time.perf_counter()
        if open_reached >= len(open_rows):
            record.note("search", searched_at - started, reach=reach, reached_rows=len(reached), open_reached=open_reached)
            return graph
        lowered = np.full(n, np.inf)
        lowered[reached] = u[reached] - (reach - distance[reached])
        checked = check(partial(scorer.columns, beside_host=True), graph, SparseSolution(right_for_left, lowered, w), 0.0, scorer.backend.any_thread, scorer.pruner)
        record.note(
            "search", searched_at - started, reach=reach, reached_rows=len(reached), open_reached=open_reached, scoring=round(time.perf_counter() - searched_at, 2),
            scored=checked.scored, added=len(checked.rows), edges=len(graph.rows),
        )
        if len(checked.rows):
            graph = checked.added_to(graph)
        elif open_reached:
            return graph
        else:
            reach *= 2


def honest(scorer, graph, maximum, hall_rows: np.ndarray, margin: float):
    """GRAPH plus, for each row of HALL_ROWS, every pair within MARGIN of its best reduced score max_j s_ij - w_j
    over every right, under the maximum matching's column duals w (those not edges yet)."""
    w = maximum.col_potential

    def near_best(part, block):
        reduced = block - w[None, :]
        return np.nonzero(reduced >= reduced.max(axis=1, keepdims=True) - margin)

    return added_from_every_right(scorer, graph, hall_rows, near_best)


def partner_ranks(scorer, hall_rows: np.ndarray, right_for_left: np.ndarray, sample: int) -> dict:
    """Where each row of HALL_ROWS's own right (RIGHT_FOR_LEFT, from the answer key) ranks among every right by score
    (0: its best), and how far below the row's best score it lies; for SAMPLE rows of them at most, drawn at random."""
    if len(hall_rows) > sample:
        hall_rows = np.sort(np.random.default_rng(0).choice(hall_rows, sample, replace=False))
    ranks, gaps = [], []
    for part, block in against_every_right(scorer, hall_rows):
        own = block[np.arange(len(part)), right_for_left[part]]
        ranks.append((block > own[:, None]).sum(axis=1))
        gaps.append(block.max(axis=1) - own)
    ranks, gaps = np.concatenate(ranks), np.concatenate(gaps)
    quantiles = [0.1, 0.5, 0.9, 0.99, 1.0]
    return {
        "rows_ranked": len(hall_rows),
        "quantiles": quantiles,
        "rank_of_own_right": np.quantile(ranks, quantiles).tolist(),
        "best_score_minus_own": np.quantile(gaps, quantiles).tolist(),
        "rows_with_own_right_past": {str(depth): int((ranks >= depth).sum()) for depth in (8, 64, 128, 1024)},
    }


def matchings_compared(scorer, graph, found, repeats: int, record: Recorder) -> list[dict]:
    """Each step of the repair: the maximum matching of the repaired graph by Hopcroft-Karp from scratch and by
    augmenting the last one, REPEATS times each, interleaved."""
    from amphisbaena.runtime import repair

    steps = []
    while len(found.unmatched):
        graph = graph.with_edges(*repair._best_across(scorer, found.hall_rows, found.reach_cols))
        seconds: dict[str, list[float]] = {"hopcroft_karp": [], "augmented": []}
        unmatched: dict[str, set[int]] = {way: set() for way in seconds}
        for _ in range(repeats):
            for way, last in (("hopcroft_karp", None), ("augmented", found.right_for_left)):
                started = time.perf_counter()
                result = repair.deficit(graph, last)
                seconds[way].append(round(time.perf_counter() - started, 2))
                unmatched[way].add(len(result.unmatched))
        assert len(unmatched["hopcroft_karp"] | unmatched["augmented"]) == 1, "the maximum matchings differ in size"
        medians = {way: float(np.median(seconds[way])) for way in seconds}
        figures = {"edges": len(graph.rows), "unmatched_before": len(found.unmatched), **{f"{way}_unmatched": unmatched[way].pop() for way in seconds}}
        figures.update(medians=medians, ratio=round(medians["hopcroft_karp"] / medians["augmented"], 2))
        steps.append({**figures, **seconds})
        record.note("repair step", sum(medians.values()), **figures)
        found = result
    return steps


def run(path: str, per_row: int, max_rounds: int, name: str, argv: list[str], key: Path | None = None, sample: int = 8192, reach: float = 4.0, repeats: int = 5) -> None:
    from amphisbaena.runtime import assignment, repair
    from amphisbaena.runtime.duals import solve_sparse

    record = Recorder()
    report: dict = {"commit": commit_of(HERE.parent), "date": time.strftime("%Y-%m-%d %H:%M"), "path": path, "restore": argv, "runs": 1}

    def at_first_repair(scorer, graph, k, maximum=None):
        record.note("until the first repair", time.perf_counter() - record.started, k=k, edges=len(graph.rows))
        found = repair.deficit(graph, maximum.right_for_left)
        open_rows, hall_rows = found.unmatched, found.hall_rows
        report["sets"] = {"U": len(open_rows), "S": len(hall_rows), "N(S)": len(hall_rows) - len(open_rows), "R": len(found.reach_cols)}
        print(json.dumps(report["sets"]), flush=True)
        started = time.perf_counter()
        if path == "current":
            repaired = repair.with_a_perfect_matching(scorer, graph, k, maximum)
            record.note("repair", time.perf_counter() - started, rows=repaired.rows, edges=len(repaired.graph.rows))
            report["proof_holds"] = rounds(scorer, repaired.graph, None, None, max_rounds, record)
        elif path == "matching":
            report["matchings"] = matchings_compared(scorer, graph, found, repeats, record)
        elif path == "search":
            solution = maximum
            while not solution.perfect:
                started = time.perf_counter()
                graph = searched(scorer, graph, solution, reach, record)
                solved_at = time.perf_counter()
                solution = solve_sparse(graph, solution)
                record.note("solve from the last maximum matching", time.perf_counter() - solved_at, unmatched=int((solution.right_for_left < 0).sum()), edges=len(graph.rows))
            report["proof_holds"] = rounds(scorer, graph, solution, None, max_rounds, record)
        elif path == "honest":
            wider, solution, open_now, hall_now = graph, maximum, open_rows, hall_rows
            while True:
                started = time.perf_counter()
                wider, added = honest(scorer, wider, solution, hall_now, reach)
                record.note("honest duals for S", time.perf_counter() - started, margin=reach, unmatched=len(open_now), rows=len(hall_now), added=added)
                started = time.perf_counter()
                solution = solve_sparse(wider, solution)
                open_now = np.flatnonzero(solution.right_for_left < 0)
                record.note("solve from the last maximum matching", time.perf_counter() - started, unmatched=len(open_now), edges=len(wider.rows))
                if solution.perfect:
                    break
                hall_now = repair.deficit(wider, solution.right_for_left).hall_rows
            report["proof_holds"] = rounds(scorer, wider, solution, None, max_rounds, record)
        elif path == "ranks":
            with np.load(key, allow_pickle=False) as answers:
                report["ranks"] = partner_ranks(scorer, hall_rows, answers["right_for_left"], sample)
            record.note("ranks", time.perf_counter() - started, scored=report["ranks"]["rows_ranked"] * graph.size)
        else:
            wider, added = restreamed(scorer, graph, hall_rows, per_row)
            record.note("restream of S", time.perf_counter() - started, per_row=per_row, scored=len(hall_rows) * graph.size, added=added)
            started = time.perf_counter()
            solution = solve_sparse(wider, maximum)
            unmatched = int((solution.right_for_left < 0).sum())
            record.note("solve from the maximum matching's duals", time.perf_counter() - started, perfect=solution.perfect, unmatched=unmatched)
            report["proof_holds"] = solution.perfect and rounds(scorer, wider, solution, None, max_rounds, record)
        report["steps"] = record.steps
        (HERE / "results" / f"{name}.json").write_text(json.dumps(report, indent=2) + "\n")
        os._exit(0)  # the restore goes no further

    assignment.with_a_perfect_matching = at_first_repair
    from amphisbaena.cli import main

    sys.argv = ["amphisbaena", "restore", *argv]
    main()
    raise SystemExit("the restore needed no repair: nothing measured")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("path", choices=["current", "matching", "restream", "ranks", "search", "honest"])
    parser.add_argument("--halves", type=Path, required=True)
    parser.add_argument("--key", type=Path, help="ranks: the set's answer key (right_for_left)")
    parser.add_argument("--sample", type=int, default=8192, help="ranks: rows of S ranked at most, drawn at random")
    parser.add_argument("--k", type=int, default=8)
    parser.add_argument("--per-row", type=int, default=128)
    parser.add_argument("--reach", type=float, default=4.0, help="search: the first reach, in slack")
    parser.add_argument("--max-rounds", type=int, default=14)
    parser.add_argument("--repeats", type=int, default=5, help="matching: each way's runs at each step")
    parser.add_argument("--name", required=True)
    args = parser.parse_args()
    if args.path == "ranks" and args.key is None:
        parser.error("ranks needs --key")
    run(args.path, args.per_row, args.max_rounds, args.name, [str(args.halves), "--k", str(args.k), "--json"], args.key, args.sample, args.reach, args.repeats)


if __name__ == "__main__":
    main()
