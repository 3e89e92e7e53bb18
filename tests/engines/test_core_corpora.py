"""The oracle against what production observed, on the real public traces in ../shared/corpora."""

from __future__ import annotations

from pathlib import Path

import pytest

from corpora.importers import IMPORTERS, ImportOptions, run_import
from engines.api import ReplayOptions
from engines.core.oracle import CoreOracle
from shadow.fidelity import status_class

CORPORA = Path(__file__).resolve().parents[2].parent / "shared" / "corpora"

pytestmark = pytest.mark.corpora


def _traces(importer: str, folder: str) -> list:  # type: ignore[type-arg]
    root = CORPORA / folder
    if not root.exists():
        pytest.skip(f"public corpora not found at {root} (see ../shared/corpora/README.md)")
    return [
        item.trace
        for item in run_import(IMPORTERS[importer], [root], ImportOptions())
        if item.trace is not None
    ]


class TestObservedRuns:
    @pytest.mark.parametrize(
        ("importer", "folder"),
        [pytest.param("wfformat", "wfinstances", marks=pytest.mark.slow), ("nextflow", "nextflow")],
    )
    def test_statuses_and_attempt_counts_match_production(self, importer: str, folder: str) -> None:
        """Every observed run ends with the observed status, and every step with its observed status and attempt count.

        Importers keep production's own status words (Nextflow's COMPLETED, Argo's Omitted): compared by class."""
        traces = _traces(importer, folder)
        assert traces
        checked = 0
        for trace in traces:
            record = CoreOracle().replay(trace, ReplayOptions())
            for run, got in zip(trace.runs, record.runs, strict=True):
                if run.observed is None:
                    continue
                assert status_class(got.status) == status_class(run.observed.status), (
                    trace.trace_id,
                    run.run_id,
                )
                for path, obs in run.observed.steps.items():
                    mine = [a for a in got.attempts if a.path == path]
                    assert (status_class(mine[-1].status if mine else "NOT_CREATED"), len(mine)) == (
                        status_class(obs.status),
                        obs.attempts,
                    ), (trace.trace_id, path)
                checked += 1
        assert checked > 0

    def test_wfformat_no_step_starts_before_parents_end(self) -> None:
        """On real DAG shapes (up to 1,001 tasks) every task starts exactly when its last parent ends (zero overhead)."""
        for trace in _traces("wfformat", "wfinstances")[:10]:
            run = CoreOracle().replay(trace, ReplayOptions()).runs[0]
            ended = {a.path: a.ended_at for a in run.attempts}
            steps = {s.id: s for s in trace.definition.steps}
            parents: dict[str, list[str]] = {sid: [] for sid in steps}
            for s in trace.definition.steps:
                for t in s.transitions:
                    parents[t.to].append(s.id)
            for a in run.attempts:
                expected = max((ended[p] for p in parents[a.path]), default=run.started_at)
                assert a.started_at == expected, (trace.trace_id, a.path)
