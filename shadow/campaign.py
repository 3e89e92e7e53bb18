"""Fault campaigns: replay the candidate under faults, trace by trace, and say what each fault did.

``shadow run CORPUS --faults CAMPAIGN.toml``. A campaign lists faults as *templates* of the candidate
engine's own fault specs (``shadow replay --fault help`` prints them); placeholders are filled per trace
from the candidate's own no-fault record of that trace, with a draw seeded by (campaign seed, trace id,
fault name, trial number), so a campaign is deterministic and every trial can be replayed alone::

    seed = 0                       # optional; placements change with it
    engine = { nodes = 2 }         # optional factory options of the engine under faults (default: the
                                   # candidate's own); with options, a no-fault reference replay is run
                                   # with them too, so trials compare like with like

    [[fault]]
    name = "node crash while live"
    spec = "crash:*@{during}"      # {during}: seconds after the first trigger, uniform over [0, last run end)
    trials = 2                     # per trace (default 1)

    [[fault]]
    name = "lost StartTask"
    spec = "drop:StartTask#{occurrence:deliveries_StartTask}"   # 1..that counter of the no-fault record

Placeholders: ``{during}`` and ``{occurrence:COUNTER}`` (any counter of the engine's record, e.g. the
actor's ``deliveries_KIND`` and ``store_commits``, the legacy engine's ``cycles``). A trace whose
reference record has nothing to place the fault in (a counter of 0, no run that ended) gets a
``not_placed`` trial: counted, never run, never a pass.

Each trial's record is compared with the reference record (the same engine without the fault) and
classified (:data:`OUTCOMES`, worst first); ``fired`` comes from the engine's ``faults_fired`` counter
(a fault planned after the replay ended never fires, and such a trial is counted apart, never as a
pass). A fired trial whose outcome is not ``equal`` is a critical finding of the gate, which the noise
filter cannot waive: the same engine, on the same trace, decided differently because of the fault.
"""

from __future__ import annotations

import difflib
import hashlib
import random
import re
import time
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from corpora.model import Trace
from engines.api import ExecutionRecord
from results.rows import DivergenceKind, FaultTrialRow
from shadow.compare import CausalOrder, NormalForms, compare_records
from shadow.engines import EngineSpec, EngineSpecError, build_engine

__all__ = [
    "OUTCOMES",
    "Campaign",
    "CampaignError",
    "FaultEntry",
    "check_campaign",
    "classify",
    "load_campaign",
    "place",
    "run_trials",
]

OUTCOMES = (
    "engine_error",
    "stuck",
    "lost_attempt",
    "duplicated_attempt",
    "wrong_status",
    "changed_data",
    "equal",
    "not_placed",
)
"""A trial's outcome, worst first: the engine failed; a run never ended; an attempt of the no-fault record
is missing; an attempt ran twice (an extra attempt, or the runtime invoked once more than the attempts it
ran); a run or step ended with another status; params, outputs or config differ; nothing differs (latency
aside); or the fault could not be placed in this trace."""

_PLACEHOLDER = re.compile(r"\{([^{}]*)\}")
_KEYS = {"seed", "engine", "fault"}
_FAULT_KEYS = {"name", "spec", "trials"}
_STATUS = {DivergenceKind.FINAL_STATUS, DivergenceKind.STEP_STATUS}
_DATA = {DivergenceKind.PARAMS, DivergenceKind.OUTPUTS, DivergenceKind.CONFIG}


class CampaignError(Exception):
    """A campaign file is missing, not TOML, or does not follow the format; the message says where."""


@dataclass(frozen=True, slots=True)
class FaultEntry:
    name: str
    spec: str
    trials: int = 1

    @property
    def kind(self) -> str:
        """The fault kind: the spec's first word (``crash``, ``drop``, ``store-fail``, ``stall-worker``)."""
        return self.spec.split(":", 1)[0]


@dataclass(frozen=True, slots=True)
class Campaign:
    faults: tuple[FaultEntry, ...]
    seed: int = 0
    engine: Mapping[str, Any] = field(default_factory=dict)
    sha256: str = ""  # of the file's bytes: part of the run's identity

    @property
    def trials_per_trace(self) -> int:
        return sum(f.trials for f in self.faults)


