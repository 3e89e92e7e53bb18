"""Redaction rules (corpora/redact.py): what they touch, what hashing preserves, located rule errors."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import pytest

from corpora.io import dump_trace, load_trace
from corpora.model import Param, RecordedAttempt, Step, StepType, Transition, WorkflowDefinition
from corpora.redact import HASH_PREFIX, RedactionRulesError, load_rules
from corpora.testing import leaf, make_trace, subworkflow_trace
from engines.api import ReplayOptions
from engines.core.oracle import CoreOracle

KEY = {"SHADOW_REDACT_KEY": "k-test"}
RULES = """
[[rule]]
name = "tokens"
param = "*token*"
action = "hash"

[[rule]]
name = "card out"
step = "pay"
output = "card"
action = "mask"

[[rule]]
name = "no debug"
output = "debug"
action = "drop"
"""


def write(tmp_path: Path, text: str, name: str = "rules.toml") -> Path:
    path = tmp_path / name
    path.write_text(text, encoding="utf-8")
    return path


def secret_trace() -> object:
    steps = [
        leaf("pay", "check", type=StepType.NOOP, params={"api_token": Param(value="s3cr3t-literal")}),
        leaf("check", "ok", when="card == 'x'"),
        leaf("ok"),
    ]
    trace = make_trace(steps, trace_id="pay", params={"api_token": Param(value="")})
    run = trace.runs[0]
    atts = tuple(
        replace(a, outputs={"card": "4111-1111", "debug": "dump", "keep": 1}) if a.path == "pay" else a
        for a in run.attempts
    )
    return replace(trace, runs=(replace(run, params={"api_token": "s3cr3t-run"}, attempts=atts),))


class TestApply:
    def test_hash_mask_drop_and_metadata(self, tmp_path: Path) -> None:
        """Params (run, workflow, step literals) are hashed, outputs masked or dropped; the trace says so."""
        redactor = load_rules(write(tmp_path, RULES), environ=KEY)
        trace = secret_trace()
        out = redactor.apply(trace)  # type: ignore[arg-type]
        text = dump_trace(out)
        assert "s3cr3t" not in text
        assert "4111" not in text
        assert "dump" not in text
        assert out.runs[0].params["api_token"].startswith(HASH_PREFIX)  # type: ignore[union-attr]
        pay = next(a for a in out.runs[0].attempts if a.path == "pay")
        assert pay.outputs == {"card": "***", "keep": 1}
        notes = {(n.rule, n.action, n.values) for n in out.metadata.redactions}
        assert notes == {("tokens", "hash", 3), ("card out", "mask", 1), ("no debug", "drop", 1)}
        assert {n.key_id is not None for n in out.metadata.redactions if n.action == "hash"} == {True}
        assert load_trace(text) == out  # the format round-trips (codec, validator)

    def test_hash_is_keyed_and_equal_for_equal(self, tmp_path: Path) -> None:
        """Same value, same key: same hash; another key: another hash; no match: trace unchanged."""
        rules = write(tmp_path, RULES)
        a = load_rules(rules, environ=KEY)
        b = load_rules(rules, environ={"SHADOW_REDACT_KEY": "other"})
        assert a.hash_value("v") == a.hash_value("v") != b.hash_value("v")
        assert a.hash_value(5) != a.hash_value("5")
        assert a.hash_value([1, None, {"x": "y"}])[1] is None  # type: ignore[index]
        plain = make_trace([leaf("s")], trace_id="plain")
        assert a.apply(plain) is plain

    def test_condition_on_hashed_values_keeps_its_branch(self, tmp_path: Path) -> None:
        """A condition comparing a hashed output with a hashed run param takes the same branch."""
        steps = [
            Step("emit", StepType.NOOP, transitions=(Transition("same", "token_out == api_token"),
                                                     Transition("differ", "token_out != api_token"))),
            leaf("same"), leaf("differ"),
        ]  # fmt: skip
        trace = make_trace(steps, trace_id="cond", params={"api_token": Param(value="")})
        run = trace.runs[0]
        atts = tuple(
            RecordedAttempt(a.path, a.attempt, a.outcome, a.duration, {"token_out": "tok-123"})
            if a.path == "emit"
            else a
            for a in run.attempts
            if a.path != "differ"
        )
        trace = replace(trace, runs=(replace(run, params={"api_token": "tok-123"}, attempts=atts),))
        rules = write(
            tmp_path,
            '[[rule]]\nparam = "api_token"\naction = "hash"\n'
            '[[rule]]\noutput = "token_out"\naction = "hash"\n',
        )
        redacted = load_rules(rules, environ=KEY).apply(trace)
        assert "tok-123" not in dump_trace(redacted)

        def statuses(t: object) -> dict[str, str]:
            record = CoreOracle().replay(t, ReplayOptions())  # type: ignore[arg-type]
            return {a.path: a.status for a in record.runs[0].attempts}

        assert statuses(redacted) == statuses(trace)
        assert statuses(trace)["same"] == "SUCCEEDED"
        assert "differ" not in statuses(trace) or statuses(trace)["differ"] != "SUCCEEDED"

    def test_subworkflow_outputs_match_their_own_workflow(self, tmp_path: Path) -> None:
        """An attempt under a subworkflow call matches rules by the child workflow's id and step id."""
        trace = subworkflow_trace(2)
        run = trace.runs[0]
        atts = tuple(replace(a, outputs={"secret": "x1"}) for a in run.attempts)
        trace = replace(trace, runs=(replace(run, attempts=atts),))
        rules = write(
            tmp_path, '[[rule]]\nworkflow = "child"\nstep = "c2"\noutput = "secret"\naction = "mask"\n'
        )
        out = load_rules(rules).apply(trace)
        masked = {a.path for a in out.runs[0].attempts if a.outputs.get("secret") == "***"}
        assert masked == {"call/c2"}

    def test_expression_params_are_code(self, tmp_path: Path) -> None:
        """hash leaves an expression param (its inputs have their own rules); mask replaces it."""
        wf = WorkflowDefinition("w", (Step("s", params={"t": Param(expression="api_token")}),))
        trace = make_trace(wf.steps, trace_id="e")
        hashed = load_rules(write(tmp_path, '[[rule]]\nparam = "t"\naction = "hash"\n'), environ=KEY).apply(
            trace
        )
        assert hashed.definition.steps[0].params["t"].expression == "api_token"
        masked = load_rules(write(tmp_path, '[[rule]]\nparam = "t"\naction = "mask"\n', "m.toml")).apply(
            trace
        )
        assert masked.definition.steps[0].params["t"] == Param(value="***")


