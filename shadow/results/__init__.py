"""The results database (DuckDB): everything a shadow run produced, queryable with SQL."""