def load_campaign(path: str | Path) -> Campaign:
    """Read and check a campaign file; :class:`CampaignError` names the file, the entry and the fix."""
    where = str(path)
    try:
        raw = Path(path).read_bytes()
    except OSError as exc:
        raise CampaignError(
            f"{where}: cannot read the fault campaign ({exc.strerror or exc}); "
            "give the path of a campaign TOML file (see docs/FAULTS.md)"
        ) from exc
    try:
        data = tomllib.loads(raw.decode("utf-8"))
    except (UnicodeDecodeError, tomllib.TOMLDecodeError) as exc:
        raise CampaignError(f"{where}: not a TOML file: {exc}") from exc
    _unknown(data, _KEYS, where, "top-level key")
    seed = data.get("seed", 0)
    if not isinstance(seed, int) or isinstance(seed, bool):
        raise CampaignError(f"{where}: seed must be an integer, got {seed!r}")
    engine = data.get("engine", {})
    if not isinstance(engine, dict):
        raise CampaignError(
            f"{where}: engine must be a table of factory options, e.g. engine = {{ nodes = 2 }}"
        )
    items = data.get("fault")
    if not isinstance(items, list) or not items:
        raise CampaignError(
            f"{where}: no faults; add [[fault]] tables with a name and a spec, e.g.\n"
            '  [[fault]]\n  name = "node crash"\n  spec = "crash:*@{during}"'
        )
    faults: list[FaultEntry] = []
    names: set[str] = set()
    for i, item in enumerate(items, start=1):
        at = f"{where}: [[fault]] #{i}"
        if not isinstance(item, dict):
            raise CampaignError(f"{at} is not a table")
        _unknown(item, _FAULT_KEYS, at, "key")
        spec, trials = item.get("spec"), item.get("trials", 1)
        if not isinstance(spec, str) or not spec.strip():
            raise CampaignError(
                f"{at}: spec is missing; it is one of the candidate engine's fault specs with "
                'placeholders, e.g. spec = "crash:*@{during}"'
            )
        name = item.get("name", spec)
        if not isinstance(name, str) or not name.strip():
            raise CampaignError(f"{at}: name must be a non-empty string")
        if name in names:
            raise CampaignError(f"{at}: duplicate name {name!r}; names key the trials and must be unique")
        names.add(name)
        if not isinstance(trials, int) or isinstance(trials, bool) or not 1 <= trials <= 1000:
            raise CampaignError(f"{at} ({name!r}): trials must be an integer from 1 to 1000, got {trials!r}")
        for found in _PLACEHOLDER.findall(spec):
            if found != "during" and not re.fullmatch(r"occurrence:[A-Za-z_][\w.]*", found):
                raise CampaignError(
                    f"{at} ({name!r}): unknown placeholder {{{found}}} in {spec!r}; use {{during}} "
                    "or {occurrence:COUNTER} (a counter of the engine's record)"
                )
        faults.append(FaultEntry(name=name, spec=spec.strip(), trials=trials))
    return Campaign(
        faults=tuple(faults), seed=seed, engine=dict(engine), sha256=hashlib.sha256(raw).hexdigest()
    )


def _unknown(table: Mapping[str, Any], known: set[str], where: str, what: str) -> None:
    for key in table:
        if key not in known:
            close = difflib.get_close_matches(key, sorted(known), n=1)
            hint = f"; did you mean {close[0]!r}?" if close else f"; known: {', '.join(sorted(known))}"
            raise CampaignError(f"{where}: unknown {what} {key!r}{hint}")


def check_campaign(campaign: Campaign, candidate: EngineSpec) -> None:
    """Build the engine under faults once per entry, with the spec placed at a sample point, so a spec the
    engine does not understand is refused before anything runs (``CampaignError`` naming the entry)."""
    for entry in campaign.faults:
        sample = _PLACEHOLDER.sub(lambda m: "1.0" if m.group(1) == "during" else "1", entry.spec)
        kwargs = {**candidate.kwargs, **campaign.engine}
        kwargs["faults"] = (*tuple(kwargs.get("faults", ())), sample)
        try:
            build_engine(EngineSpec(candidate.name, candidate.target, kwargs))
        except EngineSpecError as exc:
            raise CampaignError(
                f"fault {entry.name!r} ({entry.spec!r}) is not accepted by the candidate engine "
                f"{candidate.name!r}: {exc} (`shadow replay --engine {candidate.name} --fault help` "
                "prints its fault syntax)"
            ) from exc


def _rng(campaign: Campaign, trace_id: str, entry: FaultEntry, trial: int) -> random.Random:
    return random.Random(f"campaign:{campaign.seed}:{trace_id}:{entry.name}:{trial}")


def place(entry: FaultEntry, reference: ExecutionRecord, rng: random.Random) -> tuple[str | None, str]:
    """The concrete spec of one trial, or (None, why) when the reference record gives nowhere to place it."""
    triggers = [r.triggered_at for r in reference.runs if r.triggered_at is not None]
    ends = [r.ended_at for r in reference.runs if r.ended_at is not None]
    why = ""

    def fill(match: re.Match[str]) -> str:
        nonlocal why
        word = match.group(1)
        if word == "during":
            if not triggers or not ends or max(ends) <= min(triggers):
                why = "{during}: no run of the reference record ran for any time"
                return match.group(0)
            return f"{rng.uniform(0.0, max(ends) - min(triggers)):.3f}"
        counter = word.split(":", 1)[1]
        total = int(reference.counters.get(counter, 0))
        if total < 1:
            why = (
                f"{{occurrence:{counter}}}: the reference record counts 0"
                if counter in reference.counters
                else f"{{occurrence:{counter}}}: the engine's record has no counter {counter!r}"
            )
            return match.group(0)
        return str(rng.randint(1, total))

    spec = _PLACEHOLDER.sub(fill, entry.spec)
    return (None, why) if why else (spec, "")


