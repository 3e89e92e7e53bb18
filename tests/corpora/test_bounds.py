"""Issue 15 item 4: every number in a trace is bounded; an out-of-range value quarantines its trace.

Before the bounds, an integer duration of 10**400 ended ``corpus validate``, ``stats`` and ``replay``
with ``internal error: OverflowError`` for the whole file, and ``trigger_time`` 1e300 validated and then
crashed the legacy engine in ``engines/core/params.py``. These tests go through the real CLI entry point.
"""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path
from typing import Any

import pytest

from corpora.bounds import (
    DURATION_MAX_SECONDS,
    INT64_MAX,
    INT64_MIN,
    TIMESTAMP_MAX_SECONDS,
)
from corpora.codec import decode, encode
from corpora.errors import TraceError
from corpora.io import dump_trace, load_trace, read_traces
from corpora.model import Trace
from corpora.testing import chain_trace
from corpora.validate import validate_trace
from shadow.cli import main


def _lines(tmp_path: Path, bad: dict[str, Any], name: str = "mixed.jsonl") -> Path:
    """A file of a good trace, the ``bad`` one, and another good trace."""
    path = tmp_path / name
    good_a = dump_trace(chain_trace(2, trace_id="good-a"))
    good_b = dump_trace(chain_trace(3, trace_id="good-b"))
    path.write_text("\n".join([good_a, json.dumps(bad), good_b]) + "\n", encoding="utf-8")
    return path


def _bad(trace_id: str = "bad", **run_changes: Any) -> dict[str, Any]:
    data = encode(chain_trace(2, trace_id=trace_id))
    data["runs"][0].update(run_changes)
    return typing_cast_dict(data)


def typing_cast_dict(data: Any) -> dict[str, Any]:
    assert isinstance(data, dict)
    return data


def _huge_duration(trace_id: str = "bad") -> dict[str, Any]:
    data = _bad(trace_id)
    data["runs"][0]["attempts"][0]["duration"] = 10**400
    return data


def _load_error(data: Any) -> TraceError:
    with pytest.raises(TraceError) as info:
        load_trace(data if isinstance(data, str) else json.dumps(data))
    return info.value


class TestCliReproductions:
    """The reported crashes, through ``shadow`` itself: one trace quarantined, the file goes on."""

    def test_validate_quarantines_a_duration_of_ten_to_the_400(
        self, tmp_path: Path, capsys: pytest.CaptureFixture[str]
    ) -> None:
        path = _lines(tmp_path, _huge_duration())
        assert main(["corpus", "validate", str(path)]) == 1
        out = capsys.readouterr()
        text = out.out + out.err
        assert "internal error" not in text
        assert "bad_duration" in text
        assert "$.runs[0].attempts[0].duration" in text
        items = list(read_traces([path]))
        assert [i.ok for i in items] == [True, False, True]

    def test_stats_counts_the_good_traces_and_quarantines_the_bad_one(
        self, tmp_path: Path, capsys: pytest.CaptureFixture[str]
    ) -> None:
        path = _lines(tmp_path, _huge_duration())
        code = main(["corpus", "stats", str(path)])
        text = "".join(capsys.readouterr())
        assert "internal error" not in text
        assert code in (0, 1)
        assert "bad_duration" in text

    def test_replay_of_the_bad_trace_is_a_located_error_and_the_good_ones_replay(
        self, tmp_path: Path, capsys: pytest.CaptureFixture[str]
    ) -> None:
        path = _lines(tmp_path, _huge_duration())
        assert main(["replay", str(path), "--trace", "bad"]) == 4
        text = "".join(capsys.readouterr())
        assert "internal error" not in text
        assert "bad_duration" in text
        assert main(["replay", str(path), "--trace", "good-b", "--json"]) == 0

    def test_trigger_time_1e300_is_quarantined_not_replayed(
        self, tmp_path: Path, capsys: pytest.CaptureFixture[str]
    ) -> None:
        path = _lines(tmp_path, _bad(trigger_time=1e300))
        assert main(["corpus", "validate", str(path)]) == 1
        text = "".join(capsys.readouterr())
        assert "$.runs[0].trigger_time" in text
        assert "internal error" not in text
        for engine in ("legacy", "actor", "oracle"):
            assert main(["replay", str(path), "--trace", "bad", "--engine", engine]) == 4
            text = "".join(capsys.readouterr())
            assert "internal error" not in text, engine
            assert "trigger_time" in text, engine

    def test_an_integer_too_long_for_python_to_parse_is_located(
        self, tmp_path: Path, capsys: pytest.CaptureFixture[str]
    ) -> None:
        """json.loads raises a bare ValueError for more than 4,300 digits; that too quarantines one trace."""
        line = json.dumps(_bad()).replace('"trigger_time": 1700000000.0', '"trigger_time": ' + "9" * 5000)
        assert "9" * 5000 in line
        path = tmp_path / "long.jsonl"
        path.write_text(dump_trace(chain_trace(2, trace_id="good")) + "\n" + line + "\n", encoding="utf-8")
        assert main(["corpus", "validate", str(path)]) == 1
        text = "".join(capsys.readouterr())
        assert "internal error" not in text
        assert "$.runs[0].trigger_time" in text


