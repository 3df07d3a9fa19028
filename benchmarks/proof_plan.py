"""How many pairs the proof's check must score, against the margin it keeps for exact regrets.

    python benchmarks/proof_plan.py --halves runs/h60k.npz --margins 1.0 0.5 0.25 0.1 0.0 --name NAME

Runs `amphisbaena restore HALVES --json` and, at each round's `proof.check`, counts the pairs of its plan
(`proof.uncovered`, with the pruner's bucket caps) at each margin in MARGINS before the check runs as usual. Today's
margin is `assignment.PROOF_MARGIN` (the regrets' cap): every pair outside the graph then has at least that slack,
which makes each regret search exact; a smaller margin checks fewer pairs, and regrets above it become bounds.
Writes benchmarks/results/NAME.json with the commit, the restore's pairs and each round's counts.
"""

from __future__ import annotations

import argparse
import contextlib
import io
import json
import sys
import time
from pathlib import Path

from bench_models import commit_of

HERE = Path(__file__).resolve().parent


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--halves", type=Path, required=True)
    parser.add_argument("--margins", type=float, nargs="+", default=[1.0, 0.5, 0.25, 0.1, 0.0])
    parser.add_argument("--name", required=True)
    args = parser.parse_args()

    from amphisbaena.cli import main as cli
    from amphisbaena.runtime import assignment, proof

    rounds: list[dict] = []
    check = assignment.check

    def counting(score_block, graph, solution, margin, threaded, caps=None):
        plans = {str(m): int(proof.uncovered(graph, solution, m, caps).length.sum()) for m in args.margins}
        rounds.append({"pairs": graph.size, "edges": len(graph.rows), "plan_pairs_by_margin": plans, "margin_used": margin})
        print(json.dumps(rounds[-1]), file=sys.stderr, flush=True)
        return check(score_block, graph, solution, margin, threaded, caps)

    assignment.check = counting
    sys.argv = ["amphisbaena", "restore", str(args.halves), "--json"]
    output = io.StringIO()
    with contextlib.redirect_stdout(output), contextlib.suppress(SystemExit):
        cli()
    restored = json.loads(output.getvalue())
    report = {
        "commit": commit_of(HERE.parent),
        "date": time.strftime("%Y-%m-%d %H:%M"),
        "halves": str(args.halves),
        "runs": 1,
        "pairs": restored["count"],
        "all_pairs": restored["count"] ** 2,
        "scored_pairs": restored["assignment"]["scored_pairs"],
        "regrets": restored["assignment"]["regrets"],
        "rounds": rounds,
    }
    (HERE / "results" / f"{args.name}.json").write_text(json.dumps(report, indent=2) + "\n")
    print(json.dumps({key: report[key] for key in ("pairs", "scored_pairs", "rounds")}, indent=2))


if __name__ == "__main__":
    main()
