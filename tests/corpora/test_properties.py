"""Property-based tests: any valid trace round-trips; mutated and random input only ever raises TraceError."""

from __future__ import annotations

import copy
import json
from pathlib import Path

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from corpora.bounds import INT64_MAX, INT64_MIN, MAX_TRIGGER_SPAN_SECONDS, TIMESTAMP_MAX_SECONDS
from corpora.codec import encode
from corpora.errors import TraceError
from corpora.generator import generate_trace
from corpora.io import dump_trace, load_trace, read_traces, write_traces
from corpora.model import (
    FailureMode,
    Outcome,
    Param,
    RecordedAttempt,
    RetryPolicy,
    Run,
    Step,
    StepType,
    Trace,
    TraceMetadata,
    Transition,
    WorkflowDefinition,
)
from corpora.testing import diamond_trace, foreach_trace, json_slots, subworkflow_trace

TEXT = st.text(st.characters(exclude_categories=("Cs",)), max_size=12)
IDS = st.text("abcdefghijklmnopqrstuvwxyz_0123456789-", min_size=1, max_size=8)
FINITE = st.floats(allow_nan=False, allow_infinity=False)
INT64 = st.integers(INT64_MIN, INT64_MAX)
EPOCH = st.floats(0, TIMESTAMP_MAX_SECONDS - MAX_TRIGGER_SPAN_SECONDS)
JSON = st.recursive(
    st.none() | st.booleans() | INT64 | FINITE | TEXT,
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(TEXT, inner, max_size=3),
    max_leaves=8,
)
PARAMS = st.dictionaries(IDS, st.builds(Param, value=JSON) | st.builds(Param, expression=TEXT), max_size=3)


@st.composite
def valid_traces(draw: st.DrawFn) -> Trace:
    """A random DAG of leaf steps (edges only go forward), runs with attempts for its steps."""
    ids = draw(st.lists(IDS, min_size=1, max_size=8, unique=True))
    steps = []
    for i, sid in enumerate(ids):
        later = ids[i + 1 :]
        targets = draw(st.lists(st.sampled_from(later), unique=True, max_size=3)) if later else []
        steps.append(
            Step(
                id=sid,
                type=draw(st.sampled_from([t for t in StepType if t.is_leaf])),
                params=draw(PARAMS),
                transitions=tuple(Transition(t, draw(st.none() | TEXT)) for t in targets),
                retry_policy=draw(
                    st.none() | st.builds(RetryPolicy, error_retry_limit=st.integers(0, 99) | st.just("$n"))
                ),
                timeout=draw(st.none() | st.integers(1, 10**6) | st.floats(1, 1e6) | TEXT),
                failure_mode=draw(st.none() | st.sampled_from(FailureMode)),
                tags=tuple(draw(st.lists(TEXT, max_size=2))),
            )
        )
    runs = []
    for r in range(draw(st.integers(1, 3))):
        attempts = []
        for sid in draw(st.lists(st.sampled_from(ids), unique=True)):
            for n in range(1, draw(st.integers(1, 3)) + 1):
                attempts.append(
                    RecordedAttempt(
                        sid,
                        n,
                        draw(st.sampled_from(Outcome)),
                        draw(st.floats(0, 1e7)),
                        draw(st.dictionaries(TEXT, JSON, max_size=2)),
                    )
                )
        trigger = (
            draw(EPOCH) if not runs else runs[0].trigger_time + draw(st.floats(0, MAX_TRIGGER_SPAN_SECONDS))
        )
        runs.append(
            Run(f"r{r}", trigger, draw(st.dictionaries(TEXT, JSON, max_size=2)), draw(TEXT), tuple(attempts))
        )
    return Trace(
        trace_id=draw(IDS),
        definition=WorkflowDefinition(draw(IDS), tuple(steps), params=draw(PARAMS)),
        runs=tuple(runs),
        metadata=TraceMetadata(owner=draw(TEXT), tags=tuple(draw(st.lists(TEXT, max_size=2)))),
    )