class TestBoundsInTheCodec:
    @pytest.mark.parametrize(
        ("where", "value", "code"),
        [
            ("duration", 10**400, "bad_duration"),
            ("duration", -(10**400), "bad_duration"),
            ("duration", DURATION_MAX_SECONDS + 1, "bad_duration"),
            ("duration", -0.001, "bad_duration"),
            ("trigger_time", 1e300, "bad_duration"),
            ("trigger_time", 10**400, "bad_duration"),
            ("trigger_time", -1.0, "bad_duration"),
            ("trigger_time", TIMESTAMP_MAX_SECONDS, "bad_duration"),
            ("attempt", INT64_MAX + 1, "out_of_range"),
            ("output", INT64_MIN - 1, "out_of_range"),
            ("output", 10**400, "out_of_range"),
            ("param", 2**64, "out_of_range"),
            ("timeout", 10**400, "bad_duration"),
            ("timeout", DURATION_MAX_SECONDS * 2.0, "bad_duration"),
            ("concurrency", 10**30, "bad_value"),
            ("retry_limit", 10**400, "bad_value"),
            ("backoff", 10**400, "bad_value"),
        ],
        ids=lambda v: str(v)[:20],
    )
    def test_out_of_range_numbers_are_located_errors(self, where: str, value: Any, code: str) -> None:
        data = _bad()
        run, step = data["runs"][0], data["definition"]["steps"][0]
        path = {
            "duration": "$.runs[0].attempts[0].duration",
            "trigger_time": "$.runs[0].trigger_time",
            "attempt": "$.runs[0].attempts[0].attempt",
            "output": "$.runs[0].attempts[0].outputs.n",
            "param": "$.runs[0].params.n",
            "timeout": "$.definition.steps[0].timeout",
            "concurrency": "$.definition.step_concurrency",
            "retry_limit": "$.definition.steps[0].retry_policy.error_retry_limit",
            "backoff": "$.definition.steps[0].retry_policy.backoff.error_retry_backoff_in_secs",
        }[where]
        if where in ("duration", "attempt"):
            run["attempts"][0][where] = value
        elif where == "output":
            run["attempts"][0]["outputs"] = {"n": value}
        elif where == "param":
            run["params"] = {"n": value}
        elif where == "trigger_time":
            run["trigger_time"] = value
        elif where == "timeout":
            step["timeout"] = value
        elif where == "concurrency":
            data["definition"]["step_concurrency"] = value
        elif where == "retry_limit":
            step["retry_policy"] = {"error_retry_limit": value}
        else:
            step["retry_policy"] = {"backoff": {"error_retry_backoff_in_secs": value}}
        error = _load_error(data)
        assert error.code == code, str(error)
        assert error.location.json_path == path, str(error)
        assert error.trace_id == "bad"
        assert error.hint
        assert len(str(error)) < 600  # a 400-digit number is not echoed in full

    @pytest.mark.parametrize("value", [0, 0.0, 5e-324, DURATION_MAX_SECONDS, float(DURATION_MAX_SECONDS)])
    def test_durations_at_the_edges_are_accepted(self, value: float) -> None:
        data = _bad()
        data["runs"][0]["attempts"][0]["duration"] = value
        assert load_trace(json.dumps(data)).runs[0].attempts[0].duration == value

    @pytest.mark.parametrize("value", [0, 1.5, TIMESTAMP_MAX_SECONDS - 1])
    def test_timestamps_at_the_edges_are_accepted(self, value: float) -> None:
        load_trace(json.dumps(_bad(trigger_time=value)))

    def test_int64_edges_in_json_values_are_accepted(self) -> None:
        data = _bad()
        data["runs"][0]["params"] = {"lo": INT64_MIN, "hi": INT64_MAX}
        assert load_trace(json.dumps(data)).runs[0].params == {"lo": INT64_MIN, "hi": INT64_MAX}

    @pytest.mark.parametrize("spelling", ["NaN", "Infinity", "-Infinity", "1e999", "-1e999"])
    def test_non_finite_spellings_are_typed_errors(self, spelling: str) -> None:
        text = json.dumps(_bad()).replace('"trigger_time": 1700000000.0', f'"trigger_time": {spelling}')
        assert spelling in text
        error = _load_error(text)
        assert error.code == "bad_duration"
        assert error.location.json_path == "$.runs[0].trigger_time"

    def test_decode_alone_raises_the_bound_error(self) -> None:
        with pytest.raises(TraceError) as info:
            decode(Trace, _huge_duration())
        assert info.value.code == "bad_duration"


