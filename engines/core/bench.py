"""Throughput of the reference executor: ``python -m engines.core.bench [--runs N] [--steps N] [--corpus N]``.

Measures step attempts replayed per CPU second by :class:`~engines.core.oracle.CoreOracle` on (a) a
layered DAG replayed for many runs under PARALLEL and (b) the first traces of the built-in generated
corpus. CPU time (``time.process_time``) is reported because the machines we share are loaded;
wall time would measure the neighbours.
"""

from __future__ import annotations

import argparse
import random
import time
from collections.abc import Sequence

from corpora.generator import generate_corpus
from corpora.model import Run, RunStrategy, RunStrategyRule, Trace
from engines.api import ReplayOptions
from engines.core.oracle import CoreOracle
from engines.core.testing import T0, make_trace, rec, step

__all__ = ["dag_trace", "main", "measure"]


def dag_trace(steps: int, runs: int, seed: int = 1) -> Trace:
    """``steps`` steps where step i feeds i+1 and i+2; ``runs`` runs 10,000 s apart, all succeeding."""
    rng = random.Random(seed)
    defs = [step(f"s{i}", *[f"s{j}" for j in range(i + 1, min(steps, i + 3))]) for i in range(steps)]
    all_runs = [
        Run(
            f"r{k}",
            T0 + k * 10_000,
            attempts=tuple(rec(f"s{i}", 1, "succeeded", rng.uniform(1, 60)) for i in range(steps)),
        )
        for k in range(runs)
    ]
    return make_trace(defs, runs=all_runs, strategy=RunStrategy(RunStrategyRule.PARALLEL, 100))


def measure(traces: Sequence[Trace]) -> tuple[int, float]:
    """(attempts replayed, CPU seconds) over ``traces``."""
    oracle = CoreOracle()
    attempts = 0
    start = time.process_time()
    for trace in traces:
        record = oracle.replay(trace, ReplayOptions())
        attempts += sum(len(r.attempts) for r in record.runs)
    return attempts, time.process_time() - start


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m engines.core.bench", description=__doc__)
    parser.add_argument("--runs", type=int, default=200)
    parser.add_argument("--steps", type=int, default=20)
    parser.add_argument("--corpus", type=int, default=200, help="generated corpus traces (seed 7)")
    args = parser.parse_args(argv)
    n, secs = measure([dag_trace(args.steps, args.runs)])
    print(
        f"layered DAG, {args.steps} steps x {args.runs} runs: {n} attempts in {secs:.2f} s CPU = {n / secs:,.0f}/s"
    )
    corpus = list(generate_corpus(7, args.corpus))
    n, secs = measure(corpus)
    print(f"generated corpus, {args.corpus} traces: {n} attempts in {secs:.2f} s CPU = {n / secs:,.0f}/s")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
