"""Properties over generated DAGs, outcomes and policies (hypothesis): the core always terminates,
respects causality and never exceeds retry limits; reloading state from JSON never changes a record."""

from __future__ import annotations

import itertools
from collections import defaultdict

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from corpora.model import (
    Backoff,
    BackoffType,
    FailureMode,
    Foreach,
    Outcome,
    Param,
    RecordedAttempt,
    RetryPolicy,
    Run,
    Step,
    StepType,
    Subworkflow,
    Trace,
    WorkflowDefinition,
)
from engines.api import ReplayOptions
from engines.core.definition import CompiledTrace, CompiledWorkflow, compile_trace
from engines.core.oracle import CoreOracle
from engines.core.testing import T0, make_trace, step

OUTCOMES = [o.value for o in Outcome]


@st.composite
def traces(draw: st.DrawFn) -> Trace:
    n = draw(st.integers(1, 7))
    steps: list[Step] = []
    attempts: list[RecordedAttempt] = []
    subs: dict[str, WorkflowDefinition] = {}
    for i in range(n):
        targets = draw(st.lists(st.integers(i + 1, n - 1), unique=True, max_size=3)) if i < n - 1 else []
        to = [(f"s{j}", draw(st.sampled_from(["true", "false", "o >= 1", "o < 1"]))) for j in targets]
        retry = RetryPolicy(
            error_retry_limit=draw(st.integers(0, 2)),
            platform_retry_limit=draw(st.integers(0, 2)),
            timeout_retry_limit=draw(st.integers(0, 1)),
            backoff=draw(
                st.sampled_from(
                    [None, Backoff(type=BackoffType.FIXED_BACKOFF, error_retry_backoff_in_secs=5)]
                )
            ),
        )
        mode = draw(st.sampled_from([None, *FailureMode]))
        timeout = draw(st.sampled_from([None, None, 20, "45s"]))
        kind = draw(st.integers(0, 7)) if i > 0 else 7
        if kind == 1:
            child_steps = (step("c0", "c1"), step("c1")) if draw(st.booleans()) else (step("c0"),)
            subs[f"child{i}"] = WorkflowDefinition(
                f"child{i}", child_steps, timeout=draw(st.sampled_from([None, 50]))
            )
            steps.append(
                step(
                    f"s{i}",
                    *to,
                    type=StepType.SUBWORKFLOW,
                    subworkflow=Subworkflow(f"child{i}"),
                    failure_mode=mode,
                )
            )
            paths = [f"s{i}/{c.id}" for c in child_steps]
        elif kind == 0:
            width = draw(st.integers(0, 3))
            fe = Foreach(
                {"k": Param(value=list(range(width)))},
                (step("x"),),
                concurrency=draw(st.sampled_from([None, 1, 2])),
            )
            steps.append(
                step(f"s{i}", *to, type=StepType.FOREACH, foreach=fe, failure_mode=mode, timeout=timeout)
            )
            paths = [f"s{i}[{k}]/x" for k in range(width)]
        else:
            steps.append(step(f"s{i}", *to, retry=retry, failure_mode=mode, timeout=timeout))
            paths = [f"s{i}"]
        for path in paths:
            for a in range(1, draw(st.integers(1, 4)) + 1):
                outcome = draw(st.sampled_from(OUTCOMES))
                dur = draw(st.integers(0, 60))
                attempts.append(
                    RecordedAttempt(path, a, Outcome(outcome), float(dur), {"o": draw(st.integers(0, 2))})
                )
    run_count = draw(st.integers(1, 2))
    runs = [Run(f"r{k}", T0 + 30 * k, attempts=tuple(attempts)) for k in range(run_count)]
    return make_trace(steps, runs=runs, timeout=draw(st.sampled_from([None, 90, 600])), subworkflows=subs)


def _workflow_of(ct: CompiledTrace, prefix: str) -> CompiledWorkflow:
    """The compiled workflow a scope prefix (``s1/``, ``s2[0]/``) runs."""
    wf = ct.root
    for segment in prefix.split("/")[:-1]:
        body = wf.steps[segment.split("[")[0]].body
        assert body is not None
        wf = ct.workflows[body]
    return wf


