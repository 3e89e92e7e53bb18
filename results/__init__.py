"""The results contract: the bottom layer that the writer (``shadow``), the gate and the report share.

- :mod:`results.schema`: the DuckDB tables (DDL), the format mark, the schema version, canonical JSON.
- :mod:`results.rows`: one typed record per written table (a misspelled column is a type error, and the
  writer refuses unknown columns at run time) and :class:`~results.rows.DivergenceKind`.
- :mod:`results.identity`: what produced the rows, and how a reader sees one identity at a time.
- :mod:`results.errors`: the typed error and the hints for a file that is not a results database.
- :mod:`results.exitcodes`: the exit codes every command and the CI gate share.

It imports nothing from ``shadow``, ``engines`` or ``reports``: they import it.
"""
