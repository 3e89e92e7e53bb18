"""Regression: an async subworkflow child (``sync: false``) that outlives its parent's run.

In Maestro an async child is an independent workflow instance: it goes on after the parent's run
ends, and the canonical record lists its attempts under the root run (``call/`` prefix). The actor
engine once tore the flow down at the root run's end, leaving the child's attempt RUNNING or never
starting the rest of the child. The reference executor (CoreOracle) defines the outcome.
"""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from corpora.model import RetryPolicy, Run, Step, StepType, Subworkflow, Trace, Transition, WorkflowDefinition
from engines.actor import ActorEngine
from engines.actor.group import group_of
from engines.actor.live import run_live
from engines.actor.persist import RunCodec, decode_run
from engines.api import ExecutionRecord, ReplayOptions
from engines.core.definition import compile_trace
from engines.core.oracle import _Replay
from engines.core.state import RunState
from engines.core.testing import T0, make_trace, oracle_record, rec, step
from tests.engines._actor_support import outcome

CORPORA = Path(__file__).resolve().parents[3] / "shared" / "corpora"  # ../shared/corpora of the repo
OPTIONS = ReplayOptions(seed=5)
CHILD_LONG = 900.0  # the child's first step runs long after the parent's run has ended


def _async_trace(*, runs: tuple[Run, ...] | None = None) -> Trace:
    """``before -> call (async child: c1 -> c2 -> c3) -> after``; c2 fails twice before succeeding."""
    child = WorkflowDefinition(
        id="child",
        steps=(step("c1", "c2"), step("c2", "c3", retry=RetryPolicy(error_retry_limit=3)), step("c3")),
    )
    call = Step(id="call", type=StepType.SUBWORKFLOW, transitions=(Transition("after"),),
                subworkflow=Subworkflow("child", sync=False))  # fmt: skip
    attempts = (
        rec("before", 1, "succeeded", 5), rec("after", 1, "succeeded", 5),
        rec("call/c1", 1, "succeeded", CHILD_LONG), rec("call/c2", 1, "user_error", 10),
        rec("call/c2", 2, "user_error", 10), rec("call/c2", 3, "succeeded", 10), rec("call/c3", 1, "succeeded", 20),
    )  # fmt: skip
    return make_trace([step("before", "call"), call, step("after")], attempts, runs=runs,
                      subworkflows={"child": child})  # fmt: skip


def _child_paths(record: ExecutionRecord) -> list[tuple[str, int, str]]:
    return sorted(
        (a.path, a.attempt, a.status) for a in record.runs[0].attempts if a.path.startswith("call/")
    )


class TestAsyncChildOutlivesParent:
    def test_child_runs_to_its_end_after_the_parent_run_ended(self) -> None:
        """The actor records every attempt of the async child to its end, exactly as the oracle."""
        trace = _async_trace()
        expected = oracle_record(trace, OPTIONS)
        got = ActorEngine().replay(trace, OPTIONS)
        assert outcome(got) == outcome(expected)
        run = got.runs[0]
        assert (run.status, run.stuck) == ("SUCCEEDED", False)
        assert _child_paths(got) == [
            ("call/c1", 1, "SUCCEEDED"), ("call/c2", 1, "USER_FAILED"), ("call/c2", 2, "USER_FAILED"),
            ("call/c2", 3, "SUCCEEDED"), ("call/c3", 1, "SUCCEEDED"),
        ]  # fmt: skip
        assert all(a.ended_at is not None for a in run.attempts)
        assert run.ended_at is not None
        last_child_end = max(a.ended_at or 0.0 for a in run.attempts if a.path.startswith("call/"))
        assert run.ended_at < last_child_end  # the run ended first; the child went on

    def test_next_run_waits_for_the_root_run_only(self) -> None:
        """Under SEQUENTIAL the queued second run starts at the first run's end, not its child's."""
        first = _async_trace()
        runs = (first.runs[0], Run("r2", T0 + 1.0, attempts=first.runs[0].attempts))
        trace = _async_trace(runs=runs)
        expected = oracle_record(trace, OPTIONS)
        got = ActorEngine().replay(trace, OPTIONS)
        assert outcome(got) == outcome(expected)
        r1, r2 = got.runs
        assert r1.ended_at is not None
        assert r2.started_at is not None
        child_end = max(a.ended_at or 0.0 for a in r1.attempts if a.path.startswith("call/"))
        assert r1.ended_at <= r2.started_at < child_end

    def test_crash_of_the_owner_while_only_the_child_runs(self) -> None:
        """3 nodes; the run's owner crashes after the run ended while its async child still runs: the
        group's new owner resumes the child from the detached-work marker and finishes it."""
        trace = _async_trace()
        engine = ActorEngine(nodes=3)
        owner = group_of(trace.trace_id, 1, "r1", engine.config.groups) % 3
        crashed = ActorEngine(nodes=3, faults=(f"crash:{owner}@300",))
        got = crashed.replay(trace, OPTIONS)
        assert outcome(got) == outcome(oracle_record(trace, OPTIONS))
        cluster = crashed.last_cluster
        assert cluster is not None
        assert any(t.generation == 2 for t in cluster.takeovers)
        assert got.counters["flows_adopted"] >= 1
        assert got.counters["runtime_starts"] == got.counters["attempts"]

    @pytest.mark.parametrize(
        "fault", ["drop:StartTask#4", "drop:RuntimeDone#3", "dup:StartTask#4", "dup:RuntimeDone#4"]
    )
    def test_message_and_store_faults_after_the_run_ended(self, fault: str) -> None:
        """A lost, repeated or failed delivery to the child after its parent's run ended is repaired
        (sweeper, RUNNING ping, retry) and no child attempt runs twice."""
        trace = _async_trace()
        got = ActorEngine(faults=(fault,)).replay(trace, OPTIONS)
        assert got.counters["faults_fired"] == 1
        assert outcome(got) == outcome(oracle_record(trace, OPTIONS))
        assert got.counters["runtime_starts"] == got.counters["attempts"]

    def test_each_failed_commit_is_retried(self) -> None:
        """Whichever store commit fails (the run's end with its detached-work marker included), the
        writer retries and the outcome holds."""
        trace = _async_trace()
        expected = outcome(oracle_record(trace, OPTIONS))
        for n in range(1, 41):
            got = ActorEngine(faults=(f"store-fail:commit#{n}",)).replay(trace, OPTIONS)
            assert outcome(got) == expected, f"store-fail:commit#{n}"
            assert got.counters["runtime_starts"] == got.counters["attempts"]

    def test_paused_owner_loses_the_child_to_another_node(self) -> None:
        """3 nodes; the owner pauses past its lease while only the child runs: another node takes the
        group and finishes the child, the paused node's late writes are fenced off."""
        trace = _async_trace()
        owner = group_of(trace.trace_id, 1, "r1", ActorEngine().config.groups) % 3
        engine = ActorEngine(nodes=3, faults=(f"pause:{owner}@100+200",))
        got = engine.replay(trace, OPTIONS)
        assert outcome(got) == outcome(oracle_record(trace, OPTIONS))
        assert engine.last_cluster is not None
        assert any(t.generation == 2 and t.node != f"node-{owner}" for t in engine.last_cluster.takeovers)


