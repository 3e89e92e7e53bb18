"""Throughput of the reference executor: ``python -m engines.core.bench [--runs N] [--steps N] [--corpus N] [--seed S] [--foreach N]``.

Measures step attempts replayed per CPU second by :class:`~engines.core.oracle.CoreOracle` on (a) a
layered DAG replayed for many runs under PARALLEL, (b) the first traces of the built-in generated
corpus and (c) with ``--foreach N``, one foreach of N iterations of a 3-step chain at concurrency 100. Each
replay includes ``compile_trace`` and the record, as in :meth:`CoreOracle.replay`. CPU time (``time.process_time``) is reported because the machines we share are loaded;
wall time would measure the neighbours.
"""

from __future__ import annotations

import argparse
import random
import time
from collections.abc import Sequence

from corpora.generator import generate_corpus
from corpora.model import Foreach, Param, Run, RunStrategy, RunStrategyRule, StepType, Trace
from engines.api import ReplayOptions
from engines.core.oracle import CoreOracle
from engines.core.testing import T0, make_trace, rec, step

__all__ = ["dag_trace", "foreach_trace", "main", "measure"]


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


def foreach_trace(iterations: int, concurrency: int = 100, seed: int = 1) -> Trace:
    """One run of a foreach of ``iterations`` iterations of ``a -> b -> c``, all succeeding."""
    rng = random.Random(seed)
    inner = (step("a", "b"), step("b", "c"), step("c"))
    fe = Foreach({"i": Param(value=list(range(iterations)))}, inner, concurrency=concurrency)
    recs = [
        rec(f"fan[{k}]/{x}", 1, "succeeded", rng.uniform(1, 60)) for k in range(iterations) for x in "abc"
    ]
    return make_trace([step("fan", type=StepType.FOREACH, foreach=fe)], recs)


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
    parser.add_argument("--corpus", type=int, default=200, help="generated corpus traces")
    parser.add_argument("--seed", type=int, default=7, help="generated corpus seed")
    parser.add_argument("--foreach", type=int, default=0, help="also one foreach of N iterations")
    args = parser.parse_args(argv)
    n, secs = measure([dag_trace(args.steps, args.runs)])
    print(
        f"layered DAG, {args.steps} steps x {args.runs} runs: {n} attempts in {secs:.2f} s CPU = {n / secs:,.0f}/s"
    )
    corpus = list(generate_corpus(args.seed, args.corpus))
    n, secs = measure(corpus)
    print(
        f"generated corpus (seed {args.seed}), {args.corpus} traces: {n} attempts in {secs:.2f} s CPU"
        f" = {n / secs:,.0f}/s"
    )
    if args.foreach:
        n, secs = measure([foreach_trace(args.foreach)])
        print(
            f"foreach of {args.foreach} iterations x 3 steps: {n} attempts in {secs:.2f} s CPU = {n / secs:,.0f}/s"
        )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
