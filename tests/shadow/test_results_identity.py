"""Issue 15, part 1: a results session carries the identity of what produced it, and readers judge one.

``shadow run`` on a database that holds results of another candidate (or corpus, seeds, baseline)
used to print "0 traces replayed, N already stored" and exit 0, so ``shadow gate`` judged the old
candidate. Now it refuses (exit 4) and says what differs; ``--new-session`` starts a second identity
in the same file, and gate / summary / report judge the latest identity unless ``--identity`` says
otherwise, naming the one they judge.
"""

from __future__ import annotations

import json
import re
import xml.etree.ElementTree as ET
from pathlib import Path

import duckdb
import pytest

from corpora.codec import encode
from results.schema import SCHEMA_VERSION
from shadow.cli import main
from shadow.testing import build_trace

FAULTY = "shadow.testing:fake_engine_with_fault"
COHORTS = """
[defaults]
min_traces = 1
divergence_budget = 0.5
min_latency_samples = 2

[[cohort]]
name = "all"
[cohort.select]
workflow_id = ["*"]
"""


def write_corpus(path: Path, n: int = 4, *, offset: int = 0) -> Path:
    with path.open("w", encoding="utf-8") as out:
        for i in range(offset, offset + n):
            trace = build_trace(f"t{i}", {"a": ["b"], "b": []}, {"b": ["platform_error", "succeeded"]})
            out.write(json.dumps(encode(trace)) + "\n")
    return path


def run(corpus: Path, db: Path, *extra: str, candidate: str = "oracle") -> int:
    return main(
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
            candidate,
            "--no-progress",
            *extra,
        ]
    )


def faulty_run(corpus: Path, db: Path, *extra: str) -> int:
    return run(corpus, db, *extra, candidate=FAULTY)


def rows(db: Path, sql: str, params: list[object] | None = None) -> list[tuple]:
    con = duckdb.connect(str(db), read_only=True)
    try:
        return con.execute(sql, params or []).fetchall()
    finally:
        con.close()


@pytest.fixture
def corpus(tmp_path: Path) -> Path:
    return write_corpus(tmp_path / "c.jsonl")


@pytest.fixture
def cohorts(tmp_path: Path) -> Path:
    path = tmp_path / "cohorts.toml"
    path.write_text(COHORTS, encoding="utf-8")
    return path


def one_line(text: str) -> str:
    return " ".join(text.split())


class TestRunRefusesAnotherIdentity:
    def test_other_candidate_is_refused_and_nothing_is_written(
        self, corpus: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
    ) -> None:
        """The reported bug: a second candidate on the same --db exits 4 naming the candidate, before writing."""
        db = tmp_path / "r.duckdb"
        assert faulty_run(corpus, db) == 0
        before = rows(db, "SELECT count(*) FROM provenance"), rows(db, "SELECT count(*) FROM traces")
        capsys.readouterr()
        assert run(corpus, db) == 4
        err = one_line(capsys.readouterr().err)
        assert "candidate engine" in err
        assert "fake_engine_with_fault" in err
        assert "oracle" in err
        assert "--new-session" in err
        assert "--db" in err
        assert (
            rows(db, "SELECT count(*) FROM provenance"),
            rows(db, "SELECT count(*) FROM traces"),
        ) == before

    @pytest.mark.parametrize(
        ("extra", "what"),
        [
            (("--seed", "5"), "seeds"),
            (("--time-limit", "100"), "time limit"),
            (("--baseline", "actor"), "baseline engine"),
        ],
    )
    def test_other_seed_time_limit_or_baseline_is_refused(
        self,
        corpus: Path,
        tmp_path: Path,
        extra: tuple[str, str],
        what: str,
        capsys: pytest.CaptureFixture[str],
    ) -> None:
        db = tmp_path / "r.duckdb"
        assert run(corpus, db) == 0
        capsys.readouterr()
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
                    *extra,
                ]
            )
            == 4
        )
        assert what in one_line(capsys.readouterr().err)

    def test_other_corpus_content_is_refused(
        self, corpus: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
    ) -> None:
        db = tmp_path / "r.duckdb"
        assert run(corpus, db) == 0
        (tmp_path / "other").mkdir()
        other = write_corpus(tmp_path / "other" / "c.jsonl", n=5)  # same file name, one trace more
        capsys.readouterr()
        assert run(other, db) == 4
        assert "corpus" in one_line(capsys.readouterr().err)

    def test_same_identity_resumes_and_exact_is_not_identity(
        self, corpus: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
    ) -> None:
        """A rerun of the same identity resumes; --exact gives identical records by contract, so it resumes too.
        A copy of the corpus at another path is the same content, hence the same identity."""
        db = tmp_path / "r.duckdb"
        assert run(corpus, db, "--limit", "2") == 0
        capsys.readouterr()
        assert run(corpus, db, "--exact") == 0
        assert "2 traces replayed, 2 already stored" in one_line(capsys.readouterr().err)
        (tmp_path / "copy").mkdir()
        copy = tmp_path / "copy" / "renamed.jsonl"
        copy.write_bytes(corpus.read_bytes())
        assert run(copy, db) == 0
        assert "0 traces replayed, 4 already stored" in one_line(capsys.readouterr().err)
        assert rows(db, "SELECT count(DISTINCT identity), count(*) FROM provenance") == [(1, 3)]
        exact = rows(db, "SELECT exact FROM provenance ORDER BY started_at")
        assert exact == [(False,), (True,), (False,)]


