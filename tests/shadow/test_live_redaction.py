"""Redaction end to end: secrets planted in a live legacy run's params and outputs appear nowhere after
``capture --redact`` -> ``run`` -> ``report`` -> ``gate`` (traces, DuckDB, HTML, verdict JSON, JUnit,
Markdown, everything the commands printed), and a condition on hashed values keeps its branch."""

from __future__ import annotations

import json
from pathlib import Path

import duckdb
import pytest

from corpora.io import read_traces
from corpora.model import Param, Step, StepType, Transition, WorkflowDefinition
from engines.api import ReplayOptions
from engines.legacy import LegacyEngine
from engines.legacy.live import live_trace, run_live
from shadow.cli import main
from tests.engines.test_legacy_live import QUICK

pytestmark = pytest.mark.live

SECRET_RUN = "sk-RUNPARAM-7f3a9c"  # a run param
SECRET_LITERAL = "pw-LITERAL-51bd02"  # a literal step param in the definition
SECRET_OUTPUT = "out-SECRET-c0ffee"  # printed by a shell step: an output
SECRETS = (SECRET_RUN, SECRET_LITERAL, SECRET_OUTPUT)

RULES = """
[redact]
key_env = "TEST_REDACT_KEY"

[[rule]]
name = "api token"
param = "api_token"
action = "hash"

[[rule]]
name = "passwords"
param = "password"
action = "mask"

[[rule]]
name = "leaky command"
step = "greet"
param = "command"
action = "hash"

[[rule]]
name = "shell output"
output = "std*"
action = "hash"
"""

COHORTS = """
[defaults]
min_traces = 1
divergence_budget = 0.5

[[cohort]]
name = "everything"
"""


def definition() -> WorkflowDefinition:
    """login prints the run's api token; the edge to ``greet`` is taken when its stdout equals the token
    (true in production), the edge to ``other`` otherwise. ``greet`` echoes a secret of its own."""
    return WorkflowDefinition(
        "secret-flow",
        (
            Step("login", StepType.SHELL,
                 params={"command": Param(value='printf %s "$$SHADOW_PARAM_TOK"'),
                         "tok": Param(expression="api_token"), "password": Param(value=SECRET_LITERAL)},
                 transitions=(Transition("greet", "stdout == api_token"), Transition("other", "stdout != api_token"))),
            Step("greet", StepType.SHELL, params={"command": Param(value=f"echo {SECRET_OUTPUT}")}),
            Step("other", StepType.NOOP),
        ),
        params={"api_token": Param(value="")},
    )  # fmt: skip


@pytest.fixture(scope="module")
def live_store(tmp_path_factory: pytest.TempPathFactory) -> Path:
    db = tmp_path_factory.mktemp("secret-live") / "legacy.db"
    trace = live_trace(definition(), runs=2, run_params={"api_token": SECRET_RUN})
    result = run_live([trace], store_path=db, config=QUICK, timeout=60)
    assert result.finished
    return db


def found(folder: Path, text: str) -> list[str]:
    hits = []
    for path in sorted(folder.rglob("*")):
        if path.is_file() and text.encode() in path.read_bytes():
            hits.append(path.name)
    return hits


def test_secrets_appear_nowhere_after_redaction(
    live_store: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("TEST_REDACT_KEY", "test-key-0123")
    out = tmp_path / "out"
    out.mkdir()
    (tmp_path / "rules.toml").write_text(RULES, encoding="utf-8")
    (tmp_path / "cohorts.toml").write_text(COHORTS, encoding="utf-8")

    # Control: without rules the capture holds every secret, so the checks below can see a leak.
    plain = tmp_path / "plain.jsonl"
    assert main(["capture", "--store", str(live_store), "-o", str(plain)]) == 0
    assert all(found(tmp_path, s) == ["plain.jsonl"] for s in SECRETS)
    plain.unlink()

    traces = out / "traces.jsonl"
    db = out / "results.duckdb"
    codes = [
        main(["capture", "--store", str(live_store), "--redact", str(tmp_path / "rules.toml"), "-o", str(traces)]),
        main(["run", str(traces), "--db", str(db), "--baseline", "legacy", "--candidate", "actor", "--workers", "1",
              "--no-progress"]),
        main(["report", str(db), "-o", str(out / "report.html"), "--corpus-root", str(out)]),
        main(["gate", str(db), "--cohorts", str(tmp_path / "cohorts.toml"), "--json", str(out / "verdict.json"),
              "--junit", str(out / "junit.xml"), "--markdown", str(out / "summary.md")]),
    ]  # fmt: skip
    printed = capsys.readouterr()
    (out / "stdout.log").write_text(printed.out, encoding="utf-8")
    (out / "stderr.log").write_text(printed.err, encoding="utf-8")
    assert codes[0] == 0, printed.err
    assert codes[1] in (0, 1), printed.err
    assert codes[2] in (0, 1), printed.err
    assert codes[3] in (0, 1, 2, 3), printed.err
    for name in ("traces.jsonl", "results.duckdb", "report.html", "verdict.json", "junit.xml", "summary.md"):
        assert (out / name).stat().st_size > 0, name
    for secret in SECRETS:
        assert found(out, secret) == [], secret
    # DuckDB may compress strings on disk: look at every value of every table as text too.
    with duckdb.connect(str(db), read_only=True) as conn:
        tables = [r[0] for r in conn.execute("SELECT table_name FROM information_schema.tables").fetchall()]
        dump = json.dumps([conn.execute(f'SELECT * FROM "{t}"').fetchall() for t in tables], default=str)
    assert tables
    for secret in SECRETS:
        assert secret not in dump, secret

    (item,) = read_traces([str(traces)])
    trace = item.trace
    assert trace is not None
    assert {n.rule for n in trace.metadata.redactions} == {
        "api token",
        "passwords",
        "leaky command",
        "shell output",
    }
    # Equal for equal: the condition compared two hashed values and still takes the production branch.
    record = LegacyEngine().replay(trace, ReplayOptions())
    for run in record.runs:
        statuses = {a.path: a.status for a in run.attempts}
        assert statuses.get("greet") == "SUCCEEDED", statuses
        assert statuses.get("other") != "SUCCEEDED", statuses
        assert run.status == "SUCCEEDED"
    assert [r.observed.steps["greet"].status for r in trace.runs if r.observed] == ["SUCCEEDED", "SUCCEEDED"]


def test_bad_rules_exit_4_before_writing(
    live_store: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    rules = tmp_path / "rules.toml"
    rules.write_text('[[rule]]\nparam = "x"\nactoin = "hash"\n', encoding="utf-8")
    out = tmp_path / "t.jsonl"
    assert main(["capture", "--store", str(live_store), "--redact", str(rules), "-o", str(out)]) == 4
    assert not out.exists()
    assert f"{rules}:3: rule[0].actoin: unknown key 'actoin'" in capsys.readouterr().err
    assert (
        main(
            ["corpus", "import", "--from", "wfformat", str(tmp_path), "--redact", str(rules), "-o", str(out)]
        )
        == 4
    )
    assert "rule[0].actoin" in capsys.readouterr().err
