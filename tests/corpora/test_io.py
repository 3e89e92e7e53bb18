"""Streaming JSON Lines reader/writer: round trips, gzip, quarantine with file:line locations."""

from __future__ import annotations

import gzip
import json
from pathlib import Path

import pytest

from corpora.codec import encode
from corpora.errors import TraceError
from corpora.io import TraceWriter, dump_trace, load_trace, read_traces, write_traces
from corpora.testing import chain_trace, diamond_trace, foreach_trace, subworkflow_trace

# ../shared/corpora relative to the repository (tests/corpora/ is two levels below it)
SHARED = Path(__file__).resolve().parents[2].parent / "shared" / "corpora"


def _traces() -> list:  # type: ignore[type-arg]
    return [
        chain_trace(3, trace_id="a"),
        diamond_trace(trace_id="b"),
        foreach_trace(2, trace_id="c"),
        subworkflow_trace(trace_id="d", runs=2),
    ]


class TestRoundTrip:
    @pytest.mark.parametrize("name", ["corpus.jsonl", "corpus.jsonl.gz"])
    def test_write_then_read_gives_equal_traces(self, tmp_path: Path, name: str) -> None:
        """Traces written to plain or gzip files read back equal and in order."""
        path = tmp_path / name
        assert write_traces(path, _traces()) == 4
        items = list(read_traces([path]))
        assert [i.error for i in items] == [None] * 4
        assert [i.trace for i in items] == _traces()
        assert [i.line for i in items] == [1, 2, 3, 4]

    def test_gzip_output_is_byte_stable(self, tmp_path: Path) -> None:
        """Writing the same traces twice gives identical gzip bytes (no timestamp in the header)."""
        write_traces(tmp_path / "x.jsonl.gz", _traces())
        first = (tmp_path / "x.jsonl.gz").read_bytes()
        write_traces(tmp_path / "x.jsonl.gz", _traces())
        assert (tmp_path / "x.jsonl.gz").read_bytes() == first

    def test_line_format_is_compact_and_format_first(self) -> None:
        """A trace line is compact JSON that starts with the format tag."""
        line = dump_trace(chain_trace(1))
        assert line.startswith('{"format":"shadow-trace/1",')
        assert ": " not in line
        assert "\n" not in line

    def test_writer_outside_with_is_an_error(self, tmp_path: Path) -> None:
        """Writing before entering the context manager fails loudly."""
        with pytest.raises(RuntimeError):
            TraceWriter(tmp_path / "x.jsonl").write(chain_trace(1))

    def test_load_trace_accepts_parsed_objects(self) -> None:
        """load_trace takes a dict as well as a line."""
        trace = chain_trace(2)
        assert load_trace(encode(trace)) == trace


def _write_then_raise(target: Path, exc: BaseException) -> None:
    with TraceWriter(target) as writer:
        writer.write(chain_trace(3, trace_id="new"))
        raise exc


class TestWriterAtomicity:
    @pytest.mark.parametrize("name", ["c.jsonl", "c.jsonl.gz"])
    def test_interrupted_write_leaves_no_corpus(self, tmp_path: Path, name: str) -> None:
        """Ctrl-C inside the with block leaves neither the corpus nor its .partial file behind."""
        target = tmp_path / name
        with pytest.raises(KeyboardInterrupt):
            _write_then_raise(target, KeyboardInterrupt())
        assert sorted(p.name for p in tmp_path.iterdir()) == []

    def test_failed_rewrite_keeps_the_old_corpus(self, tmp_path: Path) -> None:
        """A rewrite that fails half way leaves the previous file byte for byte."""
        target = tmp_path / "c.jsonl"
        write_traces(target, [chain_trace(2, trace_id="old")])
        before = target.read_bytes()
        with pytest.raises(ValueError, match="boom"):
            _write_then_raise(target, ValueError("boom"))
        assert target.read_bytes() == before

    def test_clean_write_renames_into_place(self, tmp_path: Path) -> None:
        """A clean block leaves only the final file, and it reads back."""
        target = tmp_path / "c.jsonl.gz"
        assert write_traces(target, [chain_trace(2)]) == 1
        assert [p.name for p in tmp_path.iterdir()] == ["c.jsonl.gz"]
        assert [item.ok for item in read_traces([target])] == [True]

    def test_device_target_is_written_in_place(self) -> None:
        """/dev/null is written directly, never renamed over."""
        assert write_traces("/dev/null", [chain_trace(2)]) == 1
        assert not Path("/dev/null").is_file()


