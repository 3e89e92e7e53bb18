"""Each importer on the small fixtures written for these tests (tests/resources/importers)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from corpora.importers import ImportOptions
from corpora.importers._common import dag_depth
from corpora.model import BackoffType, FailureMode, Outcome, StepType, Trace
from tests.corpora._import_helpers import RESOURCES, SHARED, import_all


def _edges(trace: Trace) -> set[tuple[str, str]]:
    return {(s.id, t.to) for s in trace.definition.steps for t in s.transitions}


def _one(source: str, name: str) -> Trace:
    items = import_all(source, RESOURCES / source / name)
    assert [i.error for i in items] == [None]
    trace = items[0].trace
    assert trace is not None
    return trace


class TestWfFormat:
    def test_diamond_keeps_dag_durations_and_makespan(self) -> None:
        """A 1.5 diamond gives 4 steps, 4 edges, depth 3, recorded runtimes and the makespan as observed."""
        trace = _one("wfformat", "diamond-1.5.json")
        assert _edges(trace) == {
            ("split_1", "left_1"),
            ("split_1", "right_1"),
            ("left_1", "join_1"),
            ("right_1", "join_1"),
        }
        assert dag_depth([s.id for s in trace.definition.steps], _edges(trace)) == 3
        run = trace.runs[0]
        assert {a.path: a.duration for a in run.attempts} == {
            "split_1": 5.0,
            "left_1": 10.5,
            "right_1": 20.0,
            "join_1": 2.0,
        }
        assert all(a.outcome is Outcome.SUCCEEDED and a.attempt == 1 for a in run.attempts)
        assert run.observed is not None
        assert run.observed.end_time is not None
        assert run.observed.end_time - run.trigger_time == 40.0

    def test_mm_dd_yy_timestamp_is_read(self) -> None:
        """WfCommons' MM-DD-YY executedAt (03-23-21T05:57:15Z) is read as 2021-03-23."""
        assert _one("wfformat", "diamond-1.5.json").runs[0].trigger_time == 1616479035.0

    def test_legacy_layout_resolves_parents_by_name(self) -> None:
        """A 1.4 instance (tasks under workflow, parents by name) gives a 3-step chain."""
        trace = _one("wfformat", "chain-1.4.json")
        assert _edges(trace) == {("a", "b"), ("b", "c")}
        assert [a.duration for a in trace.runs[0].attempts] == [1.0, 2.0, 3.5]

    def test_unknown_parent_is_quarantined(self) -> None:
        """A parent that names no task quarantines the file with missing_target."""
        (item,) = import_all("wfformat", RESOURCES / "wfformat" / "bad-parent.json")
        assert item.trace is None
        assert item.error is not None
        assert item.error.code == "missing_target"
        assert "ghost" in item.error.message