def _invocations(record: ExecutionRecord) -> float:
    """Runtime invocations beyond the attempts the runtime ran (a job started twice)."""
    counters = record.counters
    started = counters.get("runtime_starts", counters.get("jobs_launched"))
    if started is None:
        return 0.0
    ran = sum(
        1 for run in record.runs for a in run.attempts if a.outcome is not None or a.started_at is not None
    )
    return max(0.0, started - ran)


def classify(
    trace: Trace,
    reference: ExecutionRecord,
    faulted: ExecutionRecord,
    order: CausalOrder | None = None,
    cache: NormalForms | None = None,
) -> dict[str, Any]:
    """What the fault changed: the outcome (:data:`OUTCOMES`), the divergence kinds, attempts lost and
    duplicated, runs stuck, and the latency added (max over runs of the end time's delay, seconds)."""
    found = compare_records(trace, reference, faulted, order, cache)
    kinds = {d.kind for d in found}
    keys = {(run.run_id, a.path, a.attempt) for run in reference.runs for a in run.attempts}
    mine = {(run.run_id, a.path, a.attempt) for run in faulted.runs for a in run.attempts}
    lost, extra = len(keys - mine), len(mine - keys)
    duplicated = extra + int(max(0.0, _invocations(faulted) - _invocations(reference)))
    was_stuck = {r.run_id for r in reference.runs if r.stuck}
    stuck = sum(1 for r in faulted.runs if r.stuck and r.run_id not in was_stuck)
    ends = {r.run_id: r.ended_at for r in reference.runs if r.ended_at is not None}
    delays = [
        r.ended_at - ends[r.run_id] for r in faulted.runs if r.ended_at is not None and r.run_id in ends
    ]
    if faulted.error:
        outcome = "engine_error"
    elif stuck or DivergenceKind.STUCK_RUN in kinds:
        outcome = "stuck"
    elif lost or DivergenceKind.MISSING_STEP in kinds:
        outcome = "lost_attempt"
    elif duplicated or kinds & {DivergenceKind.EXTRA_STEP, DivergenceKind.UNRECORDED_ATTEMPT}:
        outcome = "duplicated_attempt"
    elif kinds & _STATUS or DivergenceKind.ATTEMPT_COUNT in kinds:
        outcome = "wrong_status"
    elif kinds & _DATA or found:
        outcome = "changed_data"
    else:
        outcome = "equal"
    first = next((d for d in found if d.is_first), found[0] if found else None)
    detail = f"{first.kind.value} at {first.path or 'run'} {first.run_id}: {first.detail}" if first else ""
    return {
        "outcome": outcome,
        "divergence_kinds": sorted(k.value for k in kinds),
        "lost": lost,
        "duplicated": duplicated,
        "stuck": stuck,
        "latency_added": max(delays) if delays else None,
        "detail": detail[:500],
    }


def run_trials(
    trace: Trace,
    campaign: Campaign,
    reference: ExecutionRecord | None,
    replay: Any,
    baseline: ExecutionRecord | None,
) -> list[FaultTrialRow]:
    """Every trial of ``campaign`` on ``trace``. ``replay(faults) -> (record | None, error | None)`` runs the
    engine under faults; ``reference`` is its no-fault record (None: it failed, and no trial can be judged)."""
    rows: list[FaultTrialRow] = []
    order = CausalOrder(trace)
    cache: NormalForms = {}
    for entry in campaign.faults:
        for trial in range(1, entry.trials + 1):
            began = time.perf_counter()
            row = FaultTrialRow(
                trace_id=trace.trace_id,
                fault=entry.name,
                trial=trial,
                kind=entry.kind,
                spec=None,
                fired=False,
                outcome="not_placed",
                divergence_kinds=[],
                lost=0,
                duplicated=0,
                stuck=0,
                latency_added=None,
                baseline_divergences=None,
                detail="",
                wall_seconds=0.0,
            )
            if reference is None:
                row["detail"] = (
                    "the engine's no-fault replay of this trace failed: nothing to place a fault in"
                )
                rows.append(row)
                continue
            spec, why = place(entry, reference, _rng(campaign, trace.trace_id, entry, trial))
            if spec is None:
                row["detail"] = why
                rows.append(row)
                continue
            row["spec"] = spec
            record, error = replay((spec,))
            if record is None:
                row["outcome"], row["fired"], row["detail"] = (
                    "engine_error",
                    True,
                    (error or "no record")[:500],
                )
            else:
                row["fired"] = record.counters.get("faults_fired", 0.0) > 0
                row.update(classify(trace, reference, record, order, cache))  # type: ignore[typeddict-item]
                if baseline is not None:
                    row["baseline_divergences"] = len(compare_records(trace, baseline, record, order, cache))
            row["wall_seconds"] = time.perf_counter() - began
            rows.append(row)
    return rows
