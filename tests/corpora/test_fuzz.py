"""Hypothesis fuzzing of the codec and validator with hostile traces (issue 15 item 4).

Every generated line either loads as a :class:`~corpora.model.Trace` or raises the project's own
:class:`~corpora.errors.TraceError` (with a code and a JSON path): never another exception. Every line
that loads replays on the oracle, legacy and actor engines without raising, and each run of the
record has ended or is reported stuck.

Lines are real traces (the generator and the test builders, small ones) with 1-4 mutations: numbers
at and just past their bounds (:mod:`corpora.bounds`), huge and tiny numbers, NaN / Infinity in their
JSON spellings, 5,000-digit integers, deep nesting, long strings, unicode (lone surrogates, NUL, RTL,
emoji), unknown keys, wrong types, deleted fields, and policy fields (timeouts, retry limits,
backoff, duration strings) set on steps that had none.

The normal suite runs ``SHADOW_FUZZ_EXAMPLES`` examples (default 300, a few seconds); the slow-marked
test runs 10,000 and prints its counts: ``pytest -m slow -s tests/corpora/test_fuzz.py``.
"""

from __future__ import annotations

import collections
import copy
import json
import os
import time
from collections.abc import Callable
from typing import Any

import pytest
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis import strategies as st

from corpora.bounds import DURATION_MAX_SECONDS, INT64_MAX, INT64_MIN, TIMESTAMP_MAX_SECONDS
from corpora.codec import encode
from corpora.errors import TraceError
from corpora.generator import generate_trace
from corpora.io import dump_trace, load_trace
from corpora.model import Trace
from corpora.testing import chain_trace, diamond_trace, foreach_trace, json_slots, subworkflow_trace
from engines.api import EngineError, ReplayOptions
from engines.core.statuses import TERMINAL_WORKFLOW_STATUSES
from shadow.engines import build_engine, resolve_engine

FAST_EXAMPLES = int(os.environ.get("SHADOW_FUZZ_EXAMPLES", "300"))
SLOW_EXAMPLES = 10_000
ENGINES = ("oracle", "legacy", "actor")

# Small real traces: replays stay in milliseconds, so thousands of examples run in minutes.
_GENERATED = [generate_trace(11, i) for i in (59, 39, 32, 57, 49, 29, 22, 8, 20, 44, 4, 23)]
SEEDS: list[dict[str, Any]] = [
    encode(t)
    for t in (
        chain_trace(3),
        diamond_trace(),
        foreach_trace(2),
        subworkflow_trace(2, runs=2),
        *_GENERATED,
    )
]

# Raw JSON spellings json.dumps cannot write: a marker string is swapped for the token in the text.
RAW_TOKENS = (
    "NaN",
    "Infinity",
    "-Infinity",
    "1e999",
    "-1e999",
    "1E400",
    "-0",
    "-0.0",
    "1e-400",
    "0e0",
    "4.9e-324",
    "9" * 5000,
    "-" + "9" * 5000,
    "1" + "0" * 400,
    "[" * 3000 + "]" * 3000,
    "[" * 200_000 + "]" * 200_000,
    '"\\ud800"',
    '"\\udfff\\ud800"',
    '"\\u0000"',
    '"a\\u0000b"',
)
_RAW = "\x00raw:{}\x00"

