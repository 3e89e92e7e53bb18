"""The exemplar's "why": a params divergence shows the step's param definition and both values; a divergence
past the first divergence point shows the DAG chain from it, with the conditions and output references."""

from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path

from corpora.codec import encode
from corpora.model import Param, Trace
from corpora.testing import attempts, leaf, make_trace
from reports.definitions import definition_graph, step_at
from reports.render import render_html
from reports.why import explain, references


def region_trace() -> Trace:
    """prep (outputs region) -> use (param p reads prep__region) -> gated (when prep__region == 'eu')."""
    steps = [
        leaf("prep", "use"),
        leaf(
            "use",
            "gated",
            when="prep__region == 'eu'",
            params={"p": Param(expression="prep__region + '-x'"), "lit": Param(value="fixed")},
        ),
        leaf("gated"),
    ]
    trace = make_trace(steps, trace_id="why-1")
    prep = attempts("prep", ("succeeded",), outputs={"region": "eu"})
    run = trace.runs[0]
    return replace(
        trace, runs=(replace(run, attempts=(*prep, *(a for a in run.attempts if a.path != "prep"))),)
    )


def _attempts(*paths: str) -> list[dict[str, object]]:
    return [{"path": p, "attempt": 1, "status": "SUCCEEDED", "step_type": "NOOP"} for p in paths]


def test_references_read_step_outputs() -> None:
    assert references("prep__region + x__y + prep__region") == (("prep", "region"), ("x", "y"))
    assert references("plain + name") == ()


def test_step_at_resolves_scopes() -> None:
    trace = region_trace()
    step = step_at(trace, "use")
    assert step is not None
    assert step.id == "use"
    assert step_at(trace, "nope") is None


def test_params_divergence_shows_definition_and_values() -> None:
    trace = region_trace()
    graph = definition_graph(trace, _attempts("prep", "use", "gated"))
    divergence = {
        "run_id": "run-1",
        "path": "use",
        "kind": "params",
        "detail": "attempts[1].params.p",
        "baseline_value": '"eu-x"',
        "other_value": '"us-x"',
        "cause": "params|params.p|changed:str",
    }
    why = explain(trace, graph, divergence, [divergence])
    (param,) = why.params
    assert (param.path, param.name, param.definition) == ("use", "p", "expression: prep__region + '-x'")
    assert param.reads == ("prep.region",)
    assert (param.baseline, param.other) == ('"eu-x"', '"us-x"')
    assert why.chain == ()  # the divergence is the first divergence point itself


def test_chain_from_the_first_divergence_point() -> None:
    """outputs.region differs at prep (first); gated's status differs after it: prep -> use -> (when ...) gated."""
    trace = region_trace()
    graph = definition_graph(trace, _attempts("prep", "use", "gated"))
    first = {"run_id": "run-1", "path": "prep", "kind": "outputs"}
    later = {"run_id": "run-1", "path": "gated", "kind": "missing_step"}
    why = explain(trace, graph, first, [later])
    assert [(h.path, h.condition, h.reads) for h in why.chain] == [
        ("prep", None, ()),
        ("use", None, ("prep.region",)),
        ("gated", "prep__region == 'eu'", ("prep.region",)),
    ]


def test_no_path_and_no_definition_say_so() -> None:
    trace = make_trace([leaf("a"), leaf("b")], trace_id="two")
    graph = definition_graph(trace, _attempts("a", "b"))
    why = explain(
        trace, graph, {"run_id": "run-1", "path": "a"}, [{"run_id": "run-1", "path": "b", "kind": "outputs"}]
    )
    assert why.chain == ()
    assert "no DAG path" in why.note
    assert "not at hand" in explain(None, None, None, []).note


def test_report_shows_the_param_definition(tmp_path: Path) -> None:
    """End to end: the candidate drops param p at 'use'; the exemplar names p's expression and both values."""
    from shadow.engines import resolve_engine
    from shadow.runner import RunSettings, run_shadow

    corpus = tmp_path / "c.jsonl"
    corpus.write_text(json.dumps(encode(region_trace())) + "\n", encoding="utf-8")
    db = tmp_path / "r.duckdb"
    run_shadow(
        RunSettings(
            corpus=(str(corpus),),
            db=str(db),
            baseline=resolve_engine("oracle"),
            candidate=resolve_engine(
                "shadow.testing:fake_engine_with_fault",
                inner="oracle",
                fault="drop_param",
                path="use",
                param="p",
            ),
        )
    )
    html = render_html(db)
    assert 'class="why-params"' in html
    assert "expression: prep__region + &#39;-x&#39;" in html
    assert "prep.region" in html
    assert "eu-x" in html
