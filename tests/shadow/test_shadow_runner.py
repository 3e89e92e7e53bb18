"""The shadow run pipeline end to end: real CoreOracle as baseline, planted faults as candidates."""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import duckdb
import pytest

from corpora.codec import encode
from shadow.engines import resolve_engine
from shadow.runner import RunSettings, run_shadow
from shadow.sources import SelectionError
from shadow.testing import build_trace

REPO = Path(__file__).resolve().parents[2]
DIAMOND = {"a": ["b", "c"], "b": ["d"], "c": ["d"], "d": []}


def write_corpus(path: Path, n: int, *, bad_lines: int = 0) -> Path:
    with path.open("w", encoding="utf-8") as out:
        for i in range(n):
            owner = "team-a" if i % 2 == 0 else "team-b"
            trace = build_trace(
                f"t{i:03d}",
                DIAMOND,
                {"b": ["user_error", "succeeded"]},
                params={"c": {"x": i}},
                owner=owner,
                runs=1 + i % 2,
            )
            out.write(json.dumps(encode(trace)) + "\n")
        for _ in range(bad_lines):
            out.write("{not json\n")
    return path


def _progress(line: str) -> int:
    """Traces done in a non-TTY progress line (``progress: N traces in ...``), else -1."""
    match = re.match(r"progress: (\d+) traces", line)
    return int(match[1]) if match else -1


def settings(corpus: Path, db: Path, candidate: str = "oracle", **kw: object) -> RunSettings:
    cand_kwargs = kw.pop("candidate_kwargs", {})
    return RunSettings(
        corpus=(str(corpus),),
        db=str(db),
        baseline=resolve_engine("oracle"),
        candidate=resolve_engine(candidate, **cand_kwargs),
        **kw,
    )  # type: ignore[arg-type]


def rows(db: Path, sql: str) -> list[tuple]:
    con = duckdb.connect(str(db), read_only=True)
    try:
        return con.execute(sql).fetchall()
    finally:
        con.close()


class TestPipeline:
    def test_clean_candidate(self, tmp_path: Path) -> None:
        """Oracle vs oracle: every trace stored, zero divergences, A/A zero, latency computed."""
        corpus = write_corpus(tmp_path / "c.jsonl", 6, bad_lines=1)
        report = run_shadow(settings(corpus, tmp_path / "r.duckdb"))
        assert (report.status, report.traces_done, report.quarantined) == ("finished", 6, 1)
        db = tmp_path / "r.duckdb"
        assert rows(db, "SELECT count(*), sum(candidate_divergences), sum(aa_divergences) FROM traces") == [
            (6, 0, 0)
        ]
        assert rows(db, "SELECT count(*) FROM runs WHERE engine = 'candidate'") == [(9,)]
        assert rows(db, "SELECT code FROM quarantine") == [("malformed_json",)]
        assert rows(db, "SELECT count(DISTINCT engine) FROM latency WHERE metric = 'start_overhead'") == [
            (3,)
        ]

    def test_planted_fault_flagged(self, tmp_path: Path) -> None:
        """One retry fewer at b on the oracle: unexplained signatures at b, first divergence point b."""
        corpus = write_corpus(tmp_path / "c.jsonl", 4)
        db = tmp_path / "r.duckdb"
        run_shadow(
            settings(
                corpus,
                db,
                "shadow.testing:fake_engine_with_fault",
                candidate_kwargs={"inner": "oracle", "fault": "one_retry_fewer", "path": "b"},
            )
        )
        sigs = dict(rows(db, "SELECT signature, status FROM signatures"))
        assert sigs["etl|SHELL|b|attempt_count"] == "unexplained"
        assert rows(
            db, "SELECT DISTINCT first_divergence_path FROM signatures WHERE kind = 'attempt_count'"
        ) == [("b",)]
        assert rows(db, "SELECT count(*) FROM traces WHERE unexplained > 0") == [(4,)]

    def test_lost_wakeup_stuck(self, tmp_path: Path) -> None:
        """A lost wake-up is stored as stuck candidate runs with a stuck_run divergence."""
        corpus = write_corpus(tmp_path / "c.jsonl", 2)
        db = tmp_path / "r.duckdb"
        run_shadow(
            settings(
                corpus,
                db,
                "shadow.testing:fake_engine_with_fault",
                candidate_kwargs={"inner": "oracle", "fault": "lost_wakeup", "path": "d"},
            )
        )
        assert rows(db, "SELECT count(*) FROM runs WHERE engine = 'candidate' AND stuck") == [(3,)]
        assert rows(db, "SELECT DISTINCT path FROM divergences WHERE is_first") == [("d",)]

    def test_engine_error_recorded(self, tmp_path: Path) -> None:
        """An engine crash on one trace is that trace's engine_error; the others go on."""
        corpus = write_corpus(tmp_path / "c.jsonl", 3)
        db = tmp_path / "r.duckdb"
        report = run_shadow(
            settings(corpus, db, "shadow.testing:failing_engine", candidate_kwargs={"fail_on": "t001"})
        )
        assert report.traces_done == 3
        assert rows(
            db,
            "SELECT trace_id, kind FROM divergences WHERE comparison = 'candidate' AND kind = 'engine_error'",
        ) == [("t001", "engine_error")]
        assert rows(
            db, "SELECT error LIKE 'candidate: RuntimeError%' FROM traces WHERE trace_id = 't001'"
        ) == [(True,)]

    def test_registry_waives(self, tmp_path: Path) -> None:
        """A registry entry matching the planted signature marks it waived and counts hits."""
        from shadow.noise import Registry

        reg = tmp_path / "known.toml"
        reg.write_text(
            '[[divergence]]\nid = "K1"\nsignature = "etl|SHELL|c|params"\nowner = "o"\n'
            'reason = "r"\nexpires = 2099-01-01\n',
            encoding="utf-8",
        )
        corpus = write_corpus(tmp_path / "c.jsonl", 3)
        db = tmp_path / "r.duckdb"
        run_shadow(
            settings(
                corpus,
                db,
                "shadow.testing:fake_engine_with_fault",
                candidate_kwargs={"inner": "oracle", "fault": "drop_param", "path": "c", "param": "x"},
                registry=Registry.load(reg),
            )
        )
        assert rows(db, "SELECT status, waived_by FROM signatures") == [("waived", "K1")]
        assert rows(db, "SELECT hits FROM waivers") == [(4,)]  # t000, t002: 1 run; t001: 2 runs
        assert rows(db, "SELECT sum(unexplained) FROM traces") == [(0,)]