def _write_lines(path: Path, lines: list[str]) -> Path:
    path.write_text("".join(line + "\n" for line in lines), encoding="utf-8")
    return path


class TestQuarantine:
    def test_bad_lines_are_quarantined_and_reading_goes_on(self, tmp_path: Path) -> None:
        """Malformed, unsupported and duplicate traces become error items; the good ones still come through."""
        good = dump_trace(chain_trace(1, trace_id="ok"))
        other = json.loads(dump_trace(chain_trace(1, trace_id="v2")))
        other["format"] = "shadow-trace/9"
        path = _write_lines(
            tmp_path / "c.jsonl",
            [good, "{not json", "", json.dumps(other), good, dump_trace(chain_trace(1, trace_id="ok2"))],
        )
        items = list(read_traces([path]))
        codes = [(i.line, i.error.code if i.error else None) for i in items]
        assert codes == [
            (1, None),
            (2, "malformed_json"),
            (4, "unsupported_format"),
            (5, "duplicate_trace_id"),
            (6, None),
        ]
        error = items[3].error
        assert error is not None
        assert error.location.file == str(path)
        assert "c.jsonl:1" in error.message

    def test_schema_error_carries_json_path(self, tmp_path: Path) -> None:
        """A wrong type deep in the trace is reported with file, line and JSON path."""
        data = encode(chain_trace(2))
        data["runs"][0]["attempts"][1]["duration"] = "ten"
        path = _write_lines(tmp_path / "c.jsonl", [json.dumps(data)])
        (item,) = read_traces([path])
        assert item.error is not None
        assert item.error.code == "schema"
        assert str(item.error.location) == f"{path}:1 at $.runs[0].attempts[1].duration"

    def test_nan_duration_is_bad_duration(self) -> None:
        """A NaN duration in JSON text is bad_duration, not a generic schema error."""
        line = dump_trace(chain_trace(1)).replace('"duration":10.0', '"duration":NaN')
        with pytest.raises(TraceError) as info:
            load_trace(line)
        assert info.value.code == "bad_duration"

    def test_line_too_long_is_skipped_in_bounded_memory(self, tmp_path: Path) -> None:
        """A line over the limit is reported and the next line is still read."""
        long = json.dumps({"format": "shadow-trace/1", "pad": "x" * 5000})
        path = _write_lines(tmp_path / "c.jsonl", [long, dump_trace(chain_trace(1))])
        items = list(read_traces([path], max_line_bytes=1000))
        assert items[0].error is not None
        assert items[0].error.code == "line_too_long"
        assert items[0].line == 1
        assert items[1].ok
        assert items[1].line == 2

    def test_missing_file_and_corrupt_gzip(self, tmp_path: Path) -> None:
        """An unreadable file yields one 'unreadable' item and the next file is still read."""
        corrupt = tmp_path / "bad.jsonl.gz"
        corrupt.write_bytes(gzip.compress(b'{"a":1}\n' * 50)[:-20])
        good = tmp_path / "good.jsonl"
        write_traces(good, [chain_trace(1)])
        items = list(read_traces([tmp_path / "missing.jsonl", corrupt, good]))
        assert items[0].error is not None
        assert items[0].error.code == "unreadable"
        assert any(i.error is not None and i.error.code == "unreadable" for i in items[1:-1])
        assert items[-1].ok

    def test_non_object_line(self) -> None:
        """A JSON line that is not an object is a schema error."""
        with pytest.raises(TraceError) as info:
            load_trace("[1, 2]")
        assert info.value.code == "schema"

    def test_progress_reports_bytes(self, tmp_path: Path) -> None:
        """The progress callback adds up to the file size."""
        path = tmp_path / "c.jsonl"
        write_traces(path, _traces())
        seen: list[int] = []
        list(read_traces([path], progress=seen.append))
        assert sum(seen) == path.stat().st_size


@pytest.mark.corpora
class TestSharedCorpora:
    def test_maestro_cycle_sample_is_not_a_trace(self) -> None:
        """The shared corpora are not shadow-trace files: reading one quarantines it, never crashes."""
        samples = sorted((SHARED / "maestro").glob("*sample-dag-with-cycle-wf.json"))
        if not samples:
            pytest.skip(f"shared corpora not found at {SHARED}")
        sample = samples[0]
        items = list(read_traces([sample]))
        assert items
        assert all(i.error is not None for i in items)
