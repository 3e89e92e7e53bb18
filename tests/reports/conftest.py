"""Fixtures for the report tests: factory-built results databases (see ``_dbfactory``)."""

from __future__ import annotations

from pathlib import Path

import pytest
from _dbfactory import FactorySummary, build_results_db


@pytest.fixture(scope="session")
def plain_db(tmp_path_factory: pytest.TempPathFactory) -> FactorySummary:
    return build_results_db(tmp_path_factory.mktemp("plain") / "results.duckdb", n_traces=24)


@pytest.fixture(scope="session")
def hostile_db(tmp_path_factory: pytest.TempPathFactory) -> FactorySummary:
    return build_results_db(tmp_path_factory.mktemp("hostile") / "results.duckdb", n_traces=24, hostile=True)


@pytest.fixture
def empty_db(tmp_path: Path) -> Path:
    return build_results_db(tmp_path / "empty.duckdb", n_traces=0).path
