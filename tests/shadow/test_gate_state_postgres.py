"""The rollout state store on PostgreSQL (``--state postgresql://...``): same rules, append-only, foreign
tables refused. Reuses the private server of tests/engines/test_store_postgres.py (skipped without one)."""

from __future__ import annotations

from pathlib import Path
from urllib.parse import quote

import pytest

from shadow.cli import main
from shadow.gate.errors import RolloutRefused
from shadow.gate.rollout import RolloutBook
from shadow.gate.state import StateStoreError, open_state
from tests.engines.test_store_postgres import psycopg, server_dsn  # noqa: F401 (a fixture)
from tests.shadow.test_gate_rollout import World


@pytest.fixture
def state_url(server_dsn: str) -> str:  # noqa: F811
    with psycopg.connect(server_dsn, autocommit=True) as admin:
        admin.execute("DROP SCHEMA public CASCADE")
        admin.execute("CREATE SCHEMA public")
    parts = psycopg.conninfo.conninfo_to_dict(server_dsn)
    return (
        f"postgresql://{parts['user']}@/{parts['dbname']}?host={quote(str(parts['host']), safe='')}"
        f"&port={parts['port']}"
    )


def test_advance_refuse_rollback_on_postgres(state_url: str, tmp_path: Path) -> None:
    world = World(tmp_path)
    world.book = RolloutBook(state_url, clock=world.clock)
    old = world.traffic(10)
    assert world.advance(world.gate(world.traffic()), to=50) == "canary 50 %"
    world.clock.tick()
    world.book.rollback("etl", note="pager")
    with pytest.raises(RolloutRefused, match="not after its last change"):
        world.advance(world.gate(old, world.lenient), cohorts=world.lenient, to=100)
    assert world.advance(world.gate(world.traffic()), to=100) == "cutover"
    assert [s.describe() for s in world.book.history("etl")] == ["canary 50 %", "rolled_back", "cutover"]
    with psycopg.connect(state_url, autocommit=True) as conn:
        for statement in ("UPDATE rollout_history SET state = 'canary'", "DELETE FROM rollout_history"):
            with pytest.raises(psycopg.Error, match="append-only"):
                conn.execute(statement)
    assert main(["rollout", "history", "etl", "--state", state_url]) == 0


def test_foreign_rollout_table_is_refused(state_url: str, capsys: pytest.CaptureFixture[str]) -> None:
    with psycopg.connect(state_url, autocommit=True) as conn:
        conn.execute("CREATE TABLE rollout_history (id int)")
    with pytest.raises(StateStoreError, match="not written by workflow-shadow"):
        open_state(state_url)
    assert main(["rollout", "status", "--state", state_url]) == 4
    assert "harness error" in capsys.readouterr().err
    with psycopg.connect(state_url, autocommit=True) as conn:
        assert conn.execute("SELECT to_regclass('rollout_meta')").fetchone()[0] is None
