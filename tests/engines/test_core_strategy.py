"""Run strategies across the runs of one workflow (§6): planning functions and oracle timelines."""

from __future__ import annotations

from corpora.model import Run, RunStrategy, RunStrategyRule
from engines.core.statuses import WorkflowStatus as W
from engines.core.strategy import RunSlot, concurrency_of, on_insert, on_run_end
from engines.core.testing import T0, make_trace, oracle_record, rec, step

R = RunStrategyRule


def runs(*specs: tuple[str, float, str, float]) -> list[Run]:
    """(run_id, trigger offset, outcome of step a, duration)."""
    return [Run(rid, T0 + off, attempts=(rec("a", 1, outcome, dur),)) for rid, off, outcome, dur in specs]


def replay(
    rule: RunStrategyRule, specs: list[Run], concurrency: int | None = None
) -> dict[str, tuple[str, float | None, float | None, bool]]:
    rec_ = oracle_record(make_trace([step("a")], runs=specs, strategy=RunStrategy(rule, concurrency)))
    return {r.run_id: (r.status, r.started_at, r.ended_at, r.stuck) for r in rec_.runs}


class TestPlanning:
    def test_concurrency_defaults(self) -> None:
        """workflow_concurrency: 20 for PARALLEL, 1 for others; 0 pauses dequeuing."""
        assert concurrency_of(RunStrategy(R.PARALLEL)) == 20
        assert concurrency_of(RunStrategy(R.SEQUENTIAL, 5)) == 1
        assert concurrency_of(RunStrategy(R.PARALLEL, 0)) == 0

    def test_first_only_insert(self) -> None:
        """FIRST_ONLY inserts a new run as STOPPED while another is not terminal."""
        slots = [RunSlot("r1", W.IN_PROGRESS, True), RunSlot("r2", W.CREATED, False)]
        assert on_insert(RunStrategy(R.FIRST_ONLY), slots, "r2").stop_queued == ("r2",)

    def test_strict_sequential_blocks_on_failed(self) -> None:
        """STRICT_SEQUENTIAL dequeues nothing while any run is FAILED."""
        slots = [RunSlot("r1", W.FAILED, True), RunSlot("r2", W.CREATED, False)]
        assert on_run_end(RunStrategy(R.STRICT_SEQUENTIAL), slots).start == ()
        assert on_run_end(RunStrategy(R.SEQUENTIAL), slots).start == ("r2",)


class TestTimelines:
    def test_sequential_queues(self) -> None:
        """SEQUENTIAL: a run triggered while another runs starts when it ends."""
        got = replay(R.SEQUENTIAL, runs(("r1", 0, "succeeded", 100), ("r2", 10, "succeeded", 5)))
        assert got == {
            "r1": ("SUCCEEDED", T0, T0 + 100, False),
            "r2": ("SUCCEEDED", T0 + 100, T0 + 105, False),
        }

    def test_parallel_concurrency(self) -> None:
        """PARALLEL with concurrency 2: the third run starts when the first of two ends."""
        got = replay(
            R.PARALLEL,
            runs(("r1", 0, "succeeded", 50), ("r2", 0, "succeeded", 20), ("r3", 1, "succeeded", 5)),
            2,
        )
        assert [got[r][1] for r in ("r1", "r2", "r3")] == [T0, T0, T0 + 20]

    def test_strict_sequential_failed_run_blocks(self) -> None:
        """STRICT_SEQUENTIAL: after a FAILED run the next never starts; it ends CREATED and not stuck."""
        got = replay(R.STRICT_SEQUENTIAL, runs(("r1", 0, "fatal_error", 10), ("r2", 5, "succeeded", 5)))
        assert got["r1"][0] == "FAILED"
        assert got["r2"] == ("CREATED", None, None, False)

    def test_strict_sequential_stopped_does_not_block(self) -> None:
        """STRICT_SEQUENTIAL: a TIMED_OUT run does not block the queue."""
        got = replay(R.STRICT_SEQUENTIAL, runs(("r1", 0, "timeout", 10), ("r2", 5, "succeeded", 5)))
        assert got["r2"] == ("SUCCEEDED", T0 + 10, T0 + 15, False)

    def test_first_only(self) -> None:
        """FIRST_ONLY: a run triggered while one runs is STOPPED at insert; a later one runs."""
        got = replay(
            R.FIRST_ONLY,
            runs(("r1", 0, "succeeded", 100), ("r2", 10, "succeeded", 5), ("r3", 200, "succeeded", 5)),
        )
        assert got["r2"] == ("STOPPED", None, T0 + 10, False)
        assert got["r3"] == ("SUCCEEDED", T0 + 200, T0 + 205, False)

    def test_last_only(self) -> None:
        """LAST_ONLY: the running run is stopped when a new one arrives, which then starts at once."""
        got = replay(R.LAST_ONLY, runs(("r1", 0, "succeeded", 100), ("r2", 10, "succeeded", 5)))
        assert got["r1"] == ("STOPPED", T0, T0 + 10, False)
        assert got["r2"] == ("SUCCEEDED", T0 + 10, T0 + 15, False)

    def test_last_only_displaces_queued(self) -> None:
        """LAST_ONLY: of two runs queued behind a running one, only the last survives."""
        trace_runs = runs(("r1", 0, "succeeded", 100), ("r2", 10, "succeeded", 5), ("r3", 10, "succeeded", 5))
        got = replay(R.LAST_ONLY, trace_runs)
        assert got["r2"][0] == "STOPPED"
        assert got["r3"] == ("SUCCEEDED", T0 + 10, T0 + 15, False)

    def test_paused_dequeue(self) -> None:
        """workflow_concurrency 0 pauses dequeuing: no run starts, none is stuck."""
        got = replay(R.PARALLEL, runs(("r1", 0, "succeeded", 1)), 0)
        assert got["r1"] == ("CREATED", None, None, False)

    def test_stuck_run(self) -> None:
        """A run still going past the time limit is reported stuck with its last status."""
        from engines.api import ReplayOptions

        trace = make_trace([step("a")], runs=runs(("r1", 0, "succeeded", 1000)))
        r = oracle_record(trace, ReplayOptions(time_limit=100)).runs[0]
        assert (r.status, r.stuck) == ("IN_PROGRESS", True)

    def test_run_failing_at_start_releases_queue(self) -> None:
        """A run whose workflow timeout is invalid fails at start, and the next queued run still starts."""
        from corpora.model import Param

        trace = make_trace(
            [step("a")],
            runs=[
                Run("r0", T0, attempts=(rec("a", 1, "succeeded", 10),)),
                Run("r1", T0 + 1, params={"t": "soon"}),
                Run("r2", T0 + 2, attempts=(rec("a", 1, "succeeded", 1),)),
            ],
            params={"t": Param(value="60")},
            timeout="$t",
        )
        got = {r.run_id: (r.status, r.started_at) for r in oracle_record(trace).runs}
        assert got == {"r0": ("SUCCEEDED", T0), "r1": ("FAILED", T0 + 10), "r2": ("SUCCEEDED", T0 + 10)}
