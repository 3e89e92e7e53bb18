"""examples/adapter.py is a working adapter: shadow run accepts it by module:factory and, installed, by
its entry-point name; its outcomes equal the baseline's and only its latency differs."""

from __future__ import annotations

from pathlib import Path

import duckdb
import pytest

from corpora.generator import GeneratorConfig, generate_corpus
from corpora.io import TraceWriter
from engines.api import Engine
from shadow import cli
from shadow import engines as engine_names


def test_the_example_adapter_replays_like_the_oracle_plus_its_latency() -> None:
    trace = next(iter(generate_corpus(1, 1, GeneratorConfig(max_steps=20))))
    spec = engine_names.resolve_engine("examples.adapter:make_engine")
    adapter = engine_names.build_engine(spec)
    assert isinstance(adapter, Engine)
    oracle = engine_names.build_engine(engine_names.resolve_engine("oracle"))
    from engines.api import ReplayOptions

    mine, ref = adapter.replay(trace, ReplayOptions()), oracle.replay(trace, ReplayOptions())
    assert [r.status for r in mine.runs] == [r.status for r in ref.runs]
    for a, b in zip(mine.runs[0].attempts, ref.runs[0].attempts, strict=True):
        assert (a.path, a.attempt, a.status, a.outputs) == (b.path, b.attempt, b.status, b.outputs)
        if b.started_at is not None:
            assert a.started_at == pytest.approx(b.started_at + 0.05)


def test_an_installed_adapter_is_found_by_its_entry_point_name(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setattr(
        engine_names, "installed_engines", lambda: {"my-engine": "examples.adapter:make_engine"}
    )
    corpus = tmp_path / "c.jsonl"
    with TraceWriter(corpus) as writer:
        for trace in generate_corpus(1, 3, GeneratorConfig(max_steps=20)):
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
                "my-engine",
                "--no-progress",
            ]
        )
        == cli.EXIT_OK
    )
    con = duckdb.connect(str(db), read_only=True)
    try:
        names = {
            row[0]
            for row in con.execute(
                "SELECT DISTINCT engine_name FROM records WHERE engine = 'candidate'"
            ).fetchall()
        }
    finally:
        con.close()
    assert names == {"example-adapter"}


def test_an_unknown_engine_name_lists_what_is_known(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(
        engine_names, "installed_engines", lambda: {"my-engine": "examples.adapter:make_engine"}
    )
    with pytest.raises(engine_names.EngineSpecError, match="actor, legacy, oracle, my-engine"):
        engine_names.resolve_engine("my-engien")
