"""The run / summary / replay commands, engine resolution, and the results documentation."""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path

import pytest

from corpora.codec import encode
from results.schema import TABLES
from shadow.cli import main
from shadow.engines import EngineSpecError, build_engine, resolve_engine
from shadow.testing import build_trace

REPO = Path(__file__).resolve().parents[2]


@pytest.fixture
def corpus(tmp_path: Path) -> Path:
    path = tmp_path / "c.jsonl"
    with path.open("w", encoding="utf-8") as out:
        for i in range(4):
            trace = build_trace(f"t{i}", {"a": ["b"], "b": []}, {"b": ["platform_error", "succeeded"]})
            out.write(json.dumps(encode(trace)) + "\n")
    return path


class TestRunAndSummary:
    def test_run_then_summary_json(
        self, corpus: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
    ) -> None:
        """shadow run stores every trace; shadow summary --json reports them with zero unexplained."""
        db = tmp_path / "r.duckdb"
        assert (
            main(
                [
                    "run",
                    str(corpus),
                    "--db",
                    str(db),
                    "--workers",
                    "1",
                    "--baseline",
                    "oracle",
                    "--candidate",
                    "oracle",
                    "--no-progress",
                ]
            )
            == 0
        )
        capsys.readouterr()
        assert main(["summary", str(db), "--json"]) == 0
        headline = json.loads(capsys.readouterr().out)
        assert (headline["traces"], headline["divergences_unexplained"], headline["quarantined"]) == (4, 0, 0)
        assert headline["last_session_status"] == "finished"
        assert main(["summary", str(db)]) == 0
        assert "start overhead ratio" in capsys.readouterr().out

    def test_plugged_candidate_and_expired_registry(self, corpus: Path, tmp_path: Path) -> None:
        """A module:factory candidate runs; an expired registry entry stops the next run with exit 4."""
        db = tmp_path / "r.duckdb"
        assert (
            main(
                [
                    "run",
                    str(corpus),
                    "--db",
                    str(db),
                    "--workers",
                    "1",
                    "--baseline",
                    "oracle",
                    "--candidate",
                    "shadow.testing:fake_engine_with_fault",
                    "--no-progress",
                ]
            )
            == 0
        )
        reg = tmp_path / "k.toml"
        reg.write_text(
            '[[divergence]]\nid = "OLD"\nsignature = "*"\nowner = "o"\nreason = "r"\nexpires = 2001-01-01\n',
            encoding="utf-8",
        )
        assert (
            main(
                [
                    "run",
                    str(corpus),
                    "--db",
                    str(db),
                    "--registry",
                    str(reg),
                    "--baseline",
                    "oracle",
                    "--candidate",
                    "oracle",
                    "--no-progress",
                ]
            )
            == 4
        )

    def test_unreadable_db(self, tmp_path: Path) -> None:
        """summary exits 4 for a missing file and for a file that is not a results database."""
        assert main(["summary", str(tmp_path / "none.duckdb")]) == 4
        junk = tmp_path / "junk.duckdb"
        junk.write_text("not a database", encoding="utf-8")
        assert main(["summary", str(junk)]) == 4

    def test_locked_db_says_another_process_holds_it(
        self, corpus: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
    ) -> None:
        """run and summary on a database another process holds exit 4 and say to wait, not to rename."""
        db = tmp_path / "r.duckdb"
        assert (
            main(
                [
                    "run",
                    str(corpus),
                    "--db",
                    str(db),
                    "--workers",
                    "1",
                    "--baseline",
                    "oracle",
                    "--candidate",
                    "oracle",
                    "--no-progress",
                ]
            )
            == 0
        )
        holder = subprocess.Popen(
            [
                sys.executable,
                "-c",
                "import duckdb, sys; c = duckdb.connect(sys.argv[1]); print('held', flush=True); "
                "sys.stdin.read()",
                str(db),
            ],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
        )
        try:
            assert holder.stdout is not None
            assert holder.stdout.readline().strip() == "held"
            capsys.readouterr()
            assert main(["summary", str(db)]) == 4
            assert "another process holds the database" in " ".join(capsys.readouterr().err.split())
            assert (
                main(
                    [
                        "run",
                        str(corpus),
                        "--db",
                        str(db),
                        "--workers",
                        "1",
                        "--baseline",
                        "oracle",
                        "--candidate",
                        "oracle",
                        "--no-progress",
                    ]
                )
                == 4
            )
            assert "another process holds the database" in " ".join(capsys.readouterr().err.split())
        finally:
            assert holder.stdin is not None
            holder.stdin.close()
            holder.wait(timeout=30)
            holder.stdout.close()

    def test_error_text_with_brackets_is_not_markup(self, corpus: Path, tmp_path: Path,
                                                    capsys: pytest.CaptureFixture[str]) -> None:  # fmt: skip
        """A registry error naming '[[divergence]] #1' and a db path with '[/]' print verbatim with exit 4."""
        reg = tmp_path / "k.toml"
        reg.write_text('[[divergence]]\nid = "x"\nsignature = "*"\n', encoding="utf-8")
        assert (
            main(
                [
                    "run",
                    str(corpus),
                    "--db",
                    str(tmp_path / "r.duckdb"),
                    "--registry",
                    str(reg),
                    "--baseline",
                    "oracle",
                    "--candidate",
                    "oracle",
                    "--no-progress",
                ]
            )
            == 4
        )
        assert "[[divergence]] #1 lacks owner" in " ".join(capsys.readouterr().err.split())
        assert main(["summary", str(tmp_path / "[/]x.duckdb")]) == 4
        assert "[/]x.duckdb: no such results database" in " ".join(capsys.readouterr().err.split())

    def test_truncated_gzip_keeps_work_and_exits_4(self, tmp_path: Path,
                                                   capsys: pytest.CaptureFixture[str]) -> None:  # fmt: skip
        """A gzip corpus cut short stores the traces before the cut, says so, and exits 4 (not 0)."""
        import gzip

        lines = [json.dumps(encode(build_trace(f"t{i}", {"a": ["b"], "b": []}, {}, params={"a": {"pad": "x" * 200 + str(i)}})))
                 for i in range(300)]  # fmt: skip
        whole = gzip.compress(("\n".join(lines) + "\n").encode())
        cut = tmp_path / "cut.jsonl.gz"
        cut.write_bytes(whole[: len(whole) * 3 // 4])
        db = tmp_path / "r.duckdb"
        args = ["run", str(cut), "--db", str(db), "--workers", "1", "--baseline", "oracle", "--candidate", "oracle",
                "--no-progress", "--batch-size", "8"]  # fmt: skip
        assert main(args) == 4
        err = " ".join(capsys.readouterr().err.split())
        assert "the traces read before it are stored" in err
        assert main(["summary", str(db), "--json"]) == 0
        stored = json.loads(capsys.readouterr().out)["traces"]
        assert 0 < stored < 300

    def test_all_bad_corpus_is_a_harness_error(
        self, tmp_path: Path, capsys: pytest.CaptureFixture[str]
    ) -> None:
        """A corpus whose every line is quarantined exits 4 (also on a rerun) and points at validate."""
        junk = tmp_path / "junk.jsonl"
        junk.write_text("{nope\nnot json either\n", encoding="utf-8")
        args = ["run", str(junk), "--db", str(tmp_path / "r.duckdb"), "--workers", "1", "--baseline", "oracle",
                "--candidate", "oracle", "--no-progress"]  # fmt: skip
        for _ in range(2):
            assert main(args) == 4
            assert "every one of the 2 corpus lines was quarantined" in " ".join(
                capsys.readouterr().err.split()
            )

    def test_non_utf8_corpus_name_is_a_harness_error(self, corpus: Path, tmp_path: Path,
                                                     capsys: pytest.CaptureFixture[str]) -> None:  # fmt: skip
        """A corpus file whose name holds raw non-UTF-8 bytes exits 4 asking to rename it, not a crash."""
        import os

        odd = os.fsdecode(os.fsencode(str(tmp_path)) + b"/bad\xffname.jsonl")
        Path(odd).write_bytes(corpus.read_bytes())
        assert (
            main(
                [
                    "run",
                    odd,
                    "--db",
                    str(tmp_path / "r.duckdb"),
                    "--workers",
                    "1",
                    "--baseline",
                    "oracle",
                    "--candidate",
                    "oracle",
                    "--no-progress",
                ]
            )
            == 4
        )
        assert "the path is not valid UTF-8" in " ".join(capsys.readouterr().err.split())

    def test_empty_corpus_is_a_harness_error(
        self, tmp_path: Path, capsys: pytest.CaptureFixture[str]
    ) -> None:
        """An empty corpus file exits 4 saying the corpus is empty, instead of a clean run of nothing."""
        empty = tmp_path / "empty.jsonl"
        empty.write_text("", encoding="utf-8")
        assert (
            main(
                [
                    "run",
                    str(empty),
                    "--db",
                    str(tmp_path / "r.duckdb"),
                    "--workers",
                    "1",
                    "--baseline",
                    "oracle",
                    "--candidate",
                    "oracle",
                    "--no-progress",
                ]
            )
            == 4
        )
        assert "the corpus is empty" in " ".join(capsys.readouterr().err.split())

    @pytest.mark.parametrize(("flag", "value"), [("--workers", "0"), ("--limit", "-1")])
    def test_bad_count_names_the_flag(self, corpus: Path, tmp_path: Path, flag: str, value: str,
                                      capsys: pytest.CaptureFixture[str]) -> None:  # fmt: skip
        """--workers 0 and --limit -1 exit 4 with a message naming that flag and its value."""
        assert main(["run", str(corpus), "--db", str(tmp_path / "r.duckdb"), flag, value]) == 4
        assert f"{flag} {value}:" in capsys.readouterr().err

    def test_db_in_a_missing_folder(
        self, corpus: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
    ) -> None:
        """--db in a folder that does not exist exits 4 saying the folder is missing."""
        assert (
            main(
                [
                    "run",
                    str(corpus),
                    "--db",
                    str(tmp_path / "no" / "r.duckdb"),
                    "--baseline",
                    "oracle",
                    "--candidate",
                    "oracle",
                    "--no-progress",
                ]
            )
            == 4
        )
        assert "its folder does not exist" in " ".join(capsys.readouterr().err.split())

    def test_bad_inputs(self, corpus: Path, tmp_path: Path) -> None:
        """Unknown engines, missing corpus files and bad --sample exit 4."""
        db = str(tmp_path / "r.duckdb")
        assert main(["run", str(corpus), "--db", db, "--candidate", "nope"]) == 4
        assert (
            main(
                [
                    "run",
                    str(tmp_path / "missing.jsonl"),
                    "--db",
                    db,
                    "--baseline",
                    "oracle",
                    "--candidate",
                    "oracle",
                ]
            )
            == 4
        )
        assert main(["run", str(corpus), "--db", db, "--sample", "0"]) == 4
        assert (
            main(
                [
                    "run",
                    str(corpus),
                    "--db",
                    db,
                    "--baseline",
                    "oracle",
                    "--candidate",
                    "oracle",
                    "--candidate-nodes",
                    "3",
                ]
            )
            == 4
        )  # the oracle's factory takes no nodes=


class TestReplay:
    def test_replay_json(self, corpus: Path, capsys: pytest.CaptureFixture[str]) -> None:
        """replay --json prints the canonical record of the chosen trace."""
        assert main(["replay", str(corpus), "--trace", "t2", "--engine", "oracle", "--json"]) == 0
        record = json.loads(capsys.readouterr().out)
        assert record["trace_id"] == "t2"
        assert [a["attempt"] for a in record["runs"][0]["attempts"] if a["path"] == "b"] == [1, 2]

    def test_replay_of_a_bracketed_trace_id(self, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
        """A trace id that looks like rich markup is shown verbatim in the replay table."""
        path = tmp_path / "c.jsonl"
        trace = build_trace("t[/red]", {"a": ["b"], "b": []}, {})
        path.write_text(json.dumps(encode(trace)) + "\n", encoding="utf-8")
        assert main(["replay", str(path), "--engine", "oracle"]) == 0
        assert "t[/red] run" in capsys.readouterr().out

    def test_replay_rejects_unsupported_options(self, corpus: Path) -> None:
        """--nodes on an engine whose factory has no nodes= is a clear exit 4; unknown trace too."""
        assert main(["replay", str(corpus), "--engine", "oracle", "--nodes", "3"]) == 4
        assert main(["replay", str(corpus), "--engine", "oracle", "--trace", "zz"]) == 4


class TestEngineResolution:
    def test_builtin_and_custom(self) -> None:
        """Built-in names map to module:factory; any module:factory speaking the protocol builds."""
        assert resolve_engine("oracle").target == "engines.core.oracle:CoreOracle"
        engine = build_engine(resolve_engine("shadow.testing:fake_engine"))
        assert engine.name == "fake"

    def test_errors(self) -> None:
        """Missing modules, attributes and non-engines are EngineSpecErrors that say what to do."""
        with pytest.raises(EngineSpecError, match="cannot import"):
            resolve_engine("no_such_module_xyz:f")
        with pytest.raises(EngineSpecError, match="no attribute"):
            resolve_engine("shadow.testing:nothing_here")
        with pytest.raises(EngineSpecError, match="lacks name, version or replay"):
            build_engine(resolve_engine("corpora.model:TraceMetadata"))


class TestResultsDocs:
    def test_every_table_and_column_documented(self) -> None:
        """docs/RESULTS.md has a section per table naming each of its columns."""
        doc = (REPO / "docs" / "RESULTS.md").read_text(encoding="utf-8")
        sections = dict(re.findall(r"^## (\w+)\n(.*?)(?=^## |\Z)", doc, flags=re.S | re.M))
        for table, ddl in TABLES.items():
            assert table in sections, f"table {table} undocumented"
            columns = [
                c
                for c in re.findall(r"^\s+(\w+) [A-Z]", ddl.split("(", 1)[1], flags=re.M)
                if c not in ("PRIMARY", "UNIQUE")
            ]  # table constraints, not columns
            for column in columns:
                assert f"`{column}`" in sections[table], f"{table}.{column} undocumented"