EDGE_NUMBERS = (
    0,
    -0.0,
    1,
    -1,
    5e-324,
    1e-300,
    0.001,
    0.5,
    59.999,
    1e15,
    2**53,
    2**53 + 1,
    1e300,
    1.7976931348623157e308,
    DURATION_MAX_SECONDS,
    DURATION_MAX_SECONDS + 1,
    DURATION_MAX_SECONDS + 0.001,
    float(DURATION_MAX_SECONDS),
    TIMESTAMP_MAX_SECONDS - 1,
    TIMESTAMP_MAX_SECONDS - 0.001,
    TIMESTAMP_MAX_SECONDS,
    TIMESTAMP_MAX_SECONDS + 1,
    253402300799,
    86_400,
    86_401,
    120 * 86_400,
    120 * 86_400 + 1,
    99,
    100,
    2**31 - 1,
    2**31,
    INT64_MAX,
    INT64_MAX + 1,
    INT64_MIN,
    INT64_MIN - 1,
    2**64,
    10**30,
    10**400,
    -(10**400),
    2**1024,
)
UNICODE = st.text(
    st.characters(codec=None, min_codepoint=0, max_codepoint=0x10FFFF), max_size=8
) | st.sampled_from(
    ["", "\x00", "\ud800", "\udfff", "\u202e", "\U0001f600", "é", "ﬁ", "\ufeff", " ", "/", "[0]"]
)
LONG_TEXT = st.builds(
    lambda c, n: c * n, st.sampled_from(["a", "\U0001f600", "$", "\x00", "9"]), st.integers(1_000, 60_000)
)
DURATION_TEXT = st.sampled_from(
    [
        "9" * 400 + " d",
        "9" * 30 + "d",
        "99999999999 d",
        "1e400 s",
        "inf",
        "nan",
        "NaN s",
        "-5 s",
        "0 s",
        "0",
        "120d",
        "121 d",
        "10000000000 ms",
        "1.5 h",
        "1d 2h 3m 4s",
        "٣ s",
        "１２ s",
        "$n",
        "${n}",
        "$missing",
        "$$",
        "9" * 5000,
        "-" + "9" * 30,
        " ",
        "5 min,",
        "5 lightyears",
    ]
)
NUMBERS = st.sampled_from(EDGE_NUMBERS) | st.floats() | st.integers() | st.integers(-(10**500), 10**500)
SCALARS = (
    st.none()
    | st.booleans()
    | NUMBERS
    | UNICODE
    | DURATION_TEXT
    | st.sampled_from(RAW_TOKENS).map(_RAW.format)
)


def _nested(depth: int, leaf: Any) -> Any:
    for i in range(depth):
        leaf = [leaf] if i % 2 else {"k": leaf}
    return leaf


HOSTILE = (
    st.recursive(
        SCALARS,
        lambda inner: st.lists(inner, max_size=3) | st.dictionaries(UNICODE, inner, max_size=3),
        max_leaves=6,
    )
    | LONG_TEXT
    | st.builds(_nested, st.integers(10, 200), SCALARS)
)

STEP_FIELDS = {
    "timeout": NUMBERS | DURATION_TEXT,
    "retry_policy": st.fixed_dictionaries(
        {},
        optional={
            "error_retry_limit": NUMBERS | DURATION_TEXT,
            "platform_retry_limit": NUMBERS,
            "timeout_retry_limit": st.integers(0, 99) | st.just("$n"),
            "backoff": st.fixed_dictionaries(
                {},
                optional={
                    "type": st.sampled_from(
                        ["EXPONENTIAL_BACKOFF", "FIXED_BACKOFF", "fixed_backoff", "other"]
                    ),
                    "error_retry_backoff_in_secs": NUMBERS | DURATION_TEXT,
                    "error_retry_exponent": NUMBERS | DURATION_TEXT,
                    "error_retry_limit_in_secs": NUMBERS | DURATION_TEXT,
                    "platform_retry_backoff_in_secs": NUMBERS,
                    "platform_retry_exponent": st.integers(0, 2**70),
                    "timeout_retry_limit_in_secs": NUMBERS,
                },
            ),
        },
    ),
    "failure_mode": st.sampled_from(
        ["FAIL_IMMEDIATELY", "FAIL_AFTER_RUNNING", "IGNORE_FAILURE", "ignore_failure"]
    ),
    "params": st.dictionaries(
        st.sampled_from(["n", "x", "step_id", "RUN_TS", "m"]),
        st.fixed_dictionaries({"value": SCALARS})
        | st.fixed_dictionaries(
            {
                "expression": st.sampled_from(
                    [
                        "n * 2",
                        "n + 1",
                        "n / 0",
                        "n ** 400",
                        "10 ** 400",
                        "1e308 * 10",
                        "RUN_TS * 1000",
                        "n",
                        "x + 'a'",
                        "Math.pow(10, 400)",
                        "n > 1e308",
                        "-n",
                        "n % 0",
                        "(n)" * 5,
                    ]
                )
            }
        ),
        max_size=3,
    ),
}


