"""Cause keys: one bug is one group, whatever number of steps it touches (issue 16, part 1)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

import shadow.results as results
from corpora.generator import GeneratorConfig, generate_corpus
from corpora.io import TraceWriter
from engines.api import ReplayOptions
from engines.core.oracle import CoreOracle
from results.rows import DivergenceKind
from shadow import cli
from shadow.compare import compare_records
from shadow.compare.cause import cause_key, describe_cause, split_cause
from shadow.testing import PLANTED_CAUSES, PlantedCausesEngine

MISSING = object()


@pytest.mark.parametrize(
    ("kind", "detail", "b", "o", "expected"),
    [
        (
            DivergenceKind.OUTPUTS,
            "attempts[2].outputs.region",
            MISSING,
            "eu",
            "outputs|outputs.region|added:str",
        ),
        (
            DivergenceKind.OUTPUTS,
            "attempts[1].outputs.rows",
            10,
            MISSING,
            "outputs|outputs.rows|removed:number",
        ),
        (
            DivergenceKind.PARAMS,
            "attempts[1].params.table",
            "events",
            "EVENTS",
            "params|params.table|upper-cased",
        ),
        (
            DivergenceKind.PARAMS,
            "attempts[1].params.table",
            "events",
            "events_v2",
            "params|params.table|suffix-added",
        ),
        (DivergenceKind.PARAMS, "attempts[1].params.n", 3, 2, "params|params.n|decreased"),
        (DivergenceKind.PARAMS, "attempts[1].params.n", 3, "3", "params|params.n|number->str"),
        (DivergenceKind.CONFIG, "attempts[1].config.tags[0]", "a", "b", "config|config.tags[*]|text"),
        (
            DivergenceKind.STEP_STATUS,
            "attempts[1].status",
            "SUCCEEDED",
            "USER_FAILED",
            "step_status|status|SUCCEEDED->USER_FAILED",
        ),
        (
            DivergenceKind.FINAL_STATUS,
            "status",
            "SUCCEEDED",
            "FAILED",
            "final_status|status|SUCCEEDED->FAILED",
        ),
        (DivergenceKind.ATTEMPT_COUNT, "attempts", 3, 2, "attempt_count|attempts|fewer"),
        (DivergenceKind.MISSING_STEP, "", 1, None, "missing_step||missing"),
    ],
)
def test_cause_keys(kind: DivergenceKind, detail: str, b: object, o: object, expected: str) -> None:
    key = cause_key(kind, detail, b, o, missing=MISSING)
    assert key == expected
    assert split_cause(key)[0] == kind.value
    assert describe_cause(key)


@pytest.mark.parametrize("count", [1, 2, 5])
def test_planted_causes_make_exactly_that_many_groups_over_many_steps(count: int) -> None:
    oracle = CoreOracle()
    candidate = PlantedCausesEngine(oracle, tuple(PLANTED_CAUSES)[:count])
    causes: set[str] = set()
    signatures: set[str] = set()
    for trace in generate_corpus(3, 6, GeneratorConfig(max_steps=40)):
        base, other = oracle.replay(trace, ReplayOptions()), candidate.replay(trace, ReplayOptions())
        for d in compare_records(trace, base, other):
            causes.add(d.cause)
            signatures.add(d.signature)
    assert len(causes) == count
    assert len(signatures) > 5 * count  # the same bugs, seen by where they showed: many more groups


@pytest.mark.parametrize(("factory", "count"), [("one_cause", 1), ("two_causes", 2), ("five_causes", 5)])
def test_a_shadow_run_stores_one_cause_group_per_planted_bug(
    factory: str, count: int, tmp_path: Path
) -> None:
    corpus = tmp_path / "c.jsonl"
    with TraceWriter(corpus) as writer:
        for trace in generate_corpus(3, 6, GeneratorConfig(max_steps=40)):
            writer.write(trace)
    db = tmp_path / "r.duckdb"
    assert (
        cli.main(
            [
                "run",
                str(corpus),
                "--db",
                str(db),
                "--baseline",
                "oracle",
                "--candidate",
                f"shadow.testing:{factory}",
                "--no-progress",
            ]
        )
        == cli.EXIT_OK
    )
    with results.open(db) as r:
        causes = r.causes()
        signatures = r.signatures()
        traces = r.traces()
    assert len(causes) == count
    assert set(causes["status"]) == {"unexplained"}
    assert (causes["root_traces"] > 0).all()
    assert len(signatures) > 5 * count
    assert (traces["unexplained"] > 0).all()
    members = json.loads(causes["members"].iloc[0])
    assert sum(members["paths"].values()) >= len(members["paths"]) > 5