class TestMaestro:
    def test_definition_maps_foreach_subworkflow_retry_and_conditions(self) -> None:
        """Foreach, subworkflow, param-driven retry limit, duration timeout and SEL conditions survive."""
        trace = _one("maestro", "main-wf.json")
        steps = {s.id: s for s in trace.definition.steps}
        assert steps["fan"].type is StepType.FOREACH
        assert steps["call"].type is StepType.SUBWORKFLOW
        assert trace.subworkflows["child-wf"].steps[1].type is StepType.HTTP
        work = steps["fan"].foreach.steps[0]  # type: ignore[union-attr]
        assert work.type is StepType.KUBERNETES
        assert work.timeout == "5 min"
        assert work.failure_mode is FailureMode.IGNORE_FAILURE
        assert work.retry_policy is not None
        assert work.retry_policy.error_retry_limit == "$limit"
        assert work.retry_policy.backoff is not None
        assert work.retry_policy.backoff.type is BackoffType.FIXED_BACKOFF
        conditions = {t.to: t.condition for t in steps["start"].transitions}
        assert conditions == {"fan": "start__x > 0", "call": "x < 0"}  # getFromStep -> stepid__name

    def test_sel_outside_subset_becomes_literal_and_is_tagged(self) -> None:
        """DateTime month is evaluated; an unknown Util call becomes a placeholder recorded in tags."""
        trace = _one("maestro", "main-wf.json")
        params = trace.definition.params
        assert params["month"].value == "September"
        assert params["ts"].value == 0
        assert params["ts"].expression is None
        assert (
            params["days"].expression == "Util.dateIntsBetween(20240101, 20240104, 1);"
        )  # SEL statement form kept
        assert "sel-literal:main-wf.params.ts" in trace.metadata.tags

    def test_runs_cover_every_leaf_path(self) -> None:
        """Three foreach iterations and the child's two steps all get recorded attempts."""
        trace = _one("maestro", "main-wf.json")
        paths = {a.path for a in trace.runs[0].attempts}
        assert paths == {"start", "fan[0]/work", "fan[1]/work", "fan[2]/work", "call/nap", "call/ping"}
        nap = [a for a in trace.runs[0].attempts if a.path == "call/nap"]
        assert nap[-1].duration == 4.0

    def test_outcome_model_is_seeded(self) -> None:
        """The same seed gives the same run; failure_rate 1 exhausts the resolved $limit retries."""
        a = import_all("maestro", RESOURCES / "maestro" / "main-wf.json", options=ImportOptions(seed=7))
        b = import_all("maestro", RESOURCES / "maestro" / "main-wf.json", options=ImportOptions(seed=7))
        assert a[0].trace == b[0].trace
        (failed,) = import_all(
            "maestro",
            RESOURCES / "maestro" / "main-wf.json",
            options=ImportOptions(failure_rate=1.0, retry_rate=0.0),
        )
        assert failed.trace is not None
        work = [x for x in failed.trace.runs[0].attempts if x.path == "fan[0]/work"]
        assert [x.outcome for x in work] == [Outcome.USER_ERROR] * 4  # $limit = 3 -> 4 attempts

    def test_dsl_if_otherwise(self) -> None:
        """The YAML DSL's IF/OTHERWISE transitions become a condition and its negation."""
        trace = _one("maestro", "dsl-wf.yaml")
        conditions = {t.to: t.condition for t in trace.definition.steps[0].transitions}
        assert conditions == {"big": "threshold > 5", "small": "!(threshold > 5)"}
        assert trace.definition.params["doubled"].expression == "threshold * 2"

    def test_cycle_and_unresolved_subworkflow_are_typed_errors(self) -> None:
        """A cyclic graph names its cycle; a missing subworkflow names the id."""
        items = {
            i.source.rsplit("/", 1)[-1]: i.error for i in import_all("maestro", RESOURCES / "maestro-bad")
        }
        cycle, orphan = items["cycle.json"], items["orphan.json"]
        assert cycle is not None
        assert cycle.code == "cycle"
        assert "a -> b -> a" in cycle.message
        assert orphan is not None
        assert orphan.code == "unresolved_subworkflow"
        assert "nowhere" in orphan.message


class TestArgo:
    def test_retry_node_children_are_attempts(self) -> None:
        """A Retry node's pods become attempts in (n) order; Error -> platform_error; times from the pods."""
        trace = _one("argo", "retry.yaml")
        attempts = [(a.path, a.attempt, a.outcome, a.duration) for a in trace.runs[0].attempts]
        assert attempts == [
            ("first", 1, Outcome.PLATFORM_ERROR, 12.0),
            ("first", 2, Outcome.SUCCEEDED, 18.0),
            ("second", 1, Outcome.USER_ERROR, 9.0),
        ]

    def test_retry_strategy_fail_fast_and_depends(self) -> None:
        """retryStrategy -> limits and exponential backoff; failFast false -> FAIL_AFTER_RUNNING; depends -> edge."""
        trace = _one("argo", "retry.yaml")
        first, second = trace.definition.steps
        assert first.retry_policy is not None
        assert first.retry_policy.error_retry_limit == 3
        assert first.retry_policy.platform_retry_limit == 3
        assert first.retry_policy.backoff is not None
        assert first.retry_policy.backoff.error_retry_backoff_in_secs == 10
        assert first.failure_mode is FailureMode.FAIL_AFTER_RUNNING
        assert [t.to for t in first.transitions] == ["second"]
        assert second.transitions == ()


