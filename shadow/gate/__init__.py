"""The gate: cohorts, verdicts per cohort, CI artifacts, and the rollout lifecycle.

Typical use (what ``shadow gate`` does)::

    cohorts = load_cohorts("examples/cohorts.toml")
    result = evaluate("out/results.duckdb", cohorts, now=datetime.now(UTC))
    store_verdicts("out/results.duckdb", result)
    sys.exit(result.exit_code)          # 0 PASS, 1 FAIL, 2 MARGINAL, 3 INSUFFICIENT_DATA

The router that turns rollout state into an engine choice is ``shadow.gate.router``;
``shadow.gate.rollout.build_router`` builds one from the rollout state store (``shadow.gate.state``:
a SQLite file or a PostgreSQL URL, apart from any results database). See docs/GATE.md.
"""

from __future__ import annotations

from shadow.gate.cohorts import Budget, Cohort, CohortSelector, load_cohorts, parse_cohorts
from shadow.gate.errors import CohortFileError, GateError, ResultsDatabaseError, RolloutRefused
from shadow.gate.evaluate import GateResult, evaluate, store_verdicts
from shadow.gate.outputs import to_json, to_junit, to_markdown
from shadow.gate.rollout import RolloutBook, RolloutState, build_router
from shadow.gate.verdict import CohortVerdict, Criterion, CriterionStatus, Verdict, exit_code, worst

__all__ = [
    "Budget",
    "Cohort",
    "CohortFileError",
    "CohortSelector",
    "CohortVerdict",
    "Criterion",
    "CriterionStatus",
    "GateError",
    "GateResult",
    "ResultsDatabaseError",
    "RolloutBook",
    "RolloutRefused",
    "RolloutState",
    "Verdict",
    "build_router",
    "evaluate",
    "exit_code",
    "load_cohorts",
    "parse_cohorts",
    "store_verdicts",
    "to_json",
    "to_junit",
    "to_markdown",
    "worst",
]
