"""reports.render: one self-contained, escaped, offline page whose numbers match SQL."""

from __future__ import annotations

import json
import re
from html.parser import HTMLParser
from pathlib import Path

import duckdb
import pytest
from _dbfactory import HOSTILE_NAMES, FactorySummary, build_results_db

from reports.data import ReportLimits
from reports.render import ReportOptions, json_island, render_html, script_hash, write_report

ALLOWED_TAGS = {
    "html",
    "head",
    "meta",
    "title",
    "style",
    "body",
    "header",
    "h1",
    "h2",
    "h3",
    "div",
    "nav",
    "a",
    "main",
    "p",
    "section",
    "table",
    "thead",
    "tbody",
    "tr",
    "th",
    "td",
    "span",
    "code",
    "strong",
    "input",
    "select",
    "option",
    "details",
    "summary",
    "button",
    "pre",
    "script",
    "svg",
    "g",
    "rect",
    "line",
    "text",
    "polyline",
    "defs",
    "marker",
    "path",
}


class _Tags(HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.tags: list[tuple[str, dict[str, str | None]]] = []
        self.scripts: list[str] = []
        self._in_script = False

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.tags.append((tag, dict(attrs)))
        self._in_script = tag == "script"

    def handle_endtag(self, tag: str) -> None:
        self._in_script = False

    def handle_data(self, data: str) -> None:
        if self._in_script:
            self.scripts.append(data)


def _parse(html: str) -> _Tags:
    parser = _Tags()
    parser.feed(html)
    return parser


def _island(html: str) -> dict[str, object]:
    match = re.search(r'<script type="application/json" id="drilldown">(.*?)</script>', html, re.S)
    assert match, "data island missing"
    return json.loads(match.group(1))  # type: ignore[no-any-return]


@pytest.fixture(scope="module")
def hostile_html(hostile_db: FactorySummary) -> str:
    return render_html(hostile_db.path)


@pytest.fixture(scope="module")
def plain_html(plain_db: FactorySummary) -> str:
    return render_html(plain_db.path)


class TestSelfContained:
    def test_csp_forbids_network(self, plain_html: str) -> None:
        """The CSP meta tag denies every fetch by default and allows the inline script only by hash."""
        csp = next(
            a["content"]
            for t, a in _parse(plain_html).tags
            if t == "meta" and a.get("http-equiv") == "Content-Security-Policy"
        )
        assert csp is not None
        assert "default-src 'none'" in csp
        assert "img-src data:" in csp
        assert "'unsafe-eval'" not in csp
        assert "'unsafe-inline'" not in csp
        assert re.search(r"script-src 'sha256-[A-Za-z0-9+/=]+'", csp)

    def test_script_hash_matches_inline_script(self, plain_html: str) -> None:
        """The hash in the CSP is the SHA-256 of the one executable inline script."""
        parser = _parse(plain_html)
        executable = [a for t, a in parser.tags if t == "script" and a.get("type") != "application/json"]
        assert len(executable) == 1
        script = re.search(r"<script>(.*?)</script>", plain_html, re.S)
        assert script
        csp = next(
            a["content"]
            for t, a in parser.tags
            if t == "meta" and a.get("http-equiv") == "Content-Security-Policy"
        )
        assert csp is not None
        assert f"script-src {script_hash(script.group(1))};" in csp
        style = re.search(r"<style>(.*?)</style>", plain_html, re.S)
        assert style
        assert f"style-src {script_hash(style.group(1))};" in csp

    def test_no_external_references(self, plain_html: str) -> None:
        """No src, no stylesheet link and no href except in-page anchors."""
        for tag, attrs in _parse(plain_html).tags:
            assert "src" not in attrs, tag
            href = attrs.get("href")
            assert href is None or href.startswith("#"), href
        assert "http://" not in plain_html.replace('xmlns="http://www.w3.org/2000/svg"', "")
        assert "https://" not in plain_html


class TestHostileContent:
    def test_no_unescaped_markup(self, hostile_html: str) -> None:
        """Step names with <script>, quotes and </script> never become elements or attributes."""
        parser = _parse(hostile_html)
        tags = {t for t, _ in parser.tags}
        assert tags <= ALLOWED_TAGS, tags - ALLOWED_TAGS
        assert sum(1 for t, _ in parser.tags if t == "script") == 2
        assert "b" not in tags
        for _, attrs in parser.tags:
            assert not [k for k in attrs if k.startswith("on")]
        assert "<script>alert" not in hostile_html
        assert "</script><script>alert" not in hostile_html

    def test_hostile_text_is_shown_escaped(self, hostile_html: str) -> None:
        """The hostile names are visible on the page as text."""
        assert "&lt;script&gt;alert(1)&lt;/script&gt;" in hostile_html
        assert "ünïcödé-步骤-🚀" in hostile_html

    def test_json_island_survives_closing_tags(self, hostile_html: str) -> None:
        """</script> inside record JSON cannot end the data island; the JSON still parses intact."""
        island = _island(hostile_html)
        text = json.dumps(island, ensure_ascii=False)
        assert "</script>" in text  # present in the data ...
        assert "USER_FAILED</script>" in text or "<script>alert(1)</script>" in text

    def test_json_island_escapes(self) -> None:
        """The island encoder writes <, >, & and line separators as \\u escapes."""
        out = str(json_island({"k": "</script><!-- & \u2028"}))
        for raw in ("<", ">", "&", "\u2028"):
            assert raw not in out
        assert json.loads(out) == {"k": "</script><!-- & \u2028"}

    def test_bidi_override_never_raw(self, hostile_html: str) -> None:
        """A right-to-left override from a trace is shown as a marker, never emitted raw."""
        assert "\u202e" not in hostile_html
        assert "⟨U+202E⟩" in hostile_html

    def test_long_names_present(self, hostile_html: str) -> None:
        """A 300-character name is kept (wrapped by CSS), not dropped."""
        assert HOSTILE_NAMES[-1] in hostile_html


class TestContent:
    def test_headline_numbers_match_sql(self, plain_db: FactorySummary, plain_html: str) -> None:
        """The headline cards show the same numbers as SQL over the database."""
        con = duckdb.connect(str(plain_db.path), read_only=True)
        try:

            def one(sql: str) -> int:
                return int(con.execute(sql).fetchone()[0])  # type: ignore[index]

            expected = {
                "n-traces": one("SELECT count(*) FROM traces"),
                "n-runs": one("SELECT count(*) FROM runs WHERE engine = 'baseline'"),
                "n-divergent": one(
                    "SELECT count(DISTINCT trace_id) FROM divergences WHERE comparison = 'candidate'"
                ),
                "n-unexplained": one("SELECT count(*) FROM traces WHERE unexplained > 0"),
                "n-aa": one("SELECT count(DISTINCT trace_id) FROM divergences WHERE comparison = 'aa'"),
                "n-quarantined": one("SELECT count(*) FROM quarantine"),
            }
        finally:
            con.close()
        for anchor, value in expected.items():
            assert f'id="{anchor}">{value:,}<' in plain_html, anchor

    def test_every_group_and_exemplars(self, plain_db: FactorySummary, plain_html: str) -> None:
        """Each signature has a row; each drilled-down group shows its exemplars with diff, DAG and timeline."""
        con = duckdb.connect(str(plain_db.path), read_only=True)
        n_sig = con.execute("SELECT count(*) FROM signatures").fetchone()[0]  # type: ignore[index]
        n_ex = con.execute("SELECT sum(len(exemplars)) FROM signatures").fetchone()[0]  # type: ignore[index]
        con.close()
        assert plain_html.count('class="group-row"') == n_sig
        assert plain_html.count('class="exemplar"') == n_ex
        assert plain_html.count('class="dag"') == n_ex
        assert plain_html.count("side-by-side timeline") == n_ex
        assert "first divergence" in plain_html

    def test_quarantine_and_errors_listed(self, plain_html: str) -> None:
        """Quarantined input and trace errors appear with their messages."""
        assert plain_html.count('class="quarantine-row"') == 3
        assert "remove the transition b -&gt; a" in plain_html
        assert 'class="error-row"' in plain_html

    def test_caps_give_more_line(self, plain_db: FactorySummary, tmp_path: Path) -> None:
        """Rows past a cap become one link-free 'N more' line."""
        out = tmp_path / "r.html"
        stats = write_report(
            plain_db.path, out, options=ReportOptions(limits=ReportLimits(groups=2, drilldown_groups=1))
        )
        html = out.read_text(encoding="utf-8")
        assert stats.groups == 2
        more = re.search(r'<tr class="more"><td colspan="12">… (\d+) more signatures', html)
        assert more
        assert int(more.group(1)) > 0
        assert stats.exemplars <= 5

    def test_drilldown_byte_budget(self, plain_db: FactorySummary, tmp_path: Path) -> None:
        """Past the drill-down byte budget no more exemplars are drawn; the rest are listed by trace id."""
        out = tmp_path / "r.html"
        small = write_report(
            plain_db.path, out, options=ReportOptions(limits=ReportLimits(drilldown_bytes=1))
        )
        html = out.read_text(encoding="utf-8")
        full = write_report(plain_db.path, tmp_path / "full.html")
        assert small.exemplars == 1
        assert small.bytes < full.bytes
        assert "more exemplar(s) not drawn to keep the page small" in html

    def test_baseline_new_recurring_resolved(self, plain_db: FactorySummary, tmp_path: Path) -> None:
        """Against a previous database, signatures are split into new, recurring and resolved."""
        prev = build_results_db(tmp_path / "prev.duckdb", n_traces=24, signature_prefix="old-", seed=3)
        html = render_html(plain_db.path, baseline=prev.path)
        con = duckdb.connect(str(plain_db.path), read_only=True)
        n_now = con.execute("SELECT count(*) FROM signatures WHERE candidate_traces > 0").fetchone()[0]  # type: ignore[index]
        con.close()
        assert f'id="n-new">{n_now}<' in html
        assert 'id="n-recurring">0<' in html
        assert html.count('class="since-resolved"') > 0
        same = render_html(plain_db.path, baseline=plain_db.path)
        assert 'id="n-new">0<' in same
        assert f'id="n-recurring">{n_now}<' in same

    def test_empty_database_renders(self, empty_db: Path) -> None:
        """A database with no traces renders a page that says there is nothing, without errors."""
        html = render_html(empty_db)
        assert "No divergences" in html
        assert 'id="n-traces">0<' in html


class TestNumbers:
    def test_table_numbers_readable(self) -> None:
        """Large floats get separators instead of e-notation; small ones three significant digits."""
        from reports.render import _num

        assert _num(11234.5) == "11,234"
        assert _num(0.034512) == "0.0345"
        assert _num(None) == "—"
        assert _num(1000000) == "1,000,000"


class TestOlderDatabases:
    def test_missing_optional_tables(self, tmp_path: Path) -> None:
        """A database without the optional tables still renders, with a warning naming what is missing."""
        summary = build_results_db(tmp_path / "old.duckdb", n_traces=6)
        con = duckdb.connect(str(summary.path))
        for table in (
            "verdicts",
            "waivers",
            "latency_tests",
            "latency",
            "records",
            "steps",
            "rollout_history",
        ):
            con.execute(f"DROP TABLE IF EXISTS {table}")
        con.close()
        html = render_html(summary.path)
        assert "tables missing from the database" in html
        assert "No verdicts yet" in html
        assert "No paired statistics" in html
        assert 'class="group-row"' in html