class TestRulesFile:
    @pytest.mark.parametrize(
        ("text", "where", "what"),
        [
            (
                '[[rule]]\nparam = "a"\naction = "hash"\n\n[[rule]]\nparam = "b"\nacton = "mask"\n',
                "rules.toml:7: rule[1].acton",
                "unknown key 'acton'",
            ),
            (
                '[redact]\nkey_enf = "X"\n[[rule]]\nparam = "a"\naction = "mask"\n',
                "rules.toml:2: redact.key_enf",
                "unknown key 'key_enf'",
            ),
            ('[rules]\nparam = "a"\n', "rules.toml:1: rules", "unknown table or key 'rules'"),
            (
                '[[rule]]\nparam = "a"\naction = "scramble"\n',
                "rules.toml:3: rule[0].action",
                "unknown action",
            ),
            (
                '[[rule]]\nparam = "a"\noutput = "b"\naction = "drop"\n',
                "rules.toml:1: rule[0]",
                "exactly one",
            ),
            ('[[rule]]\nparam = 3\naction = "drop"\n', "rules.toml:2: rule[0].param", "must be a string"),
            ("", "rules.toml", "no rules"),
            ("[[rule]\n", "rules.toml", "not valid TOML"),
        ],
    )
    def test_bad_rules_are_located(self, tmp_path: Path, text: str, where: str, what: str) -> None:
        with pytest.raises(RedactionRulesError) as info:
            load_rules(write(tmp_path, text), environ=KEY)
        message = str(info.value)
        assert message.startswith(str(tmp_path / where)), message
        assert what in message

    def test_hash_needs_a_key(self, tmp_path: Path) -> None:
        rules = write(tmp_path, '[[rule]]\nparam = "a"\naction = "hash"\n')
        with pytest.raises(RedactionRulesError, match="SHADOW_REDACT_KEY is unset"):
            load_rules(rules, environ={})
        keyed = write(
            tmp_path, '[redact]\nkey_file = "k.key"\n[[rule]]\nparam = "a"\naction = "hash"\n', "f.toml"
        )
        with pytest.raises(RedactionRulesError, match=r"f\.toml:2: redact\.key_file: cannot read"):
            load_rules(keyed, environ={})
        (tmp_path / "k.key").write_text("file-key\n")
        assert load_rules(keyed, environ={}).key == b"file-key"