SETTINGS = settings(max_examples=120, deadline=None, suppress_health_check=[HealthCheck.too_slow])


class TestProperties:
    @SETTINGS
    @given(traces())
    def test_every_run_terminates(self, trace: Trace) -> None:
        """Every started run reaches a terminal status; none is stuck."""
        record = CoreOracle().replay(trace, ReplayOptions(time_limit=30 * 24 * 3600.0))
        for run in record.runs:
            assert not run.stuck
            assert run.status in {"SUCCEEDED", "FAILED", "TIMED_OUT", "STOPPED"} or run.started_at is None

    @SETTINGS
    @given(traces())
    def test_no_step_starts_before_its_predecessors_end(self, trace: Trace) -> None:
        """Every attempt is created at or after the end of each predecessor's last attempt (same workflow instance)."""
        ct = compile_trace(trace)
        for run in CoreOracle().replay(trace, ReplayOptions()).runs:
            ended: dict[str, float] = {}
            for a in run.attempts:
                if a.ended_at is not None:
                    ended[a.path] = max(ended.get(a.path, a.ended_at), a.ended_at)
            for a in run.attempts:
                cut = a.path.rfind("/") + 1
                prefix, sid = a.path[:cut], a.path[cut:]
                wf = _workflow_of(ct, prefix)
                for pred in wf.steps[sid].predecessors:
                    assert prefix + pred in ended, f"{a.path} created but predecessor {pred} never ended"
                    assert a.created_at is not None
                    assert a.created_at >= ended[prefix + pred]

    @SETTINGS
    @given(traces())
    def test_attempts_never_exceed_limits(self, trace: Trace) -> None:
        """Attempts per step path <= 1 + error + platform + timeout limits, numbered 1..n, each after the previous ended."""
        for run in CoreOracle().replay(trace, ReplayOptions()).runs:
            by_path: dict[str, list] = defaultdict(list)  # type: ignore[type-arg]
            for a in run.attempts:
                by_path[a.path].append(a)
            for path, atts in by_path.items():
                policy = atts[0].config["retry_policy"]
                limit = (
                    1
                    + policy["error_retry_limit"]
                    + policy["platform_retry_limit"]
                    + policy["timeout_retry_limit"]
                )
                assert len(atts) <= limit, path
                assert [a.attempt for a in atts] == list(range(1, len(atts) + 1))
                for prev, nxt in itertools.pairwise(atts):
                    assert prev.ended_at is not None
                    assert nxt.created_at >= prev.ended_at
                    assert prev.status in {"USER_FAILED", "PLATFORM_FAILED", "TIMEOUT_FAILED"}

    @settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
    @given(traces())
    def test_json_reload_is_invisible(self, trace: Trace) -> None:
        """Reloading the run state from JSON before every call yields exactly the same record."""
        plain = CoreOracle().replay(trace, ReplayOptions())
        reloaded = CoreOracle(reload_state=True).replay(trace, ReplayOptions())
        assert reloaded.runs == plain.runs


class TestDeterminism:
    def test_record_independent_of_hash_seed(self) -> None:
        """The same trace replays to byte-identical records under different PYTHONHASHSEEDs (no set-order leak)."""
        import json
        import os
        import subprocess
        import sys

        script = (
            "import json;from corpora.generator import generate_corpus;from engines.core.oracle import CoreOracle;"
            "from engines.api import ReplayOptions;"
            "print(json.dumps([CoreOracle().replay(t, ReplayOptions()).to_dict() for t in generate_corpus(3, 6)], sort_keys=True))"
        )
        outputs = []
        for seed in ("1", "2"):
            env = {**os.environ, "PYTHONHASHSEED": seed}
            done = subprocess.run(
                [sys.executable, "-c", script], capture_output=True, text=True, env=env, check=True
            )
            outputs.append(json.loads(done.stdout))
        assert outputs[0] == outputs[1]