@pytest.mark.live
class TestLive:
    def test_two_live_nodes_finish_the_child_after_the_run(self, tmp_path: Path) -> None:
        """Real clock, two in-process nodes on a WAL file: the async child (0.4 s) that outlives its
        parent's run (0.1 s) is recorded to its end, as by the oracle."""
        child = WorkflowDefinition(id="child", steps=(step("c1", "c2"), step("c2")))
        call = Step(id="call", type=StepType.SUBWORKFLOW, transitions=(Transition("after"),),
                    subworkflow=Subworkflow("child", sync=False))  # fmt: skip
        attempts = (rec("before", 1, "succeeded", 0.05), rec("after", 1, "succeeded", 0.05),
                    rec("call/c1", 1, "succeeded", 0.4), rec("call/c2", 1, "succeeded", 0.05))  # fmt: skip
        trace = make_trace([step("before", "call"), call, step("after")], attempts, subworkflows={"child": child},
                           trace_id="live-async")  # fmt: skip
        records, counters = asyncio.run(
            run_live([trace], store_path=str(tmp_path / "s.db"), nodes=2, timeout=30)
        )
        assert outcome(records[0]) == outcome(oracle_record(trace, ReplayOptions()))
        assert counters["runtime_starts"] == counters["attempts"] == 4


class TestCodecAfterAFailedWrite:
    def test_rows_of_a_rolled_back_write_are_returned_again(self) -> None:
        """Step rows whose transaction failed are written by the retry; committed ones are not."""
        s = _Replay(compile_trace(_async_trace()), OPTIONS).run()[0]
        empty = RunState(s.trace_id, s.run_id, s.run_index, s.status, s.triggered_at, {}, {})
        codec = RunCodec()
        first = codec.step_rows("k", s, empty, 0.0)
        codec.rollback()
        again = codec.step_rows("k", s, empty, 1.0)
        assert [(r.path, r.attempt, r.state) for r in again] == [(r.path, r.attempt, r.state) for r in first]
        assert decode_run(codec.run_text(s), again)[0] == s
        codec.commit()
        assert codec.step_rows("k", s, empty, 2.0) == []


def _maestro_sample(seed: int, race_margin: float) -> Trace:
    if not (CORPORA / "maestro").is_dir():
        pytest.skip(
            f"the public corpora are absent: expected {CORPORA / 'maestro'} (see ../shared/corpora/README)"
        )
    from corpora.importers import IMPORTERS, ImportOptions, run_import

    (path,) = (CORPORA / "maestro").glob("*samples__sample-subworkflow-wf.json")
    (item,) = run_import(IMPORTERS["maestro"], [path], ImportOptions(seed=seed, failure_rate=0.15,
                                                                     race_margin=race_margin))  # fmt: skip
    assert item.trace is not None, item.error
    return item.trace


@pytest.mark.corpora
class TestMaestroSubworkflowSample:
    @pytest.mark.parametrize(
        ("seed", "margin"), [(9, 120.0), (3, 0.0)], ids=["seed9-margin120", "seed3-margin0"]
    )
    def test_actor_equals_oracle_on_imported_sample(self, seed: int, margin: float) -> None:
        """The imported Maestro subworkflow sample (async child outliving the run) replays as the oracle."""
        trace = _maestro_sample(seed, margin)
        options = ReplayOptions(seed=0)
        got = ActorEngine().replay(trace, options)
        assert outcome(got) == outcome(oracle_record(trace, options))
        assert all(a.status != "RUNNING" and a.ended_at is not None for r in got.runs for a in r.attempts)
