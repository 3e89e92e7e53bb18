"""Importers over the real public files in ../shared/corpora (skipped where that folder is absent)."""

from __future__ import annotations

import csv
import json
import re
from collections import Counter
from pathlib import Path

import pytest

from corpora.importers import ImportOptions
from corpora.importers._common import dag_depth
from corpora.model import Outcome, Trace
from tests.corpora._import_helpers import SHARED, import_all

pytestmark = [
    pytest.mark.corpora,
    pytest.mark.skipif(not SHARED.is_dir(), reason=f"real corpora not found at {SHARED} (../shared/corpora)"),
]


def _edges(trace: Trace) -> set[tuple[str, str]]:
    return {(s.id, t.to) for s in trace.definition.steps for t in s.transitions}


class TestWfInstances:
    def test_every_instance_matches_its_source(self) -> None:
        """All 31 WfInstances import (schema-validated) with the source's task count, edges, depth and runtimes."""
        items = import_all(
            "wfformat", SHARED / "wfinstances", options=ImportOptions(schema_dir=SHARED / "schemas")
        )
        assert [i.error for i in items if i.error] == []
        assert len(items) == 31
        for item in items:
            assert item.trace is not None
            doc = json.loads(Path(item.source).read_text(encoding="utf-8"))
            spec = doc["workflow"]["specification"]["tasks"]
            runtimes = {t["id"]: float(t["runtimeInSeconds"]) for t in doc["workflow"]["execution"]["tasks"]}
            edges = {(p, t["id"]) for t in spec for p in t.get("parents", [])}
            trace = item.trace
            assert len(trace.definition.steps) == len(spec)
            assert len(_edges(trace)) == len(edges)
            assert dag_depth([t["id"] for t in spec], edges) == dag_depth(
                [s.id for s in trace.definition.steps], _edges(trace)
            )
            assert sorted(a.duration for a in trace.runs[0].attempts) == sorted(
                runtimes[t["id"]] for t in spec
            )
            observed = trace.runs[0].observed
            assert observed is not None
            assert observed.end_time is not None
            assert observed.end_time - observed.start_time == pytest.approx(
                doc["workflow"]["execution"]["makespanInSeconds"]
            )  # type: ignore[operator]


class TestMaestroSamples:
    def test_definitions_import_and_invalid_ones_fail_right(self) -> None:
        """15 definitions import; the cycle sample names its cycle; non-workflows and unresolvable ones are typed."""
        items = import_all("maestro", SHARED / "maestro")
        errors = {Path(i.source).name: i.error for i in items if i.error is not None}
        assert sum(1 for i in items if i.trace) == 15
        cycle = errors[
            "maestro-common__src__testFixtures__resources__fixtures__workflows__request__sample-dag-with-cycle-wf.json"
        ]
        assert cycle.code == "cycle"
        assert "job.2 -> job.3 -> job.4 -> job.2" in cycle.message
        assert Counter(e.code for e in errors.values()) == Counter(
            {"not_a_workflow": 2, "unresolved_subworkflow": 1, "cycle": 1, "unsupported": 1}
        )

    def test_nested_subworkflow_foreach_paths(self) -> None:
        """sample-nested-subworkflow-foreach-wf enumerates 3 calls x 9 daily iterations x 6 steps."""
        (item,) = import_all(
            "maestro",
            SHARED
            / "maestro"
            / "maestro-server__src__test__resources__samples__sample-nested-subworkflow-foreach-wf.json",
        )
        assert item.trace is not None
        paths = {a.path for a in item.trace.runs[0].attempts}
        assert len(paths) == 3 * 9 * 6
        assert "sub-step2/foreach-job[8]/job.6" in paths


