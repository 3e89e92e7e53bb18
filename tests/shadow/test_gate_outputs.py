"""The gate's CI artifacts: verdict JSON, JUnit XML, Markdown."""

from __future__ import annotations

import datetime as dt
import json
import xml.etree.ElementTree as ET

import jsonschema
import pytest

from shadow.gate.cohorts import parse_cohorts
from shadow.gate.evaluate import GateResult, evaluate
from shadow.gate.outputs import VERDICT_JSON_SCHEMA, dumps, to_junit, to_markdown
from tests.shadow._gatedb import GateDb

NOW = dt.datetime(2026, 11, 28, 12, 0, tzinfo=dt.UTC)


@pytest.fixture(scope="module")
def result(tmp_path_factory: pytest.TempPathFactory) -> GateResult:
    """Two cohorts: 'etl' clean (PASS), 'ml' with a stuck run (FAIL)."""
    db = GateDb(tmp_path_factory.mktemp("gate") / "results.duckdb")
    db.add_traces(60, prefix="etl", owner="data-eng")
    db.add_traces(60, prefix="ml", owner="ml-platform", stuck=1)
    cohorts = parse_cohorts({
        "defaults": {"divergence_budget": 0.1},
        "cohort": [{"name": "etl", "select": {"owner": "data-eng"}}, {"name": "ml", "select": {"owner": "ml-platform"}}],
    })  # fmt: skip
    return evaluate(db.build(), cohorts, now=NOW)


class TestJson:
    def test_document_carries_overall_verdict_and_exit_code(self, result: GateResult) -> None:
        """The JSON names the deciding verdict, the exit code and every cohort with its criteria."""
        doc = json.loads(dumps(result))
        assert doc["schema"] == "shadow-verdict/1"
        assert (doc["verdict"], doc["exit_code"]) == ("FAIL", 1)
        assert [c["verdict"] for c in doc["cohorts"]] == ["PASS", "FAIL"]
        stuck = next(c for c in doc["cohorts"][1]["criteria"] if c["name"] == "stuck_runs")
        assert stuck == {**stuck, "status": "fail", "critical": True, "value": 1}

    def test_document_follows_its_json_schema(self, result: GateResult) -> None:
        """The verdict JSON validates against VERDICT_JSON_SCHEMA (NaN and infinity become null)."""
        jsonschema.validate(json.loads(dumps(result)), VERDICT_JSON_SCHEMA)


class TestJunit:
    def test_one_testcase_per_cohort_and_criterion(self, result: GateResult) -> None:
        """Each cohort is a testsuite; each criterion a testcase; the stuck run is a FAIL failure."""
        root = ET.fromstring(to_junit(result))
        suites = root.findall("testsuite")
        assert [s.get("name") for s in suites] == ["cohort etl", "cohort ml"]
        cases = suites[1].findall("testcase")
        assert len(cases) == len(result.verdicts[1].criteria)
        stuck = next(c for c in cases if c.get("name") == "stuck_runs")
        failure = stuck.find("failure")
        assert failure is not None
        assert failure.get("type") == "FAIL"
        assert suites[0].get("failures") == "0"


class TestMarkdown:
    def test_summary_table_and_sections(self, result: GateResult) -> None:
        """The summary leads with the deciding verdict and has a row and a section per cohort."""
        text = to_markdown(result)
        assert text.startswith("## Shadow gate: FAIL (blocked)")
        assert "| etl | **PASS** |" in text
        assert "### ml: FAIL" in text
        assert "never finished (stuck)" in text
