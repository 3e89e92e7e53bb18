"""A small live legacy deployment for the live-shadowing demo (``nox -s live_shadow``, docs/LIVE.md).

``python examples/live_deployment.py STORE.db --runs 40 --spacing 0.2`` runs the legacy engine live (real
clock, real SLEEP and SHELL steps) on a SQLite store, with runs of three workflows triggered ``--spacing``
seconds apart, so that runs keep finishing while ``shadow capture --follow`` tails the store. Exits 0 once
every run has finished, 3 if some had not by ``--timeout`` seconds.
"""

from __future__ import annotations

import argparse
import sys
import time

from corpora.model import (
    Param,
    Run,
    RunStrategy,
    RunStrategyRule,
    Step,
    StepType,
    Trace,
    Transition,
    WorkflowDefinition,
)
from engines.legacy import LegacyConfig
from engines.legacy.live import run_live

QUICK = LegacyConfig(poll_interval=0.01, default_callback=0.02, status_callbacks={}, first_polling_window=1.0)


def _sleep(step_id: str, seconds: float, then: str | None = None) -> Step:
    return Step(
        step_id,
        StepType.SLEEP,
        params={"sleep_seconds": Param(value=seconds)},
        transitions=(Transition(then),) if then else (),
    )


def _shell(step_id: str, command: str, then: str | None = None) -> Step:
    return Step(
        step_id,
        StepType.SHELL,
        params={"command": Param(value=command)},
        transitions=(Transition(then),) if then else (),
    )


def workflows() -> list[WorkflowDefinition]:
    """Three shapes: a sleep -> shell chain, a fan-out of shells joined by a sleep, and a longer chain."""
    parallel = RunStrategy(RunStrategyRule.PARALLEL)
    return [
        WorkflowDefinition(
            "ingest",
            (
                _sleep("wait", 0.05, "load"),
                _shell("load", "echo loaded", "check"),
                _shell("check", "echo ok"),
            ),
            run_strategy=parallel,
        ),
        WorkflowDefinition(
            "fanout",
            (
                Step(
                    "start",
                    StepType.SHELL,
                    params={"command": Param(value="echo start")},
                    transitions=(Transition("left"), Transition("right")),
                ),
                _shell("left", "echo left", "join"),
                _shell("right", "echo right", "join"),
                _sleep("join", 0.02),
            ),
            run_strategy=parallel,
        ),
        WorkflowDefinition(
            "nightly",
            (
                _shell("extract", "echo 1", "pause"),
                _sleep("pause", 0.03, "transform"),
                _shell("transform", "echo 2", "publish"),
                _shell("publish", "echo done"),
            ),
            run_strategy=parallel,
        ),
    ]


def traces(runs: int, spacing: float, start: float) -> list[Trace]:
    """``runs`` runs in all, round-robin over the workflows, the i-th triggered at ``start + spacing * i``."""
    defs = workflows()
    per: dict[str, list[Run]] = {d.id: [] for d in defs}
    for i in range(runs):
        definition = defs[i % len(defs)]
        per[definition.id].append(
            Run(run_id=f"run-{i + 1:04d}", trigger_time=start + spacing * i, params={"i": i})
        )
    return [Trace(trace_id=d.id, definition=d, runs=tuple(per[d.id])) for d in defs if per[d.id]]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n", 1)[0])
    parser.add_argument("store", help="the SQLite store file (created)")
    parser.add_argument("--runs", type=int, default=40, help="runs in all (default 40)")
    parser.add_argument(
        "--spacing", type=float, default=0.2, help="seconds between run triggers (default 0.2)"
    )
    parser.add_argument("--timeout", type=float, default=300.0, help="give up after this many seconds")
    args = parser.parse_args(argv)
    result = run_live(
        traces(args.runs, args.spacing, time.time()),
        store_path=args.store,
        config=QUICK,
        timeout=args.timeout,
    )
    print(
        f"live deployment: {len(result.runs)} runs, {'all finished' if result.finished else 'timed out'} "
        f"({args.store})",
        file=sys.stderr,
    )
    return 0 if result.finished else 3


if __name__ == "__main__":
    raise SystemExit(main())