def _steps(data: Any) -> list[dict[str, Any]]:
    """Every step object in the trace (workflow, subworkflows, foreach bodies)."""
    found: list[dict[str, Any]] = []
    stack = [data]
    while stack:
        node = stack.pop()
        if isinstance(node, dict):
            if "id" in node and ("transitions" in node or "type" in node or set(node) <= {"id"}):
                found.append(node)
            stack.extend(node.values())
        elif isinstance(node, list):
            stack.extend(node)
    return found


@st.composite
def hostile_lines(draw: st.DrawFn) -> str:
    """A seed trace with 1-4 mutations, as one JSON line (possibly with raw tokens spliced in)."""
    data = copy.deepcopy(draw(st.sampled_from(SEEDS)))
    for _ in range(draw(st.integers(1, 4))):
        op = draw(
            st.sampled_from(
                [
                    "number",
                    "number",
                    "number",
                    "step_field",
                    "step_field",
                    "run_field",
                    "replace",
                    "delete",
                    "rename",
                    "unknown_key",
                    "wrap",
                ]
            )
        )
        if op == "step_field":
            steps = _steps(data)
            if steps:
                step = draw(st.sampled_from(steps))
                name = draw(st.sampled_from(sorted(STEP_FIELDS)))
                step[name] = draw(STEP_FIELDS[name])
            continue
        if op == "run_field":
            runs = data.get("runs")
            run = draw(st.sampled_from(runs)) if isinstance(runs, list) and runs else None
            if isinstance(run, dict):
                name = draw(st.sampled_from(["trigger_time", "params", "run_id", "initiator"]))
                run[name] = draw(
                    NUMBERS
                    if name == "trigger_time"
                    else st.dictionaries(st.sampled_from(["n", "x", "m"]), SCALARS, max_size=2)
                    if name == "params"
                    else UNICODE
                )
            continue
        slots = [s for s in json_slots(data) if s]
        if op == "number":
            numeric = [s for s in slots if _get(data, s).__class__ in (int, float)]
            slots = numeric or slots
        if not slots:
            break
        path = draw(st.sampled_from(slots))
        parent = _get(data, path[:-1])
        key = path[-1]
        if op == "number":
            parent[key] = draw(NUMBERS)
        elif op == "replace":
            parent[key] = draw(HOSTILE)
        elif op == "delete":
            del parent[key]
        elif op == "rename" and isinstance(parent, dict):
            parent[draw(UNICODE)] = parent.pop(key)
        elif op == "unknown_key" and isinstance(parent, dict):
            parent[draw(UNICODE | st.sampled_from(["Timeout", "durationMs", "__proto__", "format"]))] = draw(
                SCALARS
            )
        elif op == "wrap":
            parent[key] = draw(
                st.sampled_from([lambda v: [v], lambda v: {"value": v}, lambda v: _nested(70, v)])
            )(parent[key])
    text = json.dumps(data, ensure_ascii=draw(st.booleans()), allow_nan=True)
    for token in RAW_TOKENS:
        text = text.replace(json.dumps(_RAW.format(token)), token)
    return text


def _get(data: Any, path: tuple[Any, ...]) -> Any:
    for key in path:
        data = data[key]
    return data


_ENGINES: dict[str, Any] = {}
# Shrinking replays each candidate on three engines: minutes. A failure prints the generated line as is.
_NO_SHRINK = (Phase.explicit, Phase.reuse, Phase.generate)


