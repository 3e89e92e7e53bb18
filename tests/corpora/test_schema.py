"""The shipped JSON Schema equals the one generated from the model, and agrees with the codec."""

from __future__ import annotations

import json

import jsonschema

from corpora.codec import encode
from corpora.schema import render_schema, schema_errors, shipped_schema, trace_schema
from corpora.testing import chain_trace, foreach_trace, subworkflow_trace

REGENERATE = ".venv/bin/python -m corpora.schema > corpora/shadow-trace-1.schema.json"


class TestShippedSchema:
    def test_shipped_file_matches_model(self) -> None:
        """The schema file in the package is exactly what the model generates today."""
        assert shipped_schema() == trace_schema(), f"schema file is stale; regenerate with: {REGENERATE}"

    def test_schema_is_valid_draft_2020_12(self) -> None:
        """The generated schema is itself a valid JSON Schema."""
        jsonschema.Draft202012Validator.check_schema(trace_schema())

    def test_render_is_stable_json(self) -> None:
        """Rendering twice gives the same text, ending in a newline."""
        assert render_schema() == render_schema()
        assert render_schema().endswith("}\n")
        json.loads(render_schema())


class TestSchemaAgreesWithCodec:
    def test_encoded_traces_satisfy_schema(self) -> None:
        """Every builder's encoded trace has no schema violations."""
        for trace in (chain_trace(3, runs=2), foreach_trace(3, concurrency=2), subworkflow_trace(3)):
            assert schema_errors(encode(trace)) == []

    def test_schema_rejects_unknown_field_and_wrong_format(self) -> None:
        """Unknown fields and another format version are schema violations."""
        data = encode(chain_trace(1))
        data["surprise"] = 1
        data["format"] = "shadow-trace/2"
        errors = schema_errors(data)
        assert len(errors) == 2

    def test_schema_requires_runs_and_definition(self) -> None:
        """A trace without its required fields is rejected by the schema."""
        assert schema_errors({"format": "shadow-trace/1"})
