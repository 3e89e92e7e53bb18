"""reports.smoke: headless Chromium sees no console errors and no network requests (skipped without Chromium)."""

from __future__ import annotations

from pathlib import Path

import pytest
from _dbfactory import FactorySummary

from reports.render import write_report
from reports.smoke import find_chromium, main, smoke_test

pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(
        find_chromium() is None,
        reason="Chromium not installed (apt-get install -y chromium, or set SHADOW_CHROMIUM)",
    ),
]

BAD_PAGE = """<!DOCTYPE html><html><head>
<meta http-equiv="Content-Security-Policy" content="default-src 'none'; script-src 'unsafe-inline'">
</head><body><script>console.error("boom");</script><img src="https://example.invalid/x.png"></body></html>"""


class TestSmoke:
    def test_hostile_report_is_clean(self, hostile_db: FactorySummary, tmp_path: Path) -> None:
        """The report of a hostile database loads with no console error, no request, and a working script."""
        html = write_report(hostile_db.path, tmp_path / "r.html").path
        result = smoke_test(html, screenshot=tmp_path / "r.png", height=1200)
        assert result.problems == ()
        assert result.exercised["raw"] > 0
        assert result.exercised["filtered"] == "0 shown"
        assert (tmp_path / "r.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"

    def test_bad_page_fails(self, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
        """A page that logs an error and loads a remote image fails with exit 1, naming both."""
        page = tmp_path / "bad.html"
        page.write_text(BAD_PAGE, encoding="utf-8")
        assert main([str(page), "--screenshot", str(tmp_path / "bad.png")]) == 1
        err = capsys.readouterr().err
        assert "console.error: boom" in err
        assert "https://example.invalid/x.png" in err

    def test_missing_source_is_harness_error(self, tmp_path: Path) -> None:
        """A results database that does not exist exits 4 before any browser starts."""
        assert main([str(tmp_path / "none.duckdb"), "--screenshot", str(tmp_path / "x.png")]) == 4
