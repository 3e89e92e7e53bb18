"""Redaction: take secrets out of traces before anything is written (``--redact RULES``).

A rules file (TOML) names values by workflow, step and param or output name (globs) and says what to
do with each::

    [redact]                          # optional
    key_env = "SHADOW_REDACT_KEY"     # the HMAC key for "hash" (default: this variable)
    # key_file = "redact.key"         # or a file (relative to the rules file); one of the two
    mask = "***"                      # the text "mask" writes (default "***")

    [[rule]]
    name = "api tokens"               # optional, default "rule N" (1-based)
    workflow = "billing-*"            # glob of the workflow id (default "*")
    step = "*"                        # glob of the step id (default "*"; run params and workflow
                                      # params have the step id "", which "*" matches)
    param = "*token*"                 # glob of a param name ... or
    # output = "card_*"               # ... of an output name (exactly one of the two)
    action = "hash"                   # hash | mask | drop

What a rule touches: ``param`` rules the run params (``Run.params``: step ""), the literal values of
workflow params and step params of every definition (subworkflows and foreach bodies included, each
under its own workflow id) and foreach loop params; ``output`` rules the outputs of recorded attempts
(``RecordedAttempt.outputs``; the step id is the attempt path's last segment without its loop index,
the workflow the definition the path leads into). The first matching rule wins for a value.

* ``hash``: keyed HMAC-SHA256 of the value's canonical JSON, written as the string ``"hmac:<32 hex>"``.
  Equal values give equal hashes under one key, so equality tests (``a == b`` in a condition, a
  ``stepid__output`` compared with a run param) and engine-to-engine comparisons are preserved. Lists
  are hashed element by element and objects value by value (their shape stays: a foreach still has
  as many iterations). What it cannot preserve: anything but equality. A number or boolean becomes a
  string, so ``amount > 100``, arithmetic, ``len`` of a string, string concatenation with a literal
  and comparisons with a literal written in the definition's expressions (which are code, never
  rewritten) no longer mean what they meant in production; both engines still see the same values, so
  they still agree or diverge with each other, but a replay may then differ from ``Run.observed``.
  ``None`` stays ``None``.
* ``mask``: the value becomes the mask text (all masked values are equal to each other).
* ``drop``: the param or output is removed (a step that reads it then fails to resolve it, in both
  engines alike).

A param defined by an expression is code, not data: ``hash`` leaves the expression (the values it reads
have their own rules), ``mask`` replaces it with the mask text, ``drop`` removes it.

Each trace records the rules that changed it in ``metadata.redactions`` (rule, action, how many values,
and for ``hash`` a fingerprint of the key). Rules files are checked strictly: an unknown table or key,
a missing or bad value is a :class:`RedactionRulesError` naming ``file:line`` and the key path.
"""

from __future__ import annotations

import fnmatch
import hashlib
import hmac
import json
import os
import re
import tomllib
from collections.abc import Callable, Mapping
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from corpora.model import (
    Foreach,
    JsonValue,
    Param,
    RecordedAttempt,
    Redaction,
    Run,
    Step,
    StepType,
    Trace,
    WorkflowDefinition,
)
from corpora.validate import parse_step_path

__all__ = ["DEFAULT_KEY_ENV", "HASH_PREFIX", "RedactionRulesError", "Redactor", "Rule", "load_rules"]

DEFAULT_KEY_ENV = "SHADOW_REDACT_KEY"
HASH_PREFIX = "hmac:"
ACTIONS = ("hash", "mask", "drop")
_TOP_KEYS = {"redact", "rule"}
_REDACT_KEYS = {"key_env", "key_file", "mask"}
_RULE_KEYS = {"name", "workflow", "step", "param", "output", "action"}


class RedactionRulesError(ValueError):
    """A rules file that cannot be used: says where (``file:line``, key path) and what is wrong."""


@dataclass(frozen=True, slots=True)
class Rule:
    name: str
    action: str
    workflow: str = "*"
    step: str = "*"
    param: str | None = None
    output: str | None = None

    def matches(self, kind: str, workflow: str, step: str, name: str) -> bool:
        glob = self.param if kind == "param" else self.output
        return (
            glob is not None
            and fnmatch.fnmatchcase(name, glob)
            and fnmatch.fnmatchcase(workflow, self.workflow)
            and fnmatch.fnmatchcase(step, self.step)
        )