SEEDS = [
    encode(t)
    for t in (
        diamond_trace(),
        foreach_trace(2),
        subworkflow_trace(2, runs=2),
        generate_trace(3, 4),
        generate_trace(3, 0),
    )
]


@st.composite
def mutated_lines(draw: st.DrawFn) -> str | bytes:
    data = copy.deepcopy(draw(st.sampled_from(SEEDS)))
    for _ in range(draw(st.integers(1, 3))):
        slots = [s for s in json_slots(data) if s]
        if not slots:
            break
        path = draw(st.sampled_from(slots))
        parent = data
        for key in path[:-1]:
            parent = parent[key]
        op = draw(st.sampled_from(["delete", "replace", "rename"]))
        if op == "delete":
            del parent[path[-1]]
        elif op == "replace":
            parent[path[-1]] = draw(JSON | st.floats() | st.integers(-(10**30), 10**30))
        elif isinstance(parent, dict):
            parent[draw(TEXT)] = parent.pop(path[-1])
    text = json.dumps(data)
    form = draw(st.sampled_from(["json", "truncate", "bytes"]))
    if form == "truncate":
        return text[: draw(st.integers(0, len(text)))]
    if form == "bytes":
        raw = bytearray(text.encode())
        for _ in range(draw(st.integers(1, 4))):
            raw[draw(st.integers(0, len(raw) - 1))] = draw(st.integers(0, 255))
        return bytes(raw)
    return text


def _error_of(line: str | bytes) -> TraceError | None:
    """The TraceError loading ``line`` raises, or None; any other exception fails the test."""
    try:
        load_trace(line)
    except TraceError as exc:
        return exc
    return None


class TestRoundTrip:
    @settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
    @given(valid_traces())
    def test_any_valid_trace_round_trips(self, trace: Trace) -> None:
        """Writing any valid trace and reading it back gives an equal record."""
        assert load_trace(dump_trace(trace)) == trace


class TestHostileInput:
    @settings(max_examples=2000, deadline=None)
    @given(mutated_lines())
    def test_mutations_raise_only_located_trace_errors(self, line: str | bytes) -> None:
        """A mutated trace either loads or raises TraceError with a code and a JSON path."""
        error = _error_of(line)
        if error is not None:
            assert error.code
            assert error.location.json_path.startswith("$")

    @settings(max_examples=600, deadline=None)
    @given(st.binary(max_size=200) | st.text(max_size=200))
    def test_random_input_raises_only_trace_error(self, junk: str | bytes) -> None:
        """Random bytes and text never escape as another exception."""
        error = _error_of(junk)
        assert error is not None
        assert error.code in {"malformed_json", "schema", "unsupported_format"}


class TestReaderQuarantine:
    @settings(max_examples=25, deadline=None)
    @given(st.lists(mutated_lines(), min_size=1, max_size=6))
    def test_reader_locates_every_bad_line(self, lines: list[str | bytes]) -> None:
        """Reading a file of mutated lines yields one item per non-blank line, each error with file and line."""
        import tempfile

        with tempfile.TemporaryDirectory() as tmp:
            path = Path(tmp) / "c.jsonl"
            chunks = [line.encode() if isinstance(line, str) else line for line in lines]
            path.write_bytes(b"\n".join(c.replace(b"\n", b" ") for c in chunks) + b"\n")
            items = list(read_traces([path]))
            for item in items:
                if item.error is not None:
                    assert item.error.location.file == str(path)
                    assert item.error.location.line == item.line
            write_traces(Path(tmp) / "out.jsonl", [i.trace for i in items if i.trace is not None])


class TestGeneratorProperties:
    @settings(max_examples=60, deadline=None)
    @given(st.integers(0, 2**32), st.integers(0, 10**6).filter(lambda i: i % 100 != 37))
    def test_any_seed_and_index_gives_a_valid_trace(self, seed: int, index: int) -> None:
        """Every (seed, index) generates a trace that validates and survives a write/read round trip."""
        trace = generate_trace(seed, index)
        assert load_trace(dump_trace(trace)) == trace
