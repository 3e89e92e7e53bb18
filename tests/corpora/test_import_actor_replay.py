"""Imported real traces replay to a terminal state on the actor engine (``engines.actor``), and agree
with the legacy engine on what runs.

The actor engine is cheap (measured, seed 1: all 15 Maestro samples 0.7 s CPU, Argo 0.1 s, Nextflow
0.3 s, 31 WfInstances 5.7 s, 1,679 Alibaba jobs 13.5 s), so only the whole-folder WfInstances and
Alibaba replays are ``slow``, and the comparison with legacy (~25 s wall per seed, legacy's cost).
"""

from __future__ import annotations

import pytest

from corpora.importers import ImportOptions
from corpora.model import Trace
from engines.actor import ActorEngine
from engines.api import ExecutionRecord, ReplayOptions, RunExecution
from engines.legacy import LegacyEngine
from tests.corpora._import_helpers import SHARED, import_all

_TERMINAL = {"SUCCEEDED", "FAILED", "TIMED_OUT", "STOPPED"}
_SKIP = pytest.mark.skipif(
    not SHARED.is_dir(), reason=f"real corpora not found at {SHARED} (../shared/corpora)"
)
_COSTLY_ON_LEGACY = "sample-nested-subworkflow-foreach-wf"


def _replay_on_actor(trace: Trace) -> ExecutionRecord:
    record = ActorEngine().replay(trace, ReplayOptions(seed=1))
    assert record.error is None, (trace.trace_id, record.error)
    for run in record.runs:
        assert run.status in _TERMINAL, (trace.trace_id, run.status)
        assert not run.stuck, trace.trace_id
        assert not any(a.unrecorded for a in run.attempts), trace.trace_id
    return record


def _traces(source: str, folder: str, options: ImportOptions | None = None) -> list[Trace]:
    items = import_all(source, SHARED / folder, options=options or ImportOptions())
    return [item.trace for item in items if item.trace is not None]


def _launched(run: RunExecution) -> tuple[str, list[tuple[str, int, str]]]:
    return run.status, sorted((a.path, a.attempt, a.status) for a in run.attempts)


@pytest.mark.corpora
@_SKIP
class TestRealTracesOnActor:
    @pytest.mark.parametrize(("source", "count"), [("maestro", 15), ("argo", 3), ("nextflow", 1)])
    def test_traces_end_terminal(self, source: str, count: int) -> None:
        """Every imported Maestro, Argo and Nextflow trace ends terminal on actor, with no unrecorded attempt."""
        traces = _traces(source, source)
        assert len(traces) == count
        for trace in traces:
            _replay_on_actor(trace)

    @pytest.mark.slow
    @pytest.mark.parametrize("seed", [0, 1])
    def test_maestro_samples_launch_what_legacy_launches(self, seed: int) -> None:
        """With the default race margin and a 15 % failure rate, actor and legacy run the same attempts with
        the same statuses on every Maestro sample (but the one costing 27 s on legacy)."""
        options = ImportOptions(seed=seed, failure_rate=0.15)
        for trace in _traces("maestro", "maestro", options):
            if trace.trace_id.endswith(_COSTLY_ON_LEGACY):
                continue
            actor = _replay_on_actor(trace).runs[0]
            legacy = LegacyEngine().replay(trace, ReplayOptions(seed=1)).runs[0]
            assert _launched(actor) == _launched(legacy), trace.trace_id

    def test_alibaba_sample_succeeds(self) -> None:
        """Every 50th Alibaba job succeeds on actor."""
        for trace in _traces("alibaba", "alibaba")[::50]:
            assert _replay_on_actor(trace).runs[0].status == "SUCCEEDED", trace.trace_id


@pytest.mark.corpora
@pytest.mark.slow
@_SKIP
class TestRealTracesOnActorSlow:
    def test_all_wfinstances_succeed_no_faster_than_the_critical_path(self) -> None:
        """All 31 WfInstances succeed on actor and take at least their longest task."""
        traces = _traces("wfformat", "wfinstances")
        assert len(traces) == 31
        for trace in traces:
            run = _replay_on_actor(trace).runs[0]
            assert run.status == "SUCCEEDED", trace.trace_id
            assert run.ended_at is not None
            assert run.started_at is not None
            assert run.ended_at - run.started_at >= max(a.duration for a in trace.runs[0].attempts)

    def test_all_alibaba_jobs_succeed(self) -> None:
        """All 1,679 Alibaba jobs succeed on actor."""
        traces = _traces("alibaba", "alibaba")
        assert len(traces) == 1679
        for trace in traces:
            assert _replay_on_actor(trace).runs[0].status == "SUCCEEDED", trace.trace_id