def _line_of(text: str, table: str | None, index: int | None, key: str | None) -> int | None:
    """Best-effort line number (1-based) of ``key`` in ``[table]`` / the ``index``-th ``[[table]]``."""
    current: tuple[str | None, int] = (None, -1)
    counts: dict[str, int] = {}
    header_line: int | None = None
    for number, line in enumerate(text.splitlines(), 1):
        stripped = line.strip()
        m = re.match(r"^\[\[\s*([^\]]+?)\s*\]\]|^\[\s*([^\]]+?)\s*\]", stripped)
        if m:
            name = (m.group(1) or m.group(2)).strip("\"' ")
            if m.group(1):
                counts[name] = counts.get(name, -1) + 1
                current = (name, counts[name])
            else:
                current = (name, -1)
            if current == (table, -1 if index is None else index):
                header_line = number
                if key is None:
                    return number
            continue
        if current == (table, -1 if index is None else index) and key is not None:
            km = re.match(r"^[\"']?([A-Za-z0-9_\-]+)[\"']?\s*=", stripped)
            if km and km.group(1) == key:
                return number
    return header_line


@dataclass(frozen=True, slots=True)
class Redactor:
    """Rules plus the HMAC key, ready to apply to traces (:meth:`apply`)."""

    rules: tuple[Rule, ...]
    key: bytes | None = None
    mask_text: str = "***"
    source: str = ""

    @property
    def key_id(self) -> str | None:
        """A fingerprint of the key (not the key): traces hashed with the same key carry the same id."""
        if self.key is None:
            return None
        return hmac.new(self.key, b"workflow-shadow redaction key id", hashlib.sha256).hexdigest()[:12]

    def hash_value(self, value: JsonValue) -> JsonValue:
        """The keyed hash of ``value`` (element-wise for lists, value-wise for objects; None stays None)."""
        if value is None:
            return None
        if isinstance(value, list):
            return [self.hash_value(v) for v in value]
        if isinstance(value, dict):
            return {k: self.hash_value(v) for k, v in value.items()}
        assert self.key is not None
        canonical = json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
        digest = hmac.new(self.key, canonical.encode("utf-8", "surrogatepass"), hashlib.sha256).hexdigest()
        return HASH_PREFIX + digest[:32]

    def _rule_for(self, kind: str, workflow: str, step: str, name: str) -> Rule | None:
        for rule in self.rules:
            if rule.matches(kind, workflow, step, name):
                return rule
        return None

    def apply(self, trace: Trace) -> Trace:
        """``trace`` with every matching value redacted and the rules that changed it recorded in
        ``metadata.redactions`` (appended to any recorded before). A trace nothing matched is returned
        as it was."""
        counts: dict[str, int] = {}
        run = _Pass(self, counts)
        definition = run.definition(trace.definition)
        subworkflows = {wid: run.definition(d) for wid, d in trace.subworkflows.items()}
        runs = tuple(run.run(trace, r) for r in trace.runs)
        if not counts:
            return trace
        notes = tuple(
            Redaction(rule=r.name, action=r.action, values=counts[r.name],
                      key_id=self.key_id if r.action == "hash" else None)
            for r in self.rules if r.name in counts
        )  # fmt: skip
        metadata = replace(trace.metadata, redactions=trace.metadata.redactions + notes)
        return replace(trace, definition=definition, subworkflows=subworkflows, runs=runs, metadata=metadata)