class TestBoundsInTheValidator:
    """Traces built in Python skip the codec; validate_trace applies the same bounds to them."""

    @pytest.mark.parametrize("trigger_time", [1e300, -5.0, float(TIMESTAMP_MAX_SECONDS)])
    def test_trigger_time(self, trigger_time: float) -> None:
        trace = chain_trace(2)
        trace = dataclasses.replace(
            trace, runs=(dataclasses.replace(trace.runs[0], trigger_time=trigger_time),)
        )
        with pytest.raises(TraceError) as info:
            validate_trace(trace)
        assert info.value.code == "bad_duration"
        assert info.value.location.json_path == "$.runs[0].trigger_time"

    def test_duration_above_ten_years(self) -> None:
        trace = chain_trace(2)
        run = trace.runs[0]
        attempt = dataclasses.replace(run.attempts[0], duration=DURATION_MAX_SECONDS * 1.5)
        trace = dataclasses.replace(
            trace, runs=(dataclasses.replace(run, attempts=(attempt, *run.attempts[1:])),)
        )
        with pytest.raises(TraceError) as info:
            validate_trace(trace)
        assert info.value.code == "bad_duration"
        assert info.value.location.json_path == "$.runs[0].attempts[0].duration"


class TestBoundsEverywhere:
    def test_every_numeric_field_of_the_model_has_a_bound(self) -> None:
        """A new int or float field cannot slip in unbounded: FIELD_BOUNDS must name it."""
        import dataclasses as dc
        import types
        import typing

        from corpora import model
        from corpora.bounds import FIELD_BOUNDS
        from corpora.codec import field_types

        missing = []
        for cls in vars(model).values():
            if not (isinstance(cls, type) and dc.is_dataclass(cls)):
                continue
            for name, tp in field_types(cls).items():
                options = (
                    typing.get_args(tp) if typing.get_origin(tp) in (types.UnionType, typing.Union) else (tp,)
                )
                if any(o in (int, float) for o in options) and (cls, name) not in FIELD_BOUNDS:
                    missing.append(f"{cls.__name__}.{name}")
        assert missing == []

    def test_the_json_schema_carries_the_ranges(self) -> None:
        from corpora.schema import schema_errors

        assert schema_errors(_huge_duration())
        assert schema_errors(_bad(trigger_time=1e300))
        assert schema_errors(_bad(trigger_time=TIMESTAMP_MAX_SECONDS))
        assert not schema_errors(_bad(trigger_time=TIMESTAMP_MAX_SECONDS - 1))