class TestNextflow:
    def test_trace_rows_become_attempts(self) -> None:
        """Rows of one task name become attempts in order; FAILED -> user_error; retry limit fits."""
        items = import_all("nextflow", RESOURCES / "nextflow")
        assert [i.error for i in items] == [None]
        trace = items[0].trace
        assert trace is not None
        fit = [a for a in trace.runs[0].attempts if a.path == "fit_a"]
        assert [(a.attempt, a.outcome, a.duration) for a in fit] == [
            (1, Outcome.USER_ERROR, 61.0),
            (2, Outcome.SUCCEEDED, 90.0),
        ]
        step = next(s for s in trace.definition.steps if s.id == "fit_a")
        assert step.retry_policy is not None
        assert step.retry_policy.error_retry_limit == 1
        assert "edges:submit-order-fallback" in trace.metadata.tags
        assert trace.runs[0].trigger_time == 1614891967.625  # 2021-03-04 21:06:07.625, read as UTC


class TestAlibaba:
    def test_jobs_dag_from_names_with_dangling_and_independent(self) -> None:
        """M1 -> R2_1 -> J3_1_2_9 (parent 9 dangling) and an independent task_ form job j_1."""
        items = import_all("alibaba", RESOURCES / "alibaba")
        traces = {i.trace.trace_id: i.trace for i in items if i.trace is not None}
        errors = {i.error.trace_id: i.error for i in items if i.error is not None}
        job = traces["alibaba:j_1"]
        assert _edges(job) == {("M1", "R2_1"), ("M1", "J3_1_2_9"), ("R2_1", "J3_1_2_9")}
        assert "dangling-parents:1" in job.metadata.tags
        assert {a.path: a.duration for a in job.runs[0].attempts}["task_YWJj"] == 3.0
        assert "alibaba:j_2" in traces
        assert errors["alibaba:j_3"].code == "cycle"
        assert errors["alibaba:j_4"].code == "schema"


@pytest.mark.parametrize("source", ["wfformat", "maestro", "argo", "nextflow", "alibaba"])
def test_missing_path_is_quarantined_not_raised(source: str, tmp_path: Path) -> None:
    """A path that does not exist is reported as an unreadable input, never an exception."""
    items = import_all(source, tmp_path / "absent.json")
    assert len(items) == 1
    assert items[0].error is not None


class TestMalformedInputs:
    def test_wfformat_schema_violation_names_the_field(self, tmp_path: Path) -> None:
        """With the schema folder given, a schema violation is quarantined as 'schema' with its JSON path."""
        doc = json.loads((RESOURCES / "wfformat" / "diamond-1.5.json").read_text(encoding="utf-8"))
        del doc["author"]["email"]
        bad = tmp_path / "bad.json"
        bad.write_text(json.dumps(doc), encoding="utf-8")
        schemas = SHARED / "schemas"
        if not schemas.is_dir():
            pytest.skip(f"WfFormat schemas not found at {schemas}")
        (item,) = import_all("wfformat", bad, options=ImportOptions(schema_dir=schemas))
        assert item.error is not None
        assert item.error.code == "schema"
        assert item.error.location.json_path == "$.author"

    def test_not_json_is_malformed(self, tmp_path: Path) -> None:
        """A truncated JSON file is quarantined as malformed_json; the next file still imports."""
        bad = tmp_path / "a.json"
        bad.write_text('{"name": ', encoding="utf-8")
        items = import_all("wfformat", bad, RESOURCES / "wfformat" / "chain-1.4.json")
        assert items[0].error is not None
        assert items[0].error.code == "malformed_json"
        assert items[1].trace is not None

    def test_argo_other_kind_is_rejected(self, tmp_path: Path) -> None:
        """A YAML document that is not kind: Workflow is a schema error naming the kind."""
        bad = tmp_path / "cm.yaml"
        bad.write_text("kind: ConfigMap\nmetadata: {name: x}\n", encoding="utf-8")
        (item,) = import_all("argo", bad)
        assert item.error is not None
        assert "ConfigMap" in item.error.message

    def test_argo_workflow_without_api_version_and_kind_is_still_a_workflow(self, tmp_path: Path) -> None:
        """Argo's controller test data writes Workflow objects without apiVersion/kind: spec.templates makes
        one; a document with neither kind nor templates is still refused."""
        import yaml

        doc = yaml.safe_load((RESOURCES / "argo" / "retry.yaml").read_text(encoding="utf-8"))
        doc.pop("apiVersion", None)
        doc.pop("kind", None)
        bare = tmp_path / "bare.yaml"
        bare.write_text(yaml.safe_dump(doc), encoding="utf-8")
        (item,) = import_all("argo", bare)
        assert item.trace is not None
        assert [a.path for a in item.trace.runs[0].attempts] == ["first", "first", "second"]
        neither = tmp_path / "neither.yaml"
        neither.write_text("metadata: {name: x}\nspec: {}\n", encoding="utf-8")
        (bad,) = import_all("argo", neither)
        assert bad.error is not None

    def test_nextflow_folder_without_reports(self, tmp_path: Path) -> None:
        """A folder with neither report nor trace file is quarantined as missing_input."""
        (item,) = import_all("nextflow", tmp_path)
        assert item.error is not None
        assert item.error.code == "missing_input"

    def test_maestro_step_file_is_not_a_workflow(self, tmp_path: Path) -> None:
        """A file holding one step (no workflow) is quarantined as not_a_workflow."""
        bad = tmp_path / "step.json"
        bad.write_text('{"step": {"id": "a", "type": "NoOp"}}', encoding="utf-8")
        (item,) = import_all("maestro", bad)
        assert item.error is not None
        assert item.error.code == "not_a_workflow"

    def test_options_reject_rates_out_of_range(self) -> None:
        """Rates outside [0, 1] or summing past 1 are refused when the options are built."""
        with pytest.raises(ValueError):
            ImportOptions(failure_rate=-0.1)
        with pytest.raises(ValueError):
            ImportOptions(failure_rate=0.6, retry_rate=0.6)