class TestSelectionAndResume:
    def test_where_sample_limit(self, tmp_path: Path) -> None:
        """--where keeps matching owners, --limit caps the session, a rerun adds only new traces."""
        corpus = write_corpus(tmp_path / "c.jsonl", 10)
        db = tmp_path / "r.duckdb"
        run_shadow(settings(corpus, db, where="owner = 'team-a'", limit=3, batch_size=2))
        assert rows(db, "SELECT DISTINCT owner, count(*) FROM traces GROUP BY owner") == [("team-a", 3)]
        again = run_shadow(settings(corpus, db, where="owner = 'team-a'"))
        assert (again.traces_done, again.skipped_existing) == (2, 3)
        run_shadow(settings(corpus, tmp_path / "s.duckdb", sample=0.5))
        sampled = rows(tmp_path / "s.duckdb", "SELECT count(*) FROM traces")[0][0]
        assert 0 < sampled < 10

    def test_where_on_size(self, tmp_path: Path) -> None:
        """--where can select on n_steps and n_runs (the diamond has 4 steps; odd traces have 2 runs)."""
        from shadow.sources import TraceSelector, read_corpus

        items = list(read_corpus([str(write_corpus(tmp_path / "c.jsonl", 6))]))
        assert len(TraceSelector("n_steps = 4").select(items)) == 6
        assert TraceSelector("n_steps > 4").select(items) == []
        chosen = TraceSelector("n_runs = 2 AND owner = 'team-b'").select(items)
        assert [it.trace.trace_id for it in chosen if it.trace] == ["t001", "t003", "t005"]

    def test_bad_where(self, tmp_path: Path) -> None:
        """A predicate DuckDB cannot parse is a SelectionError listing the columns."""
        with pytest.raises(SelectionError, match="Columns: trace_id"):
            run_shadow(
                settings(write_corpus(tmp_path / "c.jsonl", 1), tmp_path / "r.duckdb", where="owner = ")
            )

    def test_where_cannot_add_statements(self, tmp_path: Path) -> None:
        """A --where that closes the predicate and appends COPY ... TO is refused before anything runs."""
        from shadow.sources import TraceSelector

        target = tmp_path / "pwned.csv"
        where = f"1=1); COPY (SELECT 42) TO '{target}'; SELECT trace_id FROM trace_meta WHERE (1=1"
        with pytest.raises(SelectionError, match="not a single predicate"):
            TraceSelector(where)
        assert not target.exists()

    def test_where_cannot_touch_files(self, tmp_path: Path) -> None:
        """A --where reading a file through read_csv fails: the predicate runs without file system access."""
        from shadow.sources import TraceSelector

        secret = tmp_path / "secret.csv"
        secret.write_text("a\n1\n", encoding="utf-8")
        with pytest.raises(SelectionError, match="disabled by configuration"):
            TraceSelector(f"(SELECT count(*) FROM read_csv('{secret}')) > 0")

    def test_determinism(self, tmp_path: Path) -> None:
        """Two runs with the same seeds (one inline, one on 2 worker processes) give identical tables
        apart from harness timestamps."""
        corpus = write_corpus(tmp_path / "c.jsonl", 5)
        dbs = [tmp_path / "a.duckdb", tmp_path / "b.duckdb"]
        for workers, db in enumerate(dbs, start=1):
            run_shadow(
                settings(
                    corpus,
                    db,
                    "shadow.testing:fake_engine_with_fault",
                    workers=workers,
                    batch_size=2,
                    candidate_kwargs={"inner": "oracle", "fault": "one_retry_fewer"},
                    seed=7,
                )
            )
        queries = [
            "SELECT * EXCLUDE (session_id, wall_seconds) FROM traces ORDER BY ALL",
            "SELECT * FROM runs ORDER BY ALL",
            "SELECT * FROM steps ORDER BY ALL",
            "SELECT * FROM records ORDER BY ALL",
            "SELECT * FROM divergences ORDER BY ALL",
            "SELECT * FROM signatures ORDER BY ALL",
            "SELECT * FROM latency ORDER BY ALL",
            "SELECT * FROM latency_tests ORDER BY ALL",
        ]
        for sql in queries:
            assert rows(dbs[0], sql) == rows(dbs[1], sql), sql

    def test_small_flushes_and_chunks_store_the_same(
        self, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        """Flushing every few step rows and inserting 3-row Arrow chunks (the memory caps) stores
        exactly what one big flush does."""
        import shadow.results.store as store_module

        corpus = write_corpus(tmp_path / "c.jsonl", 6)
        big, small = tmp_path / "big.duckdb", tmp_path / "small.duckdb"
        run_shadow(settings(corpus, big, seed=3))
        monkeypatch.setattr(store_module, "INSERT_CHUNK", 3)
        report = run_shadow(settings(corpus, small, seed=3, flush_rows=5, flush_traces=10_000))
        assert report.traces_done == 6
        for table in ("runs", "steps", "records", "divergences", "latency"):
            sql = f"SELECT * FROM {table} ORDER BY ALL"
            assert rows(big, sql) == rows(small, sql), table
        assert rows(small, "SELECT count(*) FROM steps") == rows(big, "SELECT count(*) FROM steps") != [(0,)]

    @pytest.mark.slow
    def test_sigkill_then_resume(self, tmp_path: Path) -> None:
        """SIGKILL mid-run (2 worker processes), rerun: every trace stored exactly once; orphaned workers exit."""
        n = 40
        corpus = write_corpus(tmp_path / "c.jsonl", n)
        db = tmp_path / "r.duckdb"
        cmd = [
            sys.executable,
            "-m",
            "shadow.cli",
            "run",
            str(corpus),
            "--db",
            str(db),
            "--workers",
            "2",
            "--baseline",
            "oracle",
            "--candidate",
            "shadow.testing:slow_engine",
            "--batch-size",
            "2",
            "--flush-every",
            "2",
        ]
        env = {**os.environ, "PYTHONPATH": str(REPO), "SHADOW_PROGRESS_EVERY": "0"}
        proc = subprocess.Popen(
            cmd, cwd=REPO, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True
        )
        assert proc.stderr is not None
        for line in proc.stderr:  # non-TTY progress: one line per batch (SHADOW_PROGRESS_EVERY=0)
            if _progress(line) >= 6:
                break
        children_file = Path(f"/proc/{proc.pid}/task/{proc.pid}/children")
        workers = [int(p) for p in children_file.read_text().split()] if children_file.exists() else []
        workers = [p for p in workers if "spawn_main" in Path(f"/proc/{p}/cmdline").read_text()]
        assert len(workers) == 2, "expected the two spawned worker processes"
        proc.send_signal(signal.SIGKILL)
        proc.wait()
        proc.stderr.close()
        assert proc.returncode == -signal.SIGKILL, "the run finished before it could be killed"
        for _ in range(100):  # the workers' parent watchdog polls once a second
            if not any(
                Path(f"/proc/{pid}").exists() and "spawn" in Path(f"/proc/{pid}/cmdline").read_text()
                for pid in workers
            ):
                break
            time.sleep(0.1)
        else:
            pytest.fail(f"worker processes {workers} outlived their killed parent")
        partial = rows(db, "SELECT count(*) FROM traces")[0][0]
        assert 0 < partial < n, "the kill should land mid-run"
        done = subprocess.run(cmd, cwd=REPO, env=env, capture_output=True, text=True, check=False)
        assert done.returncode == 0, done.stderr
        assert "already stored" in done.stderr
        assert rows(db, "SELECT count(*), count(DISTINCT trace_id) FROM traces") == [(n, n)]
        assert rows(db, "SELECT count(*) FROM records") == [(3 * n,)]
        assert rows(db, "SELECT count(*) FROM (SELECT DISTINCT trace_id, engine, run_id FROM runs)") == rows(
            db, "SELECT count(*) FROM runs"
        )
        statuses = [r[0] for r in rows(db, "SELECT status FROM provenance ORDER BY started_at")]
        assert statuses == ["running", "finished"]


class TestInterrupt:
    @pytest.mark.slow
    @pytest.mark.parametrize("signum", [signal.SIGINT, signal.SIGTERM])
    def test_ctrl_c_stops_cleanly(self, tmp_path: Path, signum: signal.Signals) -> None:
        """SIGINT or SIGTERM (a cancelled CI job) mid-run: exit 130 / 143, session 'interrupted', what was done is
        stored and counted, rerun completes."""
        n = 30
        corpus = write_corpus(tmp_path / "c.jsonl", n)
        db = tmp_path / "r.duckdb"
        cmd = [
            sys.executable,
            "-m",
            "shadow.cli",
            "run",
            str(corpus),
            "--db",
            str(db),
            "--workers",
            "2",
            "--baseline",
            "oracle",
            "--candidate",
            "shadow.testing:slow_engine",
            "--batch-size",
            "2",
            "--flush-every",
            "2",
        ]
        env = {**os.environ, "PYTHONPATH": str(REPO), "SHADOW_PROGRESS_EVERY": "0"}
        proc = subprocess.Popen(
            cmd, cwd=REPO, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True
        )
        assert proc.stderr is not None
        for line in proc.stderr:
            if _progress(line) >= 4:
                break
        proc.send_signal(signum)
        rest = proc.stderr.read()
        proc.wait()
        proc.stderr.close()
        assert proc.returncode == (143 if signum == signal.SIGTERM else 130), rest
        status, done = rows(db, "SELECT status, traces_done FROM provenance")[0]
        assert status == "interrupted"
        assert rows(db, "SELECT count(*) FROM traces") == [(done,)]
        assert 4 <= done < n
        finish = subprocess.run(cmd, cwd=REPO, env=env, capture_output=True, text=True, check=False)
        assert finish.returncode == 0, finish.stderr
        assert rows(db, "SELECT count(DISTINCT trace_id), count(*) FROM traces") == [(n, n)]


class _ExplodingExecutor:
    """Runs one batch, then fails like a dead worker pool."""

    def __init__(self) -> None:
        from shadow.executors import InlineExecutor

        self.inner = InlineExecutor()
        self.batches = 0

    def run_batch(self, jobs, config):  # type: ignore[no-untyped-def]
        self.batches += 1
        if self.batches > 1:
            raise RuntimeError("worker pool broke")
        return self.inner.run_batch(jobs, config)

    def close(self) -> None:
        self.inner.close()


class TestHarnessFailure:
    def test_failed_session_keeps_finished_batches(self, tmp_path: Path) -> None:
        """An executor failure re-raises, keeps the finished batch, and marks the session failed."""
        corpus = write_corpus(tmp_path / "c.jsonl", 6)
        db = tmp_path / "r.duckdb"
        with pytest.raises(RuntimeError, match="worker pool broke"):
            run_shadow(settings(corpus, db, batch_size=2, flush_traces=1), executor=_ExplodingExecutor())
        assert rows(db, "SELECT status, traces_done FROM provenance") == [("failed", 2)]
        assert rows(db, "SELECT count(*) FROM traces") == [(2,)]
        assert run_shadow(settings(corpus, db)).traces_done == 4