class TestTriggerSpan:
    """Runs 54 years apart took the actor engine 158 s to replay (it simulates the idle time)."""

    def test_runs_more_than_a_year_apart_are_quarantined(self) -> None:
        data = _bad()
        second = dict(data["runs"][0], run_id="run-2", trigger_time=0)
        data["runs"].append(second)
        error = _load_error(data)
        assert error.code == "bad_duration"
        assert error.location.json_path == "$.runs[1].trigger_time"

    def test_runs_within_a_year_load(self) -> None:
        data = _bad()
        first = data["runs"][0]["trigger_time"]
        data["runs"].append(dict(data["runs"][0], run_id="run-2", trigger_time=first + 366 * 86_400))
        load_trace(json.dumps(data))


class TestLoneSurrogatesInIds:
    """The fuzz found run_id "\\udfff" validating, then crashing every engine (UnicodeEncodeError in
    engines/core/params.step_instance_uuid): ids must be encodable text."""

    @pytest.mark.parametrize(
        ("where", "path"),
        [
            ("run_id", "$.runs[0].run_id"),
            ("trace_id", "$.trace_id"),
            ("step", "$.definition.steps[0].id"),
            ("workflow", "$.definition.id"),
        ],
    )
    def test_an_id_with_a_lone_surrogate_is_refused(self, where: str, path: str) -> None:
        data = _bad()
        if where == "run_id":
            data["runs"][0]["run_id"] = "\udfff"
        elif where == "trace_id":
            data["trace_id"] = "t\ud800"
        elif where == "step":
            data["definition"]["steps"][0]["id"] = "s\ud800"
        else:
            data["definition"]["id"] = "\ud800wf"
        with pytest.raises(TraceError) as info:
            load_trace(json.dumps(data))
        assert info.value.location.json_path == path
        assert info.value.code in ("bad_value", "bad_step_id")
        str(info.value)

    def test_a_lone_surrogate_in_a_value_is_refused_at_its_path(self) -> None:
        """The actor's SQLite store cannot encode one either (found by the fuzz: UnicodeEncodeError)."""
        data = _bad()
        data["runs"][0]["params"] = {"p": ["ok", "\ud800"]}
        with pytest.raises(TraceError) as info:
            load_trace(json.dumps(data))
        assert info.value.code == "bad_value"
        assert info.value.location.json_path == "$.runs[0].params.p[1]"

    @pytest.mark.parametrize("form", ["str", "bytes"])
    def test_a_raw_lone_surrogate_is_refused(self, form: str) -> None:
        """Not escaped: a str line holding the character, or its surrogatepass UTF-8 bytes."""
        data = _bad()
        data["runs"][0]["params"] = {"p": "x\udfff"}
        text = json.dumps(data, ensure_ascii=False)
        line = text if form == "str" else text.encode("utf-8", "surrogatepass")
        with pytest.raises(TraceError) as info:
            load_trace(line)
        assert info.value.location.json_path == "$.runs[0].params.p"

    def test_paired_surrogates_and_emoji_load(self) -> None:
        data = _bad()
        data["runs"][0]["params"] = {"p": "\U0001f600 \u00e9"}
        assert load_trace(json.dumps(data)).runs[0].params == {"p": "\U0001f600 \u00e9"}


class TestExpressionLength:
    """The fuzz found a 7,654-digit literal in a transition condition: a bare ValueError in the engines'
    expression tokenizer (int() refuses more than 4,300 digits)."""

    def test_a_long_condition_is_refused(self) -> None:
        data = _bad()
        data["definition"]["steps"][0]["transitions"][0]["condition"] = "9" * 7654
        error = _load_error(data)
        assert error.code == "bad_param"
        assert error.location.json_path == "$.definition.steps[0].transitions[0].condition"

    def test_a_long_param_expression_is_refused(self) -> None:
        data = _bad()
        data["definition"]["params"] = {"n": {"expression": "1 + " * 2000 + "1"}}
        error = _load_error(data)
        assert error.location.json_path == "$.definition.params.n.expression"
