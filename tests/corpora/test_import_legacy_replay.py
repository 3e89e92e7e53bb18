"""Imported real traces replay to a terminal state on the legacy engine (``engines.legacy``).

The legacy engine reloads the whole run at every poll, so its replay cost grows with cycles x attempt
rows. Per-trace CPU was measured first (``/tmp`` script, 2026-11-28, shared 2-core machine): Maestro
samples <= 0.4 s except ``sample-nested-subworkflow-foreach-wf`` (205 attempts, 27 s); Argo <= 0.1 s;
the Nextflow run 14 s; Alibaba 62 s for the 1,678 smallest of the 1,679 jobs (max 2.8 s); WfInstances 0.1-8 s up to 303
tasks, 27 s for 1000genome-22ch (902 tasks) and 27.5 s for seismology-1000p (1,001 tasks; 95 s for all
31, ``benchmarks/bench_wfformat_makespan.py``). The default test replays the cheap ones (a fixed subset);
the rest is marked ``slow``.
"""

from __future__ import annotations

import pytest

from corpora.importers import ImportOptions
from corpora.model import Trace
from engines.api import ExecutionRecord, ReplayOptions
from engines.legacy import LegacyEngine
from tests.corpora._import_helpers import SHARED, import_all

_TERMINAL = {"SUCCEEDED", "FAILED", "TIMED_OUT", "STOPPED"}
_SKIP = pytest.mark.skipif(
    not SHARED.is_dir(), reason=f"real corpora not found at {SHARED} (../shared/corpora)"
)

#: WfInstances that replay on legacy in <= ~0.25 s CPU each (measured)
_CHEAP_WFINSTANCES = {
    "helloworld-chain-5-chameleon",
    "helloworld-forkjoin-10-chameleon",
    "scrnaseq-dirt02-001",
    "sarek-dirt02-001",
    "methylseq-dirt02-001",
    "hic-dirt02-001",
    "blast-chameleon-small-001",
    "fetchngs-dirt02-001",
}
_COSTLY_MAESTRO = "sample-nested-subworkflow-foreach-wf"
_ALIBABA_SAMPLE_EVERY = 50


def _replay_on_legacy(trace: Trace) -> ExecutionRecord:
    record = LegacyEngine().replay(trace, ReplayOptions(seed=1))
    assert record.error is None, (trace.trace_id, record.error)
    for run in record.runs:
        assert run.status in _TERMINAL, (trace.trace_id, run.status)
        assert not run.stuck, trace.trace_id
        assert not any(a.unrecorded for a in run.attempts), trace.trace_id
    return record


def _traces(source: str, folder: str) -> list[Trace]:
    items = import_all(source, SHARED / folder, options=ImportOptions())
    return [item.trace for item in items if item.trace is not None]


def _stem(trace: Trace) -> str:
    return trace.trace_id.split(":", 1)[1]


@pytest.mark.corpora
@_SKIP
class TestRealTracesOnLegacy:
    def test_maestro_samples_end_terminal(self) -> None:
        """Every imported Maestro sample but the 27 s one ends terminal on legacy, with no unrecorded attempt."""
        traces = [t for t in _traces("maestro", "maestro") if not t.trace_id.endswith(_COSTLY_MAESTRO)]
        assert len(traces) == 14
        for trace in traces:
            _replay_on_legacy(trace)

    def test_argo_workflows_end_with_their_recorded_phase(self) -> None:
        """The three Argo workflows end terminal on legacy: one succeeds, the two failing ones fail."""
        statuses = sorted(_replay_on_legacy(t).runs[0].status for t in _traces("argo", "argo"))
        assert statuses == ["FAILED", "FAILED", "SUCCEEDED"]

    def test_cheap_wfinstances_succeed(self) -> None:
        """The 8 cheapest WfInstances succeed on legacy, never faster than their critical path allows."""
        files = [p for p in (SHARED / "wfinstances").rglob("*.json") if p.stem in _CHEAP_WFINSTANCES]
        traces = [item.trace for item in import_all("wfformat", *files) if item.trace is not None]
        assert len(traces) == len(_CHEAP_WFINSTANCES)
        for trace in traces:
            run = _replay_on_legacy(trace).runs[0]
            assert run.status == "SUCCEEDED", trace.trace_id
            assert run.ended_at is not None
            assert run.started_at is not None
            longest = max(a.duration for a in trace.runs[0].attempts)
            assert run.ended_at - run.started_at > longest

    def test_alibaba_sample_succeeds(self) -> None:
        """Every 50th Alibaba job (34 of 1,679) succeeds on legacy."""
        traces = _traces("alibaba", "alibaba")[::_ALIBABA_SAMPLE_EVERY]
        assert len(traces) > 30
        for trace in traces:
            assert _replay_on_legacy(trace).runs[0].status == "SUCCEEDED", trace.trace_id


@pytest.mark.corpora
@pytest.mark.slow
@_SKIP
class TestRealTracesOnLegacySlow:
    def test_costly_maestro_sample_ends_terminal(self) -> None:
        """The nested subworkflow/foreach sample (205 attempts, ~17,900 cycles) ends terminal on legacy."""
        (trace,) = [t for t in _traces("maestro", "maestro") if t.trace_id.endswith(_COSTLY_MAESTRO)]
        _replay_on_legacy(trace)

    def test_nextflow_run_succeeds(self) -> None:
        """The openproblems Nextflow run (209 tasks, 217 attempts) succeeds on legacy."""
        (trace,) = _traces("nextflow", "nextflow")
        assert _replay_on_legacy(trace).runs[0].status == "SUCCEEDED"

    def test_all_alibaba_jobs_succeed(self) -> None:
        """Every Alibaba job of the sample succeeds on legacy (about a minute of CPU)."""
        for trace in _traces("alibaba", "alibaba"):
            assert _replay_on_legacy(trace).runs[0].status == "SUCCEEDED", trace.trace_id

    def test_other_wfinstances_succeed(self) -> None:
        """The 23 WfInstances outside the cheap subset (up to 1,001 tasks) succeed on legacy (~93 s CPU)."""
        traces = [t for t in _traces("wfformat", "wfinstances") if _stem(t) not in _CHEAP_WFINSTANCES]
        assert len(traces) == 31 - len(_CHEAP_WFINSTANCES)
        for trace in traces:
            assert _replay_on_legacy(trace).runs[0].status == "SUCCEEDED", trace.trace_id
