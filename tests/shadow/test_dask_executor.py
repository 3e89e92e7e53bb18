"""shadow run on a Dask cluster (issue 14): same tables as inline, exactly once through worker and driver
deaths, a crashing trace recorded as an engine error, a scheduler that does not answer is exit 4.

The clusters are ``LocalCluster``s of 2 worker processes (one thread each) on tiny corpora. Dask is an
optional extra: without it these tests skip, unless ``SHADOW_REQUIRE_DASK=1`` (.ci/run) makes that an
error, since the nox ``tests`` session installs it.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import duckdb
import pytest

from corpora.codec import encode
from corpora.generator import GeneratorConfig, generate_corpus
from corpora.io import write_traces
from shadow.batches import group_by_steps
from shadow.engines import resolve_engine
from shadow.runner import RunSettings, run_shadow
from shadow.testing import build_trace
from shadow.trial import TraceJob

REPO = Path(__file__).resolve().parents[2]
DIAMOND = {"a": ["b", "c"], "b": ["d"], "c": ["d"], "d": []}

if os.environ.get("SHADOW_REQUIRE_DASK") == "1":
    import distributed
else:
    distributed = pytest.importorskip("distributed", reason="the dask extra is not installed")

# Every per-trace table, compared on every column but wall-clock and provenance (session, identity).
TABLE_QUERIES = [
    "SELECT * EXCLUDE (session_id, wall_seconds, identity) FROM traces ORDER BY ALL",
    "SELECT * EXCLUDE (identity) FROM runs ORDER BY ALL",
    "SELECT * EXCLUDE (identity) FROM steps ORDER BY ALL",
    "SELECT * EXCLUDE (identity) FROM records ORDER BY ALL",
    "SELECT * EXCLUDE (identity) FROM divergences ORDER BY ALL",
    "SELECT * EXCLUDE (identity) FROM signatures ORDER BY ALL",
    "SELECT * EXCLUDE (identity) FROM latency ORDER BY ALL",
    "SELECT * EXCLUDE (identity) FROM latency_tests ORDER BY ALL",
]


def rows(db: Path, sql: str) -> list[tuple[Any, ...]]:
    con = duckdb.connect(str(db), read_only=True)
    try:
        return con.execute(sql).fetchall()
    finally:
        con.close()


def diamond_corpus(path: Path, n: int) -> Path:
    with path.open("w", encoding="utf-8") as out:
        for i in range(n):
            trace = build_trace(
                f"t{i:03d}",
                DIAMOND,
                {"b": ["user_error", "succeeded"]},
                params={"c": {"x": i}},
                runs=1 + i % 2,
            )
            out.write(json.dumps(encode(trace)) + "\n")
    return path


def settings(corpus: Path, db: Path, candidate: str, baseline: str = "oracle", **kw: Any) -> RunSettings:
    options = kw.pop("candidate_kwargs", {})
    return RunSettings(
        corpus=(str(corpus),),
        db=str(db),
        baseline=resolve_engine(baseline),
        candidate=resolve_engine(candidate, **options),
        **kw,
    )


@pytest.fixture(scope="module")
def client() -> Iterator[Any]:
    """One local cluster for the module: 2 nanny-managed worker processes; a task survives one worker death
    (allowed-failures 1) so the crash tests stay short."""
    import dask

    with dask.config.set(
        {"distributed.scheduler.allowed-failures": 1, "distributed.scheduler.worker-saturation": 1.0}
    ):
        cluster = distributed.LocalCluster(
            n_workers=2,
            threads_per_worker=1,
            processes=True,
            dashboard_address=None,
            silence_logs=50,
            env={"PYTHONPATH": str(REPO)},
        )
    dask_client = distributed.Client(cluster, set_as_default=False)
    yield dask_client
    dask_client.close()
    cluster.close()


def dask_executor(client: Any, **kw: Any) -> Any:
    from shadow.dask_executor import DaskExecutor

    return DaskExecutor(client=client, **kw)


def test_group_by_steps_sizes_tasks_by_recorded_attempts() -> None:
    traces = list(generate_corpus(5, 12, GeneratorConfig(max_steps=30)))
    jobs = [TraceJob(t, "c.jsonl", i + 1) for i, t in enumerate(traces)]
    groups = list(group_by_steps([jobs[:5], jobs[5:]], steps=40, max_traces=3))
    assert [j.trace.trace_id for g in groups for j in g] == [t.trace_id for t in traces]  # order kept
    cost = [sum(len(r.attempts) for r in j.trace.runs) for j in jobs]
    at = 0
    for group in groups:
        n = len(group)
        assert n <= 3
        # a group closes at the first trace that brings it to 40 attempts, never later
        assert all(sum(cost[at : at + k]) < 40 for k in range(1, n))
        at += n
    ahead = list(
        group_by_steps([jobs[i : i + 3] for i in range(0, 12, 3)], steps=40, max_traces=3, lookahead=6)
    )
    assert sorted(j.trace.trace_id for g in ahead for j in g) == sorted(t.trace_id for t in traces)
    first_window = [j for g in ahead for j in g][:6]  # the first 6 traces read, largest first
    assert {j.trace.trace_id for j in first_window} == {j.trace.trace_id for j in jobs[:6]}
    costs = [sum(len(r.attempts) for r in j.trace.runs) for j in first_window]
    assert costs == sorted(costs, reverse=True)


def test_tables_equal_an_inline_run(tmp_path: Path, client: Any) -> None:
    """Same corpus and seeds on the real engines: every table equal but wall-clock and provenance; the tasks
    are small (20 attempts), so the traces spread over both workers and come back out of order."""
    corpus = tmp_path / "c.jsonl"
    write_traces(str(corpus), list(generate_corpus(3, 6, GeneratorConfig(max_steps=4))))
    inline, dask_db = tmp_path / "inline.duckdb", tmp_path / "dask.duckdb"
    run_shadow(settings(corpus, inline, "actor", baseline="legacy", seed=5, workers=1))
    executor = dask_executor(client, batch_steps=20)
    report = run_shadow(settings(corpus, dask_db, "actor", baseline="legacy", seed=5), executor=executor)
    assert report.status == "finished"
    assert report.traces_done == 6
    for sql in TABLE_QUERIES:
        assert rows(inline, sql) == rows(dask_db, sql), sql
    assert rows(dask_db, "SELECT count(*) FROM steps")[0][0] > 0
    # the driver filled what the workers leave null
    assert rows(dask_db, "SELECT count(*) FROM traces WHERE session_id IS NULL OR identity = ''") == [(0,)]
    assert rows(inline, "SELECT DISTINCT identity FROM steps") == rows(
        dask_db, "SELECT DISTINCT identity FROM steps"
    )


def test_parquet_parts_store_the_same_and_are_removed(tmp_path: Path, client: Any) -> None:
    corpus = diamond_corpus(tmp_path / "c.jsonl", 9)
    parts = tmp_path / "parts"
    inline, dask_db = tmp_path / "inline.duckdb", tmp_path / "dask.duckdb"
    run_shadow(settings(corpus, inline, "shadow.testing:fake_engine", seed=2))
    run_shadow(
        settings(corpus, dask_db, "shadow.testing:fake_engine", seed=2),
        executor=dask_executor(client, batch_steps=10, parts_dir=str(parts)),
    )
    for sql in TABLE_QUERIES:
        assert rows(inline, sql) == rows(dask_db, sql), sql
    assert parts.is_dir()
    assert not any(parts.iterdir()), "ingested parts are removed"


def test_worker_killed_mid_batch_is_retried_without_duplicates(tmp_path: Path, client: Any) -> None:
    """The candidate kills its worker process (os._exit) the first time it meets t004: Dask reruns that
    batch on a fresh worker; the run completes with every trace once and no error."""
    corpus = diamond_corpus(tmp_path / "c.jsonl", 12)
    marker = tmp_path / "crashed-once"
    reference, db = tmp_path / "ref.duckdb", tmp_path / "r.duckdb"
    run_shadow(settings(corpus, reference, "shadow.testing:crashing_engine", seed=1))  # crashes nothing
    executor = dask_executor(client, batch_steps=12)
    report = run_shadow(
        settings(
            corpus,
            db,
            "shadow.testing:crashing_engine",
            seed=1,
            candidate_kwargs={"crash_on": "t004", "once": str(marker)},
        ),
        executor=executor,
    )
    assert marker.exists(), "the worker should have died once"
    assert report.status == "finished"
    assert report.traces_done == 12
    assert executor.crashed_traces == []
    assert rows(db, "SELECT count(*), count(DISTINCT trace_id) FROM traces") == [(12, 12)]
    assert rows(db, "SELECT count(*) FROM traces WHERE error IS NOT NULL") == [(0,)]
    for sql in TABLE_QUERIES[1:5]:  # rows equal a run where nothing died (engine options differ: identity)
        assert rows(reference, sql) == rows(db, sql), sql


def test_trace_that_always_kills_its_worker_is_an_engine_error(tmp_path: Path, client: Any) -> None:
    """t005 kills every worker that replays it: its batch is split per trace, t005 is recorded as an engine
    error (a worker crash) and every other trace is replayed normally."""
    corpus = diamond_corpus(tmp_path / "c.jsonl", 10)
    db = tmp_path / "r.duckdb"
    executor = dask_executor(client, batch_steps=16)
    report = run_shadow(
        settings(corpus, db, "shadow.testing:crashing_engine", candidate_kwargs={"crash_on": "t005"}),
        executor=executor,
    )
    assert report.status == "finished"
    assert report.traces_done == 10
    assert executor.crashed_traces == ["t005"]
    errors = rows(db, "SELECT trace_id, error FROM traces WHERE error IS NOT NULL")
    assert [e[0] for e in errors] == ["t005"]
    assert "killed its Dask worker" in errors[0][1]
    assert rows(db, "SELECT count(DISTINCT trace_id), count(*) FROM traces") == [(10, 10)]
    assert rows(db, "SELECT count(*) FROM records WHERE trace_id <> 't005'") == [(27,)]  # 9 traces x 3 roles
    assert rows(db, "SELECT DISTINCT kind FROM divergences WHERE trace_id = 't005'") == [("engine_error",)]


def test_task_exception_is_a_harness_error(tmp_path: Path, client: Any) -> None:
    """A task that raises (here: the candidate's factory is unknown on the workers) is not a worker death:
    the run stops with a typed error naming what to check."""
    from shadow.dask_executor import DaskTaskError
    from shadow.engines import EngineSpec

    corpus = diamond_corpus(tmp_path / "c.jsonl", 3)
    broken = EngineSpec("nowhere", "no_such_module_here:factory", ())
    base = settings(corpus, tmp_path / "r.duckdb", "shadow.testing:fake_engine")
    from dataclasses import replace

    with pytest.raises(DaskTaskError, match="same workflow-shadow version"):
        run_shadow(replace(base, candidate=broken), executor=dask_executor(client))
    assert rows(tmp_path / "r.duckdb", "SELECT status FROM provenance") == [("failed",)]


def _cli(*args: str) -> list[str]:
    return [sys.executable, "-m", "shadow.cli", "run", *args]


ENV = {**os.environ, "PYTHONPATH": str(REPO), "SHADOW_PROGRESS_EVERY": "0"}


def test_unreachable_scheduler_is_exit_4_naming_the_address(tmp_path: Path) -> None:
    corpus = diamond_corpus(tmp_path / "c.jsonl", 2)
    db = tmp_path / "r.duckdb"
    done = subprocess.run(
        _cli(str(corpus), "--db", str(db), "--executor", "dask", "--scheduler", "tcp://127.0.0.1:1"),
        cwd=REPO,
        env=ENV,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == 4, done.stderr
    message = " ".join(done.stderr.split())
    assert "tcp://127.0.0.1:1" in message
    assert "8786" in message
    assert "Traceback" not in message
    assert not db.exists(), "nothing is written before the cluster answers"


def test_cli_rejects_dask_flags_without_dask(tmp_path: Path) -> None:
    corpus = diamond_corpus(tmp_path / "c.jsonl", 1)
    done = subprocess.run(
        _cli(
            str(corpus),
            "--db",
            str(tmp_path / "r.duckdb"),
            "--executor",
            "process",
            "--scheduler",
            "tcp://127.0.0.1:8786",
        ),
        cwd=REPO,
        env=ENV,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == 4
    assert "is for --executor dask" in done.stderr
    missing = subprocess.run(
        _cli(
            str(corpus),
            "--db",
            str(tmp_path / "r.duckdb"),
            "--executor",
            "dask",
            "--parts-dir",
            str(tmp_path / "nowhere"),
        ),
        cwd=REPO,
        env=ENV,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert missing.returncode == 4
    assert "not a folder" in " ".join(missing.stderr.split())
    assert not (tmp_path / "nowhere").exists()


def _children(pid: int) -> list[int]:
    found: list[int] = []
    for task in Path(f"/proc/{pid}/task").glob("*"):
        children = task / "children"
        if children.exists():
            found += [int(p) for p in children.read_text().split()]
    return found


def test_driver_killed_then_rerun_stores_every_trace_once(tmp_path: Path) -> None:
    """SIGKILL the driver of a Dask run mid-way, rerun: every trace exactly once; its workers do not outlive it."""
    n = 40
    corpus = diamond_corpus(tmp_path / "c.jsonl", n)
    db = tmp_path / "r.duckdb"
    cmd = _cli(
        str(corpus),
        "--db",
        str(db),
        "--executor",
        "dask",
        "--workers",
        "2",
        "--baseline",
        "oracle",
        "--candidate",
        "shadow.testing:slow_engine",
        "--batch-steps",
        "8",
        "--flush-every",
        "2",
    )
    proc = subprocess.Popen(
        cmd, cwd=REPO, env=ENV, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True
    )
    assert proc.stderr is not None
    for line in proc.stderr:
        if line.startswith("progress: ") and int(line.split()[1]) >= 6:
            break
    workers = [p for p in _children(proc.pid) if "spawn" in Path(f"/proc/{p}/cmdline").read_text()]
    assert workers, "expected spawned worker processes"
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    proc.stderr.close()
    assert proc.returncode == -signal.SIGKILL, "the run finished before it could be killed"
    deadline = time.monotonic() + 60
    while any(
        Path(f"/proc/{pid}").exists() and "spawn" in Path(f"/proc/{pid}/cmdline").read_text()
        for pid in workers
    ):
        assert time.monotonic() < deadline, f"worker processes {workers} outlived their killed driver"
        time.sleep(0.2)
    partial = rows(db, "SELECT count(*) FROM traces")[0][0]
    assert 0 < partial < n, "the kill should land mid-run"
    done = subprocess.run(cmd, cwd=REPO, env=ENV, capture_output=True, text=True, timeout=180, check=False)
    assert done.returncode == 0, done.stderr
    assert "already stored" in done.stderr
    lines = done.stderr.splitlines()  # what the terminal or the CI log shows: workers, dashboard, progress
    assert any(
        line.startswith("dask: 2 workers (2 threads) on a local cluster; dashboard http") for line in lines
    )
    assert any(line.startswith("progress: ") for line in lines)
    assert rows(db, "SELECT count(*), count(DISTINCT trace_id) FROM traces") == [(n, n)]
    assert rows(db, "SELECT count(*) FROM records") == [(3 * n,)]
    assert rows(
        db, "SELECT count(*) FROM (SELECT DISTINCT trace_id, engine, run_id, path, attempt FROM steps)"
    ) == rows(db, "SELECT count(*) FROM steps")


@pytest.mark.filterwarnings("ignore::ResourceWarning", "ignore::pytest.PytestUnraisableExceptionWarning")
def test_local_cluster_replaces_a_worker_whose_nanny_gave_up() -> (
    None
):  # closing a nanny by hand leaks a Dask socket
    """A nanny that closed (it failed to restart a dead worker, seen once under heavy load) would leave a
    local run waiting for workers forever: ``heal`` (called while waiting) starts a new one."""
    from shadow.dask_executor import DaskExecutor

    executor = DaskExecutor(2, dashboard=False)
    try:
        nanny = next(iter(executor.cluster.workers.values()))
        executor.client.sync(nanny.close)
        assert executor.heal() == 1
        executor.client.wait_for_workers(2, timeout=120)
        assert len(executor.client.nthreads()) == 2
        assert executor.heal() == 0
    finally:
        executor.close()
