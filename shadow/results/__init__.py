"""The results database (DuckDB): everything a shadow run produced, queryable with SQL."""

from __future__ import annotations

from shadow.results.reader import EngineLatency, Headline, open_results, read_headline, read_table
from shadow.results.store import ResultsError, ResultsStore

__all__ = ["EngineLatency", "Headline", "ResultsError", "ResultsStore", "open_results", "read_headline",
           "read_table"]
