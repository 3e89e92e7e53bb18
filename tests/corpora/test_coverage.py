"""Corpus coverage (issue 20, part 4, first slice): which situations a corpus exercises, read statically."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from corpora.coverage import FEATURES, CoverageAccumulator, trace_features
from corpora.generator import GeneratorConfig, generate_corpus
from corpora.io import TraceWriter
from corpora.testing import chain_trace, foreach_trace, subworkflow_trace


def test_failures_are_placed_where_they_happen() -> None:
    assert "failure_in_foreach" in trace_features(foreach_trace(2, outcomes={"fan[1]/inner": ["user_error"]}))
    assert "failure_in_subworkflow" in trace_features(
        subworkflow_trace(2, outcomes={"call/c2": ["fatal_error"]})
    )
    top = trace_features(chain_trace(3, outcomes={"s2": ["platform_error", "platform_error"]}))
    # no failure mode set: Maestro's default, FAIL_AFTER_RUNNING
    assert {"failure_top_level", "retry_after_platform_error", "fail_after_running_with_failure"} <= top
    assert "fail_immediately_with_failure" not in top
    retried = trace_features(foreach_trace(2, outcomes={"fan[0]/inner": ["user_error", "succeeded"]}))
    assert "failure_in_foreach" not in retried  # retried to success: not a failure for good
    assert "retry_after_user_error" in retried


def test_never_exercised_features_come_first() -> None:
    acc = CoverageAccumulator()
    for trace in generate_corpus(1, 20, GeneratorConfig(max_steps=40)):
        acc.add(trace)
    rows = acc.rows()
    assert [r.feature for r in rows] == sorted(FEATURES, key=lambda f: (acc.counts[f], f))
    assert acc.missing() == [r.feature for r in rows if r.traces == 0]


def test_failure_mode_is_read_through_foreach_bodies_and_subworkflows() -> None:
    """The mode that applies is the failing step's own, found by its path, not by a step id elsewhere."""
    from dataclasses import replace

    from corpora.model import FailureMode

    trace = subworkflow_trace(2, outcomes={"call/c2": ["fatal_error"]})
    child_id = next(iter(trace.subworkflows))
    child = trace.subworkflows[child_id]
    steps = tuple(
        replace(s, failure_mode=FailureMode.IGNORE_FAILURE) if s.id == "c2" else s for s in child.steps
    )
    ignored = replace(trace, subworkflows={child_id: replace(child, steps=steps)})
    assert "ignore_failure_with_failure" in trace_features(ignored)
    assert "fail_after_running_with_failure" in trace_features(trace)


def test_main_job_corpus_covers_every_feature() -> None:
    """The main job's corpus (noxfile session ``shadow``: seed 1, 200 traces) exercises every feature."""
    acc = CoverageAccumulator()
    for trace in generate_corpus(1, 200):
        acc.add(trace)
    assert acc.missing() == []


def test_stats_coverage_json(tmp_path: Path) -> None:
    corpus = tmp_path / "c.jsonl"
    with TraceWriter(corpus) as writer:
        for trace in generate_corpus(1, 5, GeneratorConfig(max_steps=20)):
            writer.write(trace)
    done = subprocess.run(
        [sys.executable, "-m", "shadow.cli", "corpus", "stats", str(corpus), "--coverage", "--json"],
        capture_output=True,
        text=True,
        timeout=120,
        check=True,
    )
    data = json.loads(done.stdout)
    assert set(data["coverage"]) == set(FEATURES)
    assert data["coverage_missing"] == [f for f, n in data["coverage"].items() if n == 0]