class _Pass:
    """One application of a redactor to one trace, counting the values each rule changed."""

    def __init__(self, redactor: Redactor, counts: dict[str, int]) -> None:
        self.r = redactor
        self.counts = counts

    def _value(self, rule: Rule, value: JsonValue) -> JsonValue:
        self.counts[rule.name] = self.counts.get(rule.name, 0) + 1
        return self.r.hash_value(value) if rule.action == "hash" else self.r.mask_text

    def values(
        self, kind: str, workflow: str, step: str, values: Mapping[str, JsonValue]
    ) -> dict[str, JsonValue]:
        out: dict[str, JsonValue] = {}
        for name, value in values.items():
            rule = self.r._rule_for(kind, workflow, step, name)
            if rule is None:
                out[name] = value
            elif rule.action == "drop":
                self.counts[rule.name] = self.counts.get(rule.name, 0) + 1
            else:
                out[name] = self._value(rule, value)
        return out

    def params(self, workflow: str, step: str, params: Mapping[str, Param]) -> dict[str, Param]:
        out: dict[str, Param] = {}
        for name, param in params.items():
            rule = self.r._rule_for("param", workflow, step, name)
            if rule is None:
                out[name] = param
            elif rule.action == "drop":
                self.counts[rule.name] = self.counts.get(rule.name, 0) + 1
            elif param.expression is not None:
                if rule.action == "mask":
                    out[name] = Param(value=self._value(rule, None))
                else:
                    out[name] = param  # code, not data: the values it reads have their own rules
            else:
                out[name] = Param(value=self._value(rule, param.value))
        return out

    def steps(self, workflow: str, steps: tuple[Step, ...]) -> tuple[Step, ...]:
        out = []
        for step in steps:
            changed = replace(step, params=self.params(workflow, step.id, step.params))
            if step.foreach is not None:
                fe: Foreach = step.foreach
                changed = replace(changed, foreach=replace(
                    fe, loop_params=self.params(workflow, step.id, fe.loop_params),
                    steps=self.steps(workflow, fe.steps)))  # fmt: skip
            out.append(changed)
        return tuple(out)

    def definition(self, d: WorkflowDefinition) -> WorkflowDefinition:
        return replace(d, params=self.params(d.id, "", d.params), steps=self.steps(d.id, d.steps))

    def run(self, trace: Trace, run: Run) -> Run:
        params = self.values("param", trace.definition.id, "", run.params)
        attempts = tuple(self.attempt(trace, a) for a in run.attempts)
        return replace(run, params=params, attempts=attempts)

    def attempt(self, trace: Trace, attempt: RecordedAttempt) -> RecordedAttempt:
        if not attempt.outputs:
            return attempt
        workflow, step = _owner(trace, attempt.path)
        return replace(attempt, outputs=self.values("output", workflow, step, attempt.outputs))


def _owner(trace: Trace, path: str) -> tuple[str, str]:
    """(workflow id, step id) of the step an attempt path names: subworkflow steps switch workflows."""
    try:
        segments = parse_step_path(path)
    except Exception:  # a path the validator would refuse: match it by its last segment
        return trace.definition.id, path.rsplit("/", 1)[-1].split("[", 1)[0]
    workflow = trace.definition
    steps: tuple[Step, ...] = workflow.steps
    wid = workflow.id
    for i, (step_id, _index) in enumerate(segments):
        if i == len(segments) - 1:
            return wid, step_id
        step = next((s for s in steps if s.id == step_id), None)
        if step is None:
            break
        if step.type is StepType.FOREACH and step.foreach is not None:
            steps = step.foreach.steps
        elif step.type is StepType.SUBWORKFLOW and step.subworkflow is not None:
            child = trace.subworkflows.get(step.subworkflow.workflow_id)
            if child is None:
                break
            wid, steps = child.id, child.steps
        else:
            break
    return wid, segments[-1][0] if segments else path


def _located(
    path: str, text: str, table: str | None, index: int | None, key: str | None, message: str
) -> str:
    line = _line_of(text, table, index, key) if table is not None else None
    where = f"{path}:{line}" if line else path
    keypath = (
        ".".join(p for p in (table if index is None else f"{table}[{index}]", key) if p) if table else ""
    )
    return f"{where}: {keypath + ': ' if keypath else ''}{message}"