class TestNewSession:
    def test_new_session_stores_a_second_identity_and_readers_pick_one(
        self, corpus: Path, tmp_path: Path, cohorts: Path, capsys: pytest.CaptureFixture[str]
    ) -> None:
        """--new-session replays everything again under the new identity; nothing of the first is lost;
        gate judges the latest identity and says so; --identity picks the older one."""
        db = tmp_path / "r.duckdb"
        assert faulty_run(corpus, db) == 0
        capsys.readouterr()
        assert run(corpus, db, "--new-session") == 0
        assert "4 traces replayed, 0 already stored" in one_line(capsys.readouterr().err)
        identities = rows(db, "SELECT identity, candidate_engine FROM provenance ORDER BY started_at")
        assert len({i for i, _ in identities}) == 2
        old, new = identities[0][0], identities[1][0]
        for table in ("traces", "runs", "steps", "records"):
            counts = dict(rows(db, f"SELECT identity, count(*) FROM {table} GROUP BY identity"))
            assert set(counts) == {old, new}, table
            assert min(counts[old], counts[new]) > 0, table
            if table != "steps":  # the faulty candidate runs one retry fewer
                assert counts[old] == counts[new], table
        # trace rows are attributable to a session of their identity
        assert rows(
            db,
            "SELECT count(*) FROM traces t JOIN provenance p USING (session_id) "
            "WHERE t.identity <> p.identity",
        ) == [(0,)]

        verdict, junit = tmp_path / "v.json", tmp_path / "j.xml"
        assert (
            main(["gate", str(db), "--cohorts", str(cohorts), "--json", str(verdict), "--junit", str(junit)])
            == 0
        )
        out = one_line(capsys.readouterr().out)
        assert f"identity {new[:12]}" in out
        assert "oracle" in out
        document = json.loads(verdict.read_text(encoding="utf-8"))
        assert document["identity"]["id"] == new
        assert document["identity"]["candidate_engine"].startswith("core-oracle")
        props = {p.get("name"): p.get("value") for p in ET.parse(junit).getroot().iter("property")}
        assert props["identity"] == new

        assert main(["gate", str(db), "--cohorts", str(cohorts), "--identity", old[:10], "--no-store"]) == 1
        assert f"identity {old[:12]}" in one_line(capsys.readouterr().out)

        assert main(["summary", str(db), "--json"]) == 0
        headline = json.loads(capsys.readouterr().out)
        assert headline["identity"] == new
        assert headline["traces"] == 4
        assert headline["divergences_raw"] == 0
        assert main(["summary", str(db), "--json", "--identity", old]) == 0
        headline = json.loads(capsys.readouterr().out)
        assert headline["identity"] == old
        assert headline["divergences_raw"] > 0

    def test_unknown_identity_is_a_harness_error(
        self, corpus: Path, tmp_path: Path, cohorts: Path, capsys: pytest.CaptureFixture[str]
    ) -> None:
        db = tmp_path / "r.duckdb"
        assert run(corpus, db) == 0
        capsys.readouterr()
        assert main(["gate", str(db), "--cohorts", str(cohorts), "--identity", "ffffffffffff"]) == 4
        assert "identity" in capsys.readouterr().err
        assert main(["summary", str(db), "--identity", "ffffffffffff"]) == 4
        assert main(["report", str(db), "-o", str(tmp_path / "r.html"), "--identity", "ffffffffffff"]) == 4

    def test_report_names_the_identity(
        self, corpus: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
    ) -> None:
        db = tmp_path / "r.duckdb"
        assert faulty_run(corpus, db) == 0
        assert run(corpus, db, "--new-session") == 0
        old = rows(db, "SELECT identity FROM provenance ORDER BY started_at LIMIT 1")[0][0]
        capsys.readouterr()
        assert main(["report", str(db), "-o", str(tmp_path / "r.html"), "--identity", old]) == 0
        assert f"identity {old[:12]}" in one_line(capsys.readouterr().out)
        assert old[:12] in (tmp_path / "r.html").read_text(encoding="utf-8")


