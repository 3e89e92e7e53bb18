"""Live mode (real clock, shell and sleep runtimes, a SQLite file) and capture of what it ran."""

from __future__ import annotations

from pathlib import Path

import pytest

from corpora.model import (
    Backoff,
    BackoffType,
    Param,
    RetryPolicy,
    Step,
    StepType,
    Transition,
    WorkflowDefinition,
)
from engines.api import ExecutionRecord, ReplayOptions
from engines.legacy import LegacyConfig, LegacyEngine
from engines.legacy.capture import CaptureError, capture_traces
from engines.legacy.live import live_trace, run_live
from shadow.compare import normalize_record

pytestmark = pytest.mark.live

# Short callbacks keep live tests quick; the schedule's shape (poll, callbacks, reload) is unchanged.
QUICK = LegacyConfig(poll_interval=0.01, default_callback=0.02, status_callbacks={}, first_polling_window=1.0)


def shell_sleep_chain(workflow_id: str, n: int, *, sleep: float = 0.02) -> WorkflowDefinition:
    """``n`` steps in a chain alternating SLEEP and SHELL (each shell step echoes its index)."""
    steps = []
    for i in range(n):
        nxt = (Transition(f"s{i + 1}"),) if i + 1 < n else ()
        if i % 2:
            steps.append(
                Step(
                    f"s{i}",
                    StepType.SHELL,
                    params={"command": Param(value=f"echo step-{i}")},
                    transitions=nxt,
                )
            )
        else:
            steps.append(
                Step(f"s{i}", StepType.SLEEP, params={"sleep_seconds": Param(value=sleep)}, transitions=nxt)
            )
    return WorkflowDefinition(workflow_id, tuple(steps))


def failing_shell(workflow_id: str) -> WorkflowDefinition:
    """One shell step exiting 3, retried once after a 1 s fixed backoff, then a step never reached."""
    policy = RetryPolicy(
        error_retry_limit=1, backoff=Backoff(BackoffType.FIXED_BACKOFF, error_retry_backoff_in_secs=1)
    )
    return WorkflowDefinition(
        workflow_id,
        (
            Step("boom", StepType.SHELL, params={"command": Param(value="echo no >&2; exit 3")},
                 transitions=(Transition("after"),), retry_policy=policy),
            Step("after", StepType.NOOP),
        ),
    )  # fmt: skip


def as_record(runs: tuple, trace_id: str) -> ExecutionRecord:  # type: ignore[type-arg]
    return ExecutionRecord(trace_id, "legacy-live", "1", 0, tuple(r for r in runs))


class TestLiveMode:
    def test_chain_of_shell_and_sleep_steps_runs_to_success(self, tmp_path: Path) -> None:
        """A 10-step shell/sleep chain runs for real on a SQLite file and every step succeeds in order."""
        trace = live_trace(shell_sleep_chain("live-chain", 10))
        result = run_live([trace], store_path=tmp_path / "legacy.db", config=QUICK, timeout=60)
        assert result.finished
        (run,) = result.runs
        assert run.status == "SUCCEEDED"
        assert [a.path for a in sorted(run.attempts, key=lambda a: a.started_at or 0)] == [
            f"s{i}" for i in range(10)
        ]
        shell = next(a for a in run.attempts if a.path == "s3")
        assert shell.outputs["stdout"] == "step-3\n"
        assert len(result.start_overheads()) == 10
        assert result.counters["store_commits"] > 0

    def test_default_schedule_is_seconds_per_step(self, tmp_path: Path) -> None:
        """With Maestro's default callbacks a live step waits seconds to start, as in production."""
        trace = live_trace(shell_sleep_chain("live-default", 2))
        result = run_live([trace], store_path=tmp_path / "legacy.db", timeout=60)
        assert result.finished
        assert min(result.start_overheads()) > 3.0

    def test_timeout_reports_unfinished(self, tmp_path: Path) -> None:
        """A session whose runs cannot finish in time says so and marks the run stuck."""
        trace = live_trace(shell_sleep_chain("live-slow", 1, sleep=30))
        result = run_live([trace], store_path=tmp_path / "legacy.db", config=QUICK, timeout=0.5)
        assert not result.finished
        assert result.runs[0].stuck


class TestCapture:
    def test_capture_then_replay_gives_the_same_outcomes(self, tmp_path: Path) -> None:
        """Workflows run live, captured from the store and replayed in virtual time end the same way."""
        db = tmp_path / "legacy.db"
        traces = [
            live_trace(shell_sleep_chain("cap-chain", 6), runs=2),
            live_trace(failing_shell("cap-fail")),
        ]
        result = run_live(traces, store_path=db, config=QUICK, timeout=60)
        assert result.finished
        captured = {t.trace_id: t for t in capture_traces(db)}
        assert sorted(captured) == ["cap-chain", "cap-fail"]
        assert [len(r.attempts) for r in captured["cap-chain"].runs] == [6, 6]
        fail_run = captured["cap-fail"].runs[0]
        assert [a.outcome.value for a in fail_run.attempts] == ["user_error", "user_error"]
        assert fail_run.observed is not None
        assert fail_run.observed.status == "FAILED"
        live_by_trace = {"cap-chain": result.runs[:2], "cap-fail": result.runs[2:]}
        for trace_id, trace in captured.items():
            replayed = LegacyEngine().replay(trace, ReplayOptions(seed=7))
            assert normalize_record(replayed) == normalize_record(
                as_record(live_by_trace[trace_id], trace_id)
            )

    def test_capture_of_a_missing_store_is_a_typed_error(self, tmp_path: Path) -> None:
        """Capturing a path with no store says what to pass instead."""
        with pytest.raises(CaptureError, match="no legacy store"):
            list(capture_traces(tmp_path / "absent.db"))
