"""The actor engine's parts: messages, group hashing, the strategy desk, delta persistence, mailboxes,
the outside world."""

from __future__ import annotations

import subprocess
import sys

import pytest

from corpora.generator import generate_trace
from corpora.model import RunStrategy, RunStrategyRule
from engines.actor.desk import RunDesk
from engines.actor.group import group_of
from engines.actor.messages import RunEnded, StartFlow, StartTask, StopFlow, decode_message, encode_message
from engines.actor.persist import RunCodec, decode_run
from engines.actor.world import TraceWorld
from engines.api import EngineError, ReplayOptions
from engines.clock import VirtualClock
from engines.core.definition import compile_trace
from engines.core.effects import RuntimeReport
from engines.core.oracle import _Replay
from engines.core.state import RunState
from engines.core.statuses import WorkflowStatus
from engines.core.testing import T0, make_trace, rec, step
from engines.runtimes import ReplayRuntime
from engines.store.records import WorkflowInstance
from engines.store.sqlite import SqliteStore
from engines.testing import VirtualTimeEnvironment


class TestMessages:
    @pytest.mark.parametrize(
        "message",
        [StartFlow("w|000001"), StopFlow("w|000002"), RunEnded("w|000003"),
         StartTask("w|000001", "fan[2]/x", 3, "NOOP", {"a": [1, "b"], "c": None})],
    )  # fmt: skip
    def test_round_trip(self, message: object) -> None:
        """Every durable message survives its outbox text unchanged."""
        assert decode_message(encode_message(message)) == message  # type: ignore[arg-type]

    def test_garbage_is_a_typed_error(self) -> None:
        """A row that is not an actor message raises EngineError saying what to do."""
        with pytest.raises(EngineError, match="delete the row"):
            decode_message('{"kind": "Explode"}')


class TestGroups:
    def test_stable_across_processes(self) -> None:
        """The group of a run is the same in another interpreter (no salted hash())."""
        here = [group_of("wf", i, f"r{i}", 8) for i in range(20)]
        code = "from engines.actor.group import group_of; print([group_of('wf', i, f'r{i}', 8) for i in range(20)])"
        out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True,
                             env={"PYTHONHASHSEED": "123", "PATH": ""}, cwd=".")  # fmt: skip
        assert out.stdout.strip() == str(here)
        assert len(set(here)) > 3


def _row(i: int, status: str = "CREATED") -> WorkflowInstance:
    state = RunState("t", f"r{i}", i, WorkflowStatus.CREATED, T0 + i, {}, {})
    return WorkflowInstance(f"t|{i:06d}", "t", f"r{i}", status, RunCodec().run_text(state), group_id=i % 4)


class TestDesk:
    def test_sequential_admits_one_at_a_time(self) -> None:
        """SEQUENTIAL: the first trigger is admitted (IN_PROGRESS + StartFlow), the second waits."""
        store = SqliteStore()
        written: list[tuple[int, object]] = []

        def add(group: int, message: object, now: float) -> int:
            written.append((group, message))
            return len(written)

        desk = RunDesk(store, add, lambda row: None)
        strategy = RunStrategy(RunStrategyRule.SEQUENTIAL)
        desk.trigger(_row(1), strategy, T0)
        desk.trigger(_row(2), strategy, T0 + 1)
        statuses = [r.status for r in store.runs()]
        assert statuses == ["IN_PROGRESS", "CREATED"]
        assert written == [(1, StartFlow("t|000001"))]

    def test_first_only_stops_the_queued_run(self) -> None:
        """FIRST_ONLY: a trigger while a run is live is written STOPPED and reported terminal."""
        store = SqliteStore()
        ended: list[str] = []
        desk = RunDesk(store, lambda g, m, now: 1, lambda row: ended.append(row.run_key))
        strategy = RunStrategy(RunStrategyRule.FIRST_ONLY)
        desk.trigger(_row(1), strategy, T0)
        _, stopped = desk.trigger(_row(2), strategy, T0 + 1)
        assert [r.run_key for r in stopped] == ["t|000002"]
        assert store.get_run("t|000002").status == "STOPPED"  # type: ignore[union-attr]
        assert decode_run(store.get_run("t|000002").state)[0].status is WorkflowStatus.STOPPED  # type: ignore[union-attr]


class TestPersistence:
    def test_rows_rebuild_the_exact_state(self) -> None:
        """A finished run written as a run row plus step rows decodes to an equal RunState."""
        trace = generate_trace(7, 1)
        states = _Replay(compile_trace(trace), ReplayOptions()).run()
        for s in states:
            codec = RunCodec()
            empty = RunState(s.trace_id, s.run_id, s.run_index, s.status, s.triggered_at, {}, {})
            rows = codec.step_rows("k", s, empty, 0.0)
            assert decode_run(codec.run_text(s), rows)[0] == s

    def test_only_changed_attempts_are_written(self) -> None:
        """A second commit of the same state writes no step row at all."""
        s = _Replay(compile_trace(generate_trace(7, 0)), ReplayOptions()).run()[0]
        codec = RunCodec()
        empty = RunState(s.trace_id, s.run_id, s.run_index, s.status, s.triggered_at, {}, {})
        assert codec.step_rows("k", s, empty, 0.0)
        assert codec.step_rows("k", s, s, 1.0) == []


class TestWorld:
    def test_an_attempt_starts_once(self) -> None:
        """Ensuring an attempt twice starts it once; both listeners hear its recorded result."""
        trace = make_trace([step("a")], [rec("a", 1, "succeeded", 4, {"x": 1})])
        heard: list[tuple[float, RuntimeReport]] = []

        async def main() -> None:
            clock = VirtualClock.current()
            world = TraceWorld(ReplayRuntime(trace), clock)
            assert world.ensure("r1", "a", 1, {}, None, lambda r: heard.append((clock.now(), r)))
            assert not world.ensure("r1", "a", 1, {}, None, lambda r: heard.append((clock.now(), r)))
            await clock.sleep(10)
            assert world.starts == 1

        with VirtualTimeEnvironment(start=T0) as env:
            env.run(main())
        assert [(t - T0, r.outcome) for t, r in heard] == [(4.0, "succeeded"), (4.0, "succeeded")]

    def test_killed_attempt_reports_nothing(self) -> None:
        """A terminated attempt never reports, so a late result cannot change a stopped step."""
        trace = make_trace([step("a")], [rec("a", 1, "succeeded", 4)])
        heard: list[RuntimeReport] = []

        async def main() -> None:
            clock = VirtualClock.current()
            world = TraceWorld(ReplayRuntime(trace), clock)
            world.ensure("r1", "a", 1, {}, None, heard.append)
            world.kill("r1", "a", 1)
            await clock.sleep(10)

        with VirtualTimeEnvironment(start=T0) as env:
            env.run(main())
        assert heard == []
