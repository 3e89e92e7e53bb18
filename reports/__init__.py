"""The HTML divergence report: reads a results database (DuckDB) and writes one self-contained page.

Entry points: ``shadow report`` (shadow/commands/report.py), :func:`reports.render.write_report`,
and ``python -m reports.smoke`` (headless Chromium check). See docs/REPORT.md.
"""