def load_rules(
    path: str | os.PathLike[str],
    *,
    environ: Mapping[str, str] | None = None,
    read_key: Callable[[Path], bytes] | None = None,
) -> Redactor:
    """Read and check a rules file; resolve the HMAC key when a rule hashes. Raises
    :class:`RedactionRulesError` (located) for anything wrong, including a missing key."""
    env = os.environ if environ is None else environ
    file = Path(path)
    shown = os.fspath(path)
    try:
        text = file.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise RedactionRulesError(f"{shown}: cannot read the redaction rules: {exc}") from None
    try:
        data: dict[str, Any] = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise RedactionRulesError(f"{shown}: not valid TOML: {exc}") from None

    def fail(table: str | None, index: int | None, key: str | None, message: str) -> RedactionRulesError:
        return RedactionRulesError(_located(shown, text, table, index, key, message))

    for key in data:
        if key not in _TOP_KEYS:
            raise fail(key, None, None, f"unknown table or key {key!r} (known: [redact], [[rule]])")
    settings = data.get("redact", {})
    if not isinstance(settings, dict):
        raise fail("redact", None, None, "must be a table: [redact]")
    for key in settings:
        if key not in _REDACT_KEYS:
            raise fail("redact", None, key, f"unknown key {key!r} (known: {', '.join(sorted(_REDACT_KEYS))})")
    for key in _REDACT_KEYS:
        if key in settings and not isinstance(settings[key], str):
            raise fail("redact", None, key, f"must be a string, got {type(settings[key]).__name__}")
    raw_rules = data.get("rule", [])
    if not isinstance(raw_rules, list) or not raw_rules:
        raise fail(
            "rule" if "rule" in data else None,
            None,
            None,
            "no rules: add at least one [[rule]] table with param or output and action",
        )
    rules: list[Rule] = []
    names: set[str] = set()
    for i, raw in enumerate(raw_rules):
        if not isinstance(raw, dict):
            raise fail("rule", i, None, "must be a table: [[rule]]")
        for key in raw:
            if key not in _RULE_KEYS:
                raise fail("rule", i, key, f"unknown key {key!r} (known: {', '.join(sorted(_RULE_KEYS))})")
        for key, value in raw.items():
            if not isinstance(value, str):
                raise fail("rule", i, key, f"must be a string, got {type(value).__name__}")
        action = raw.get("action")
        if action is None:
            raise fail("rule", i, None, f"missing action (one of {', '.join(ACTIONS)})")
        if action not in ACTIONS:
            raise fail("rule", i, "action", f"unknown action {action!r} (one of {', '.join(ACTIONS)})")
        if ("param" in raw) == ("output" in raw):
            raise fail("rule", i, None, 'name exactly one of param = "GLOB" or output = "GLOB"')
        name = raw.get("name", f"rule {i + 1}")
        if name in names:
            raise fail("rule", i, "name", f"duplicate rule name {name!r}")
        names.add(name)
        rules.append(
            Rule(
                name=name,
                action=action,
                workflow=raw.get("workflow", "*"),
                step=raw.get("step", "*"),
                param=raw.get("param"),
                output=raw.get("output"),
            )
        )
    hmac_key: bytes | None = None
    if any(r.action == "hash" for r in rules):
        if "key_env" in settings and "key_file" in settings:
            raise fail("redact", None, "key_file", "set key_env or key_file, not both")
        if "key_file" in settings:
            key_path = file.parent / settings["key_file"]
            try:
                hmac_key = (read_key or (lambda p: p.read_bytes()))(key_path).strip()
            except OSError as exc:
                raise fail(
                    "redact",
                    None,
                    "key_file",
                    f"cannot read the HMAC key file {key_path}: {exc.strerror or exc}",
                ) from None
            if not hmac_key:
                raise fail("redact", None, "key_file", f"the HMAC key file {key_path} is empty")
        else:
            var = settings.get("key_env", DEFAULT_KEY_ENV)
            value = env.get(var, "")
            if not value:
                raise fail(
                    "redact" if "key_env" in settings else None,
                    None,
                    "key_env" if "key_env" in settings else None,
                    f"rules hash values but the HMAC key variable {var} is unset or empty; export it "
                    "(or set [redact] key_file)",
                )
            hmac_key = value.encode("utf-8")
    mask = settings.get("mask", "***")
    return Redactor(rules=tuple(rules), key=hmac_key, mask_text=mask, source=shown)
