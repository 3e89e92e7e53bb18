"""Engine store files carry marks (SQLite application_id, user_version); capture reads only stores of ours.

The original problem: ``shadow capture --store any.sqlite`` created the store's tables in someone
else's SQLite file and reported "captured 0 traces".
"""

from __future__ import annotations

import hashlib
import sqlite3
from pathlib import Path

import pytest

from engines.legacy.capture import CaptureError, capture_traces
from engines.store import LatencyModel, SqliteConfig, SqliteStore, StoreSchemaError
from engines.store.schema import APPLICATION_ID, LATEST_VERSION
from shadow.cli import main


def _digest(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def _foreign(path: Path) -> Path:
    conn = sqlite3.connect(path)
    conn.execute("CREATE TABLE notes (body TEXT)")
    conn.execute("INSERT INTO notes VALUES ('mine')")
    conn.commit()
    conn.close()
    return path


def _store(path: Path) -> Path:
    SqliteStore(SqliteConfig(path=str(path), latency=LatencyModel.zero())).close()
    return path


class TestMarks:
    def test_a_new_store_file_is_marked(self, tmp_path: Path) -> None:
        path = _store(tmp_path / "legacy.db")
        conn = sqlite3.connect(path)
        assert conn.execute("PRAGMA application_id").fetchone()[0] == APPLICATION_ID
        assert conn.execute("PRAGMA user_version").fetchone()[0] == LATEST_VERSION
        conn.close()

    def test_an_unmarked_store_of_ours_is_stamped_on_open(self, tmp_path: Path) -> None:
        """Stores written before the marks existed are still ours (schema_version + workflow_instances)."""
        path = _store(tmp_path / "old.db")
        conn = sqlite3.connect(path)
        conn.execute("PRAGMA application_id = 0")
        conn.close()
        _store(path)
        assert sqlite3.connect(path).execute("PRAGMA application_id").fetchone()[0] == APPLICATION_ID

    def test_a_foreign_sqlite_file_is_refused_by_the_store(self, tmp_path: Path) -> None:
        path = _foreign(tmp_path / "app.sqlite")
        before = _digest(path)
        with pytest.raises(StoreSchemaError, match="not written by workflow-shadow"):
            SqliteStore(SqliteConfig(path=str(path), latency=LatencyModel.zero()))
        assert _digest(path) == before


class TestCaptureRefusesForeignFiles:
    @pytest.mark.parametrize("kind", ["foreign", "other-app", "text", "empty-sqlite"])
    def test_refused_exit_4_and_untouched(
        self, tmp_path: Path, kind: str, capsys: pytest.CaptureFixture[str]
    ) -> None:
        path = tmp_path / "some.db"
        if kind == "foreign":
            _foreign(path)
        elif kind == "other-app":
            _foreign(path)
            conn = sqlite3.connect(path)
            conn.execute("PRAGMA application_id = 1234")
            conn.close()
        elif kind == "text":
            path.write_text("hello\n", encoding="utf-8")
        else:
            sqlite3.connect(path).execute("VACUUM").connection.close()
        before = _digest(path)
        out = tmp_path / "traces.jsonl"
        assert main(["capture", "--store", str(path), "-o", str(out)]) == 4
        err = capsys.readouterr().err
        assert "captured" not in err
        assert len(err.strip().splitlines()) == 1, err
        assert _digest(path) == before
        assert not out.exists()
        assert not (tmp_path / "some.db-wal").exists()

    def test_a_store_of_ours_is_read_without_a_write(self, tmp_path: Path) -> None:
        """Capture of a (here empty) legacy store works and leaves the file byte for byte as it was."""
        path = _store(tmp_path / "legacy.db")
        conn = sqlite3.connect(path)
        conn.execute("PRAGMA journal_mode=DELETE")  # a checkpointed, closed store: one file
        conn.close()
        before = _digest(path)
        assert list(capture_traces(path)) == []
        assert _digest(path) == before

    def test_a_missing_store_is_still_a_typed_error(self, tmp_path: Path) -> None:
        with pytest.raises(CaptureError, match="no legacy store"):
            list(capture_traces(tmp_path / "absent.db"))