def _engine(name: str) -> Any:
    if name not in _ENGINES:
        _ENGINES[name] = build_engine(resolve_engine(name))
    return _ENGINES[name]


def _load(line: str) -> Trace | TraceError:
    try:
        return load_trace(line)
    except TraceError as exc:
        return exc


def check_line(line: str, tally: Callable[[str], None] = lambda _: None) -> None:
    """The property: a typed error, or a trace every engine replays to an ended or stuck run.

    An engine may refuse a valid trace with its own typed, non-retryable :class:`EngineError` (a
    ``DefinitionError``: an expression outside the supported subset, which the corpus validator does
    not parse); any other exception is an internal error and fails."""
    trace = _load(line)
    if isinstance(trace, TraceError):
        assert trace.code
        assert trace.location.json_path.startswith("$")
        str(trace)  # printable (no 5,000-digit repr, no surrogate trouble)
        tally(f"error:{trace.code}")
        return
    assert isinstance(trace, Trace)
    assert load_trace(dump_trace(trace)) == trace  # what loads also writes and reads back
    tally("valid")
    for name in ENGINES:
        try:
            record = _engine(name).replay(trace, ReplayOptions(seed=0))
        except EngineError as exc:
            if exc.retryable:  # a typed refusal is fine; a retryable one on a pure replay is not
                raise
            tally(f"engine_error:{name}:{type(exc).__name__}")
            continue
        assert record.trace_id == trace.trace_id
        for run in record.runs:
            # a run a STRICT_SEQUENTIAL failure (or workflow_concurrency 0) never let start stays CREATED: the
            # correct outcome, not a hang (docs/SEMANTICS-CHOICES.md, "Run strategies")
            never_started = run.status == "CREATED" and run.started_at is None and not run.attempts
            assert run.stuck or run.status in TERMINAL_WORKFLOW_STATUSES or never_started, (
                name,
                run.run_id,
                run.status,
            )
        tally(f"replayed:{name}")


class TestFuzz:
    @settings(
        max_examples=FAST_EXAMPLES,
        deadline=None,
        derandomize=True,
        phases=_NO_SHRINK,
        suppress_health_check=[
            HealthCheck.too_slow,
            HealthCheck.data_too_large,
            HealthCheck.large_base_example,
        ],
    )
    @given(hostile_lines())
    def test_hostile_traces_give_typed_errors_or_replay(self, line: str) -> None:
        check_line(line)

    def test_the_seeds_replay(self) -> None:
        """The unmutated seeds load and replay (the fuzz starts from valid traces)."""
        for data in SEEDS:
            check_line(json.dumps(data))


_TALLY: collections.Counter[str] = collections.Counter()


@pytest.mark.slow
@pytest.mark.timeout(3600)  # about 5-6 minutes on one core; the suite's 300 s default would cut it short
class TestFuzzTenThousand:
    @settings(
        max_examples=SLOW_EXAMPLES,
        deadline=None,
        database=None,
        phases=_NO_SHRINK,
        suppress_health_check=list(HealthCheck),
    )
    @given(hostile_lines())
    def test_ten_thousand_hostile_traces(self, line: str) -> None:
        if not _TALLY:
            _TALLY["_start"] = int(time.monotonic())
        _TALLY["examples"] += 1
        check_line(line, lambda key: _TALLY.update([key]))

    def test_report_counts(self) -> None:
        """Runs after the fuzz (same class, file order): print what it covered."""
        if not _TALLY:
            pytest.skip("the 10,000-example fuzz did not run")
        elapsed = time.monotonic() - _TALLY.pop("_start")
        print(f"\nfuzz: {_TALLY['examples']} examples in {elapsed:.0f} s")
        for key, count in sorted(_TALLY.items()):
            print(f"  {key}: {count}")
        assert _TALLY["examples"] >= SLOW_EXAMPLES
