"""Literal duration strings are bounded like numbers (issue 15): a timeout or backoff written as text that
reads as more than 10 years, or too large to be a number at all, quarantines its trace."""

from __future__ import annotations

import dataclasses

import pytest

from corpora.errors import TraceError
from corpora.generator import GeneratorConfig, generate_corpus
from corpora.validate import validate_trace


def _with_timeout(timeout: object) -> object:
    trace = next(iter(generate_corpus(1, 1, GeneratorConfig(max_steps=10))))
    steps = list(trace.definition.steps)
    steps[0] = dataclasses.replace(steps[0], timeout=timeout)
    return dataclasses.replace(trace, definition=dataclasses.replace(trace.definition, steps=tuple(steps)))


@pytest.mark.parametrize("text", ["9" * 400 + "d", "4000d", "1000000h"])
def test_a_literal_duration_out_of_range_is_a_located_error(text: str) -> None:
    with pytest.raises(TraceError) as info:
        validate_trace(_with_timeout(text))  # type: ignore[arg-type]
    assert info.value.code == "bad_duration"
    assert info.value.location.json_path == "$.definition.steps[0].timeout"


@pytest.mark.parametrize("text", ["2h", "1d 2h", "30 min", "${t}", "not a duration"])
def test_in_range_parametrized_or_unparsable_text_passes(text: str) -> None:
    validate_trace(_with_timeout(text))  # type: ignore[arg-type]
