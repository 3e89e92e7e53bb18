"""The results database (DuckDB): everything a shadow run produced, queryable with SQL, and as pandas
DataFrames through :func:`open` (see :mod:`shadow.results.api`)::

    import shadow.results as results
    with results.open("out/results.duckdb") as r:
        r.causes()

The names below are loaded on first use (PEP 562): importing a light submodule such as
``shadow.results.files`` must not load DuckDB and pyarrow.
"""

from __future__ import annotations

import importlib
from typing import Any

__all__ = [
    "EngineLatency",
    "Headline",
    "Results",
    "ResultsError",
    "ResultsStore",
    "open",
    "open_results",
    "read_headline",
    "read_table",
]

_HOME = {
    "EngineLatency": "reader",
    "Headline": "reader",
    "open_results": "reader",
    "read_headline": "reader",
    "read_table": "reader",
    "ResultsError": "store",
    "ResultsStore": "store",
    "Results": "api",
    "open": "api",
}


def __getattr__(name: str) -> Any:
    if name not in _HOME:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    return getattr(importlib.import_module(f"shadow.results.{_HOME[name]}"), name)
