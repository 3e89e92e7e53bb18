"""The actor engine live: real clock, a SQLite file in WAL mode, nodes in this process or as OS processes."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from corpora.codec import encode
from corpora.model import RecordedAttempt, Run, RunStrategy, RunStrategyRule, Trace
from engines.actor.group import group_of
from engines.actor.live import LIVE_CONFIG, live_records, open_live_store, run_live, trigger_live, wait_live
from engines.api import ReplayOptions
from engines.core.oracle import CoreOracle
from engines.core.testing import T0, make_trace, rec, step
from tests.engines._actor_support import outcome

REPO = Path(__file__).resolve().parents[2]


def _trace(runs: int, seconds: float, trace_id: str = "live-1") -> Trace:
    """``runs`` parallel runs of a -> (b, c) -> d, each step ``seconds`` long."""
    steps = (step("a", "b", "c"), step("b", "d"), step("c", "d"), step("d"))
    out = []
    for i in range(runs):
        attempts: list[RecordedAttempt] = [
            rec("a", 1, "succeeded", seconds, {"n": i}),
            rec("b", 1, "succeeded", seconds),
            rec("c", 1, "succeeded", seconds),
            rec("d", 1, "succeeded", seconds),
        ]
        out.append(Run(f"run-{i}", T0 + i, attempts=tuple(attempts)))
    return make_trace(steps, runs=out, strategy=RunStrategy(RunStrategyRule.PARALLEL, 20), trace_id=trace_id)


def _expected(trace: Trace) -> list[tuple[object, ...]]:
    return outcome(CoreOracle().replay(trace, ReplayOptions()))


@pytest.mark.live
class TestInProcess:
    def test_two_nodes_run_every_run_like_the_oracle(self, tmp_path: Path) -> None:
        """Two in-process nodes on a WAL file finish 6 runs with the oracle's outcome."""
        trace = _trace(6, 0.05)
        records, counters = asyncio.run(
            run_live([trace], store_path=str(tmp_path / "s.db"), nodes=2, timeout=30)
        )
        assert outcome(records[0]) == _expected(trace)
        assert counters["runtime_starts"] == counters["attempts"] == 24


@pytest.mark.live
class TestProcesses:
    def test_sigkill_one_of_three_node_processes(self, tmp_path: Path) -> None:
        """Three node processes share one SQLite file; one is SIGKILLed mid-run; the others claim its
        groups (generation 2) and every run finishes with the oracle's outcome."""
        trace = _trace(9, 1.0)
        traces_file = tmp_path / "traces.jsonl"
        traces_file.write_text(json.dumps(encode(trace)) + "\n", encoding="utf-8")
        db = str(tmp_path / "store.db")
        env = {**os.environ, "PYTHONPATH": str(REPO)}
        procs = [
            subprocess.Popen(
                [
                    sys.executable,
                    "-m",
                    "engines.actor.node_main",
                    "--store",
                    db,
                    "--traces",
                    str(traces_file),
                    "--node-index",
                    str(i),
                    "--nodes",
                    "3",
                ],
                cwd=REPO,
                env=env,
                stdout=subprocess.PIPE,
                stderr=subprocess.PIPE,
                text=True,
            )
            for i in range(3)
        ]
        try:
            for p in procs:  # each prints one line once it serves
                assert p.stdout is not None
                assert "serving" in p.stdout.readline()
            trigger_live(db, [trace])
            time.sleep(1.5)  # mid-run: the first steps are running
            procs[1].send_signal(signal.SIGKILL)
            procs[1].wait(timeout=10)
            assert wait_live(db, [trace], timeout=25.0), "runs did not all finish after the SIGKILL"
        finally:
            for p in procs:
                if p.poll() is None:
                    p.send_signal(signal.SIGTERM)
            outputs = []
            for p in procs:
                try:
                    outputs.append(p.communicate(timeout=10))
                except subprocess.TimeoutExpired:
                    p.kill()
                    outputs.append(p.communicate())
        assert procs[1].returncode == -signal.SIGKILL
        for i in (0, 2):
            assert procs[i].returncode == 0, outputs[i][1][-2000:]
        store = open_live_store(db)
        try:
            leases = [store.lease(g) for g in range(LIVE_CONFIG.groups)]
        finally:
            store.close()
        busy = {
            group_of(trace.trace_id, i, r.run_id, LIVE_CONFIG.groups) for i, r in enumerate(trace.runs, 1)
        }
        killed = [(g, leases[g]) for g in sorted(busy) if g % 3 == 1]
        assert killed, "no run hashed to the killed node's groups: the test proves nothing"
        for g, lease in killed:
            assert lease is not None
            assert (lease.generation, lease.owner != "node-1") >= (2, True), (g, lease)
        runs = live_records(db, [trace])[0]
        from engines.api import ExecutionRecord

        assert outcome(ExecutionRecord(trace.trace_id, "actor", "1", 0, runs)) == _expected(trace)