def _v1_ddl() -> str:
    """The schema-1 DDL: today's tables without the identity columns, keyed by trace and signature alone."""
    from results.schema import TABLES

    statements = []
    for ddl in TABLES.values():
        lines = [ln for ln in ddl.splitlines() if not re.match(r"\s+(identity|identity_parts|exact) ", ln)]
        text = "\n".join(ln for ln in lines if "PRIMARY KEY (" not in ln)
        text = re.sub(
            r",(\s*--[^\n]*)?\n(\s*)\)$", r"\1\n\2)", text.rstrip()
        )  # the last column loses its comma
        text = text.replace(
            "trace_id VARCHAR,\n            session_id",
            "trace_id VARCHAR PRIMARY KEY,\n            session_id",
        ).replace(
            "signature VARCHAR,\n            workflow_type",
            "signature VARCHAR PRIMARY KEY,\n            workflow_type",
        )
        statements.append(text)
    return ";\n".join(statements) + ";"


class TestSchemaOneFiles:
    def test_upgrade_keeps_every_row_and_refuses_to_mix(
        self, corpus: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
    ) -> None:
        """A results file written before identities: readers still read it; the next run upgrades it in place
        (every row kept, one 'v1-' identity) and refuses to add a run to it without --new-session."""
        db = tmp_path / "old.duckdb"
        con = duckdb.connect(str(db))
        con.execute(_v1_ddl())
        con.execute("INSERT INTO meta VALUES ('schema_version', '1')")
        con.execute(
            "INSERT INTO provenance (session_id, started_at, baseline_engine, candidate_engine, config_hash, "
            "status) VALUES ('s1', now(), 'legacy 0.1.0', 'actor 0.1.0', 'abc', 'finished')"
        )
        con.execute(
            "INSERT INTO traces (trace_id, session_id, unexplained) VALUES ('t0', 's1', 0), ('old', 's1', 1)"
        )
        con.execute("INSERT INTO runs (trace_id, engine, run_id) VALUES ('t0', 'baseline', 'r1')")
        con.execute("INSERT INTO signatures (signature, status) VALUES ('a|b|c|d', 'unexplained')")
        con.close()
        assert main(["summary", str(db), "--json"]) == 0
        assert json.loads(capsys.readouterr().out)["traces"] == 2
        assert run(corpus, db) == 4
        assert "before identities were recorded" in one_line(capsys.readouterr().err)
        legacy = rows(db, "SELECT DISTINCT identity FROM provenance")
        assert len(legacy) == 1
        assert legacy[0][0].startswith("v1-")
        for table, n in (("traces", 2), ("runs", 1), ("signatures", 1)):
            assert rows(db, f"SELECT count(*), count(DISTINCT identity) FROM {table}") == [(n, 1)], table
        assert rows(db, "SELECT value FROM meta WHERE key = 'schema_version'") == [(str(SCHEMA_VERSION),)]
        assert run(corpus, db, "--new-session") == 0
        assert rows(db, "SELECT count(*) FROM traces WHERE identity = ?", [legacy[0][0]]) == [(2,)]
        assert main(["summary", str(db), "--json", "--identity", "v1-"]) == 0
        assert json.loads(capsys.readouterr().out)["traces"] == 2
