"""The records the report shows, one frozen dataclass per thing a reader looks at.

They are filled by :class:`reports.data.ResultsReader` from SQL aggregates and read by the templates;
nothing here touches the database.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

__all__ = [
    "CauseGroup",
    "EngineInfo",
    "FidelitySummary",
    "FidelityTrace",
    "HandoffSummary",
    "HandoffTrace",
    "Headline",
    "LatencyDistribution",
    "Provenance",
    "QuarantineEntry",
    "SignatureGroup",
    "Verdict",
    "Waiver",
]


@dataclass(frozen=True, slots=True)
class EngineInfo:
    role: str
    name: str
    version: str
    records: int


@dataclass(frozen=True, slots=True)
class Provenance:
    session_id: str
    started_at: str
    finished_at: str
    command: str
    git_sha: str
    package_version: str
    baseline_engine: str
    candidate_engine: str
    config_hash: str
    corpus_hash: str
    seeds: str
    traces_done: int | None
    status: str


@dataclass(frozen=True, slots=True)
class Verdict:
    cohort: str
    verdict: str
    score: float | None
    reason: str
    n_traces: int | None
    created_at: str
    criteria: tuple[dict[str, Any], ...]


@dataclass(frozen=True, slots=True)
class Headline:
    """The numbers at the top of the page. ``runs`` counts (trace, run) pairs replayed on the baseline."""

    traces: int
    runs: int
    runs_by_engine: dict[str, int]
    steps_by_engine: dict[str, int]
    divergent_traces: int
    unexplained_traces: int
    aa_divergent_traces: int
    trace_errors: int
    quarantined: int
    stuck_runs_by_engine: dict[str, int]
    engines: tuple[EngineInfo, ...]
    verdicts: tuple[Verdict, ...]
    provenance: tuple[Provenance, ...]
    schema_version: str
    identity: str = ""  # the one identity of results shown (results.identity), "" when none recorded


@dataclass(frozen=True, slots=True)
class SignatureGroup:
    """One divergence signature: how often baseline vs candidate shows it, and beside it A/A noise."""

    signature: str
    workflow_type: str
    step_type: str
    path_pattern: str
    kind: str
    candidate_traces: int
    aa_traces: int
    candidate_rate: float
    aa_rate: float
    status: str
    waived_by: str | None
    exemplars: tuple[str, ...]
    first_divergence_path: str

    @property
    def key(self) -> str:
        """What a divergence row must carry to belong to the group (its ``signature``)."""
        return self.signature

    def matches(self, divergence: dict[str, Any]) -> bool:
        return bool(divergence.get("signature") == self.signature)


@dataclass(frozen=True, slots=True)
class CauseGroup:
    """One cause (what changed, wherever it showed): its traces beside A/A noise, and the workflow types,
    step types and paths it touched."""

    cause: str
    description: str
    kind: str
    field: str
    change: str
    candidate_traces: int
    aa_traces: int
    candidate_rate: float
    aa_rate: float
    status: str
    waived_by: str | None
    root_traces: int
    consequence_of: str | None
    consequence_description: str | None
    members: dict[str, dict[str, int]]
    divergences: int
    exemplars: tuple[str, ...]
    first_divergence_path: str
    # Causes that follow from this one (never first in their runs, this one first there): (cause, description,
    # candidate traces). They are listed under it, not as groups of their own.
    consequences: tuple[tuple[str, str, int], ...] = ()

    @property
    def key(self) -> str:
        return self.cause

    def matches(self, divergence: dict[str, Any]) -> bool:
        """A divergence of this cause, or of one that follows from it."""
        cause = divergence.get("cause")
        return cause == self.cause or any(cause == c for c, _, _ in self.consequences)

    def top(self, member: str, n: int = 3) -> list[tuple[str, int]]:
        """The ``n`` members of one kind (``workflow_types``, ``step_types``, ``paths``) touching most traces."""
        return sorted((self.members.get(member) or {}).items(), key=lambda kv: (-kv[1], kv[0]))[:n]


@dataclass(frozen=True, slots=True)
class Waiver:
    entry_id: str
    pattern: str
    owner: str
    reason: str
    expires: str
    hits: int
    expired: bool


@dataclass(frozen=True, slots=True)
class QuarantineEntry:
    file: str
    line: int | None
    trace_id: str
    code: str
    message: str
    hint: str
    json_path: str


@dataclass(frozen=True, slots=True)
class LatencyDistribution:
    """Quantiles of one metric for one engine role (``quantiles[i]`` at ``CDF_PROBABILITIES[i]``)."""

    metric: str
    engine: str
    n: int
    quantiles: tuple[float, ...] = field(default_factory=tuple)
    non_positive: int = 0  # values <= 0: a log axis cannot place them, the chart says how many


@dataclass(frozen=True, slots=True)
class FidelitySummary:
    """One engine role against production's observations, over every observed trace (``fidelity`` table)."""

    engine: str
    traces: int
    checked: int  # observed statuses compared (runs + steps + extra steps)
    agree: int
    runs_observed: int
    runs_agree: int
    steps_observed: int
    steps_agree: int
    steps_missing: int
    steps_extra: int
    attempts_agree: int
    makespan_ratio_p50: float | None
    makespan_ratio_min: float | None
    makespan_ratio_max: float | None
    makespan_traces: int
    start_delay_ratio_p50: float | None
    start_delay_traces: int

    @property
    def agreement(self) -> float | None:
        return self.agree / self.checked if self.checked else None


@dataclass(frozen=True, slots=True)
class FaultKindSummary:
    """One fault of the campaign over every trace (``fault_trials`` table): trials, how many fired or could
    not be placed, the fired ones whose outcome changed (by outcome), and the latency the fault added."""

    fault: str
    kind: str
    trials: int
    fired: int
    not_placed: int
    changed: int
    outcomes: tuple[tuple[str, int], ...]  # (outcome, trials) over fired trials, worst first
    lost: int
    duplicated: int
    stuck: int
    latency_added_p50: float | None
    latency_added_max: float | None
    exemplars: tuple[tuple[str, str, str, str], ...]  # (trace_id, spec, outcome, detail) of changed trials


@dataclass(frozen=True, slots=True)
class HandoffSummary:
    """Every in-flight hand-off of ``shadow handoff`` (``handoffs`` table): legacy cut mid-run, actor adopting."""

    handoffs: int  # hand-offs that ran
    traces: int
    not_run: int  # cut points never reached, engine errors
    differing: int  # hand-offs whose outcome differed from the legacy-only replay
    differences: int
    duplicate_starts: int
    runs_live: int
    runs_queued: int
    attempts_running: int
    attempts_lost: int
    retries_pending: int
    makespan_ratio_p50: float | None  # handed-off / legacy-only makespan: a latency figure, never an outcome


@dataclass(frozen=True, slots=True)
class HandoffTrace:
    """A hand-off whose outcome differed from the legacy-only replay (or that started a runtime twice)."""

    trace_id: str
    cut: str
    cut_at: float | None
    differences: int
    duplicate_starts: int
    first_difference: str | None
    detail: tuple[dict[str, Any], ...]


@dataclass(frozen=True, slots=True)
class FidelityTrace:
    """A trace where a replay disagrees with production: the first disagreeing step and the listed ones."""

    trace_id: str
    engine: str
    status_agreement: float | None
    observed_status: str
    replayed_status: str
    first_disagreement: str | None
    disagreements: tuple[dict[str, Any], ...]
    makespan_ratio: float | None
