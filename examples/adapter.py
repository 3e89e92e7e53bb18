"""A complete, minimal engine adapter: how to shadow-test *your* orchestrator with workflow-shadow.

An engine is any object with ``name``, ``version`` and ``replay(trace, options) -> ExecutionRecord``
(engines/api.py). ``shadow run`` builds it from a factory named on the command line:

    PYTHONPATH=. shadow run corpus.jsonl.gz --db results.duckdb --candidate examples.adapter:make_engine

(the module must be importable: on PYTHONPATH, or installed). Installed as a package, an adapter can
register a short name instead, in its pyproject.toml:

    [project.entry-points."workflow_shadow.engines"]
    my-engine = "my_package.engine:make_engine"

and then ``shadow run ... --candidate my-engine``. Factory keyword arguments come from
``--candidate-nodes`` (``nodes=``) and ``--candidate-fault`` (``faults=``) when the factory accepts them.

What ``replay`` must do, for a real orchestrator:
1. Register ``trace.definition`` (and ``trace.subworkflows``) with it, translated to its own format.
2. Trigger each ``trace.runs[i]`` at its ``trigger_time`` (virtual seconds: drive your orchestrator's clock,
   or run it against a fake clock) with the run's params.
3. Make every step's job return what the trace recorded: ``Run.attempts`` has, per step path and attempt,
   the outcome, duration and outputs production saw. Side effects must be virtualized.
4. Read back what the orchestrator did and map it to :class:`~engines.api.ExecutionRecord`: per run its
   final status, and per attempt its status, params handed in, outputs and timestamps.

This example does steps 1-3 with the project's reference semantics (the core oracle, zero overhead) and
shows step 4 explicitly: it copies the record field by field, adding a fixed orchestration latency before
every attempt starts, as a real scheduler would. Outcomes therefore equal the baseline's; latency differs.
"""

from __future__ import annotations

from corpora.model import Trace
from engines.api import AttemptRecord, ExecutionRecord, ReplayOptions, RunExecution
from engines.core.oracle import CoreOracle

__all__ = ["LatencyAdapter", "make_engine"]


class LatencyAdapter:
    """The reference semantics plus ``start_latency`` seconds before every attempt starts."""

    name = "example-adapter"
    version = "1"

    def __init__(self, start_latency: float = 0.05) -> None:
        self.start_latency = start_latency
        self._orchestrator = CoreOracle()  # replace with a client of your orchestrator

    def replay(self, trace: Trace, options: ReplayOptions) -> ExecutionRecord:
        done = self._orchestrator.replay(trace, options)  # steps 1-3
        return ExecutionRecord(  # step 4: what your orchestrator did, in the canonical form
            trace_id=trace.trace_id,
            engine=self.name,
            engine_version=self.version,
            seed=options.seed,
            runs=tuple(self._run(run) for run in done.runs),
            counters={"attempts": float(sum(len(run.attempts) for run in done.runs))},
        )

    def _run(self, run: RunExecution) -> RunExecution:
        shift = self.start_latency
        return RunExecution(
            run_id=run.run_id,
            status=run.status,
            stuck=run.stuck,
            workflow_params=run.workflow_params,
            triggered_at=run.triggered_at,
            started_at=run.started_at,
            ended_at=None if run.ended_at is None else run.ended_at + shift,
            attempts=tuple(self._attempt(attempt, shift) for attempt in run.attempts),
        )

    @staticmethod
    def _attempt(attempt: AttemptRecord, shift: float) -> AttemptRecord:
        def later(value: float | None) -> float | None:
            return None if value is None else value + shift

        return AttemptRecord(
            path=attempt.path,
            step_id=attempt.step_id,
            step_type=attempt.step_type,
            attempt=attempt.attempt,
            status=attempt.status,
            outcome=attempt.outcome,
            unrecorded=attempt.unrecorded,
            params=attempt.params,
            outputs=attempt.outputs,
            config=attempt.config,
            created_at=attempt.created_at,
            ready_at=attempt.ready_at,
            started_at=later(attempt.started_at),
            ended_at=later(attempt.ended_at),
        )


def make_engine(start_latency: float = 0.05) -> LatencyAdapter:
    """The factory ``--candidate examples.adapter:make_engine`` names."""
    return LatencyAdapter(start_latency)