class TestArgoSamples:
    def test_retries_and_failures(self) -> None:
        """dag_retry_succeeded gives 2 failed + 1 succeeded attempt; dag_xfail stops at failed C."""
        items = {Path(i.source).name: i.trace for i in import_all("argo", SHARED / "argo")}
        assert all(items.values())
        assert len(items) == 3
        retry = items["dag_retry_succeeded.yaml"]
        assert [a.outcome for a in retry.runs[0].attempts] == [
            Outcome.USER_ERROR,
            Outcome.USER_ERROR,
            Outcome.SUCCEEDED,
        ]  # type: ignore[union-attr]
        xfail = items["dag_xfail.yaml"]
        assert len(xfail.definition.steps) == 4
        assert len(_edges(xfail)) == 4
        assert {a.path for a in xfail.runs[0].attempts} == {"A", "B", "C"}  # type: ignore[union-attr]

    def test_observed_phases(self) -> None:
        """Production's view: the workflow phase and per task its phase and pod count."""
        items = {Path(i.source).name: i.trace for i in import_all("argo", SHARED / "argo")}
        observed = {name: t.runs[0].observed for name, t in items.items() if t is not None}
        retry = observed["dag_retry_succeeded.yaml"]
        assert retry is not None
        assert (
            retry.status == "Failed"
        )  # the phase label of this controller test input; its one task Succeeded
        assert [(s.status, s.attempts) for s in retry.steps.values()] == [("Succeeded", 3)]
        xfail = observed["dag_xfail.yaml"]
        assert xfail is not None
        assert xfail.status == "Running"
        assert {p: s.status for p, s in xfail.steps.items()} == {
            "A": "Succeeded",
            "B": "Succeeded",
            "C": "Failed",
        }


class TestNextflowRun:
    def test_report_rows_and_process_dag(self) -> None:
        """217 attempts of 209 tasks with 8 failures; a run_metric task waits for every run_method and metric_images task."""
        (item,) = import_all("nextflow", SHARED / "nextflow")
        trace = item.trace
        assert trace is not None
        rows = list(
            csv.DictReader(
                (SHARED / "nextflow/openproblems-2021/execution_trace.txt")
                .read_text(encoding="utf-8")
                .splitlines(),
                delimiter="\t",
            )
        )
        assert len(trace.runs[0].attempts) == len(rows) == 217
        assert len(trace.definition.steps) == len({r["name"] for r in rows}) == 209
        assert Counter(a.outcome for a in trace.runs[0].attempts)[Outcome.USER_ERROR] == 8
        metric = next(s.id for s in trace.definition.steps if s.tags == ("process:run_metric",))
        parents = {a for a, b in _edges(trace) if b == metric}
        upstream = {
            s.id
            for s in trace.definition.steps
            if s.tags in (("process:run_method",), ("process:metric_images",))
        }
        assert parents == upstream

    def test_observed_tasks(self) -> None:
        """Every task observed with its final status and attempts; the 8 OOM failures were retried to success."""
        (item,) = import_all("nextflow", SHARED / "nextflow")
        assert item.trace is not None
        observed = item.trace.runs[0].observed
        assert observed is not None
        assert observed.status == "SUCCEEDED"
        assert len(observed.steps) == 209
        assert Counter(s.status for s in observed.steps.values()) == {"COMPLETED": 209}
        assert sum(s.attempts for s in observed.steps.values()) == 217
        assert all(s.start_time is not None and s.end_time is not None for s in observed.steps.values())


class TestAlibabaBatch:
    def test_jobs_match_the_csv(self) -> None:
        """1,679 jobs; per job the task count, name-derived edges and durations match the rows."""
        items = import_all("alibaba", SHARED / "alibaba")
        assert [i.error for i in items if i.error] == []
        rows = list(csv.reader((SHARED / "alibaba/batch_task.csv").read_text(encoding="utf-8").splitlines()))
        by_job: dict[str, list[list[str]]] = {}
        for row in rows:
            by_job.setdefault(row[1], []).append(row)
        assert len(items) == len(by_job) == 1679
        for item in items:
            trace = item.trace
            assert trace is not None
            job_rows = by_job[trace.trace_id.removeprefix("alibaba:")]
            assert len(trace.definition.steps) == len(job_rows)
            expected_edges = sum(
                len(re.findall(r"_\d+", r[2])) for r in job_rows if not r[2].startswith("task_")
            )
            assert len(_edges(trace)) == expected_edges
            assert sorted(a.duration for a in trace.runs[0].attempts) == sorted(float(r[3]) for r in job_rows)