class TestObservations:
    """What each importer fills in ``Run.observed`` (production's own view), for the fidelity comparison."""

    def test_wfformat_every_task_observed_succeeded_once(self) -> None:
        observed = _one("wfformat", "diamond-1.5.json").runs[0].observed
        assert observed is not None
        assert observed.status == "SUCCEEDED"
        assert {p: (s.status, s.attempts) for p, s in observed.steps.items()} == dict.fromkeys(
            ("split_1", "left_1", "right_1", "join_1"), ("SUCCEEDED", 1)
        )

    def test_argo_steps_phases_and_attempts(self) -> None:
        observed = _one("argo", "retry.yaml").runs[0].observed
        assert observed is not None
        assert {p: (s.status, s.attempts) for p, s in observed.steps.items()} == {
            "first": ("Succeeded", 2),
            "second": ("Failed", 1),
        }

    def test_nextflow_final_status_attempts_and_times(self) -> None:
        items = import_all("nextflow", RESOURCES / "nextflow")
        trace = items[0].trace
        assert trace is not None
        observed = trace.runs[0].observed
        assert observed is not None
        fit = observed.steps["fit_a"]
        assert (fit.status, fit.attempts) == ("COMPLETED", 2)
        assert fit.end_time is not None  # the TSV has no start column: start_time stays None
        assert fit.start_time is None

    def test_alibaba_sample_layout_observes_nothing(self) -> None:
        items = import_all("alibaba", RESOURCES / "alibaba")
        assert all(i.trace.runs[0].observed is None for i in items if i.trace is not None)

    def test_alibaba_upstream_layout_statuses_and_times(self) -> None:
        items = import_all("alibaba", RESOURCES / "alibaba-v2018")
        traces = {i.trace.trace_id: i.trace for i in items if i.trace is not None}
        assert [i.error for i in items] == [None, None]
        ok = traces["alibaba:j_10"].runs[0]
        assert ok.observed is not None
        assert (ok.observed.status, ok.observed.start_time, ok.observed.end_time) == (
            "Terminated",
            100.0,
            150.0,
        )
        assert {a.path: (a.outcome, a.duration) for a in ok.attempts} == {
            "M1": (Outcome.SUCCEEDED, 30.0),
            "R2_1": (Outcome.SUCCEEDED, 20.0),
        }
        bad = traces["alibaba:j_11"].runs[0]
        assert bad.observed is not None
        assert bad.observed.status == "Failed"
        assert {p: (s.status, s.attempts) for p, s in bad.observed.steps.items()} == {
            "M1": ("Terminated", 1),
            "R2_1": ("Failed", 1),
            "M3_2": ("Waiting", 0),
        }
        assert {a.path: a.outcome for a in bad.attempts} == {
            "M1": Outcome.SUCCEEDED,
            "R2_1": Outcome.USER_ERROR,
        }
