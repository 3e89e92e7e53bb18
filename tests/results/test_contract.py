"""The results contract (results/) holds together: every typed row matches its table's DDL, every
divergence kind is documented in the schema, the writer refuses a misspelled column, and the contract
imports nothing from the layers above it."""

from __future__ import annotations

import ast
import re
from pathlib import Path
from typing import get_type_hints

import duckdb
import pytest

from results import rows, schema
from shadow.results.store import ResultsStore

ROOT = Path(__file__).resolve().parents[2]


def _columns() -> dict[str, list[str]]:
    con = duckdb.connect()
    con.execute(schema.DDL)
    found: dict[str, list[str]] = {}
    for table, column in con.execute(
        "SELECT table_name, column_name FROM information_schema.columns ORDER BY table_name, ordinal_position"
    ).fetchall():
        found.setdefault(table, []).append(column)
    return found


@pytest.mark.parametrize("table", sorted(rows.ROW_TYPES))
def test_each_row_type_has_exactly_its_table_columns(table: str) -> None:
    assert sorted(get_type_hints(rows.ROW_TYPES[table])) == sorted(_columns()[table])


def test_every_divergence_kind_is_documented_in_the_schema() -> None:
    ddl = schema.TABLES["divergences"]
    documented = set(re.findall(r"[a-z_]+", ddl.split("kind VARCHAR,", 1)[1].split("detail VARCHAR", 1)[0]))
    assert {kind.value for kind in rows.DivergenceKind} <= documented


def test_the_writer_refuses_a_misspelled_column(tmp_path: Path) -> None:
    store = ResultsStore(tmp_path / "r.duckdb")
    try:
        with pytest.raises(ValueError, match="stuk"):
            store.to_arrow("runs", [{"trace_id": "t", "engine": "candidate", "run_id": "r", "stuk": True}])
        assert (
            store.to_arrow("runs", [rows.RunRow(trace_id="t", engine="candidate", run_id="r")]).num_rows == 1
        )
    finally:
        store.close()


def test_the_contract_imports_nothing_from_the_layers_above() -> None:
    for path in (ROOT / "results").glob("*.py"):
        tree = ast.parse(path.read_text(encoding="utf-8"))
        for node in ast.walk(tree):
            names = (
                [a.name for a in node.names]
                if isinstance(node, ast.Import)
                else ([node.module or ""] if isinstance(node, ast.ImportFrom) else [])
            )
            for name in names:
                assert name.split(".")[0] not in {"shadow", "engines", "reports", "corpora"}, (
                    path.name,
                    name,
                )


def test_reports_import_the_contract_not_the_shadow_package() -> None:
    for path in (ROOT / "reports").glob("*.py"):
        text = path.read_text(encoding="utf-8")
        assert not re.search(r"^\s*(from|import) (shadow|engines)\b", text, re.M), path.name
