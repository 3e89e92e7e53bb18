"""Fidelity: how close a replay comes to what production itself observed (``Run.observed``).

The comparison baseline vs candidate says whether the two engines agree; it cannot say whether the
legacy *model* is a faithful baseline for a corpus. Where the trace carries production's observations
(an importer or ``shadow capture`` filled ``Run.observed``), each engine role's replay is compared with
them here:

- **status agreement**: the run's final status and each observed step's final status, compared by
  *class* (:func:`status_class`: succeeded, failed, stopped, skipped, running, unknown), since every
  source names statuses its own way (Argo ``Succeeded``/``Error``, Nextflow ``COMPLETED``/``FAILED``,
  Maestro ``USER_FAILED``...). An observed step the replay never ran disagrees (``steps_missing``); so
  does a leaf step the replay ran but production never observed, when production observed steps at
  all (``steps_extra``). An observation still running (the trace was captured before the run or step
  ended: Argo ``Running``, Alibaba ``Waiting``) says nothing about the final status and is not compared.
- **makespan ratio**: replayed makespan (run ``ended_at - started_at``) over the observed one
  (``end_time - start_time``), median over the trace's runs that have both.
- **start-delay ratio**: per observed step with a start time, the replayed delay from the run's start
  to the step's first attempt start over the observed delay (observed delays of 0 are skipped: no
  ratio), median over the trace.

One :class:`~results.rows.FidelityRow` per (trace, engine role) for the roles ``baseline`` and
``candidate``, only for traces with at least one observed run and only for a role that produced a
record (an engine error is the trace's ``error``, not a fidelity figure).
"""

from __future__ import annotations

import json
import statistics
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from corpora.model import ObservedRun, Trace
from engines.api import AttemptRecord, ExecutionRecord, RunExecution
from results.rows import FidelityRow

__all__ = [
    "FIDELITY_ROLES",
    "MAX_DISAGREEMENTS",
    "STATUS_CLASSES",
    "Disagreement",
    "fidelity_row",
    "status_class",
]

FIDELITY_ROLES = ("baseline", "candidate")
MAX_DISAGREEMENTS = 20
"""Disagreements listed per row (``fidelity.disagreements``); the counts cover all of them."""

_CLASS_OF: dict[str, str] = {}
for _cls, _names in {
    "succeeded": ("SUCCEEDED", "COMPLETED", "CACHED", "TERMINATED"),
    "failed": (
        "FAILED",
        "ERROR",
        "USER_FAILED",
        "PLATFORM_FAILED",
        "TIMEOUT_FAILED",
        "FATALLY_FAILED",
        "INTERNALLY_FAILED",
        "COMPLETED_WITH_ERROR",
        "TIMED_OUT",
        "TIMEOUT",
    ),
    "stopped": ("STOPPED", "ABORTED", "CANCELLED", "CANCELED", "INTERRUPTED", "KILLED"),
    "skipped": ("SKIPPED", "OMITTED", "UNSATISFIED", "DISABLED"),
    "running": (
        "RUNNING",
        "PENDING",
        "WAITING",
        "READY",
        "CREATED",
        "INITIALIZED",
        "IN_PROGRESS",
        "PAUSED",
        "STARTING",
        "FINISHING",
        "NOT_CREATED",
        "WAITING_FOR_SIGNALS",
        "EVALUATING_PARAMS",
        "WAITING_FOR_PERMITS",
    ),
}.items():
    for _name in _names:
        _CLASS_OF[_name] = _cls

STATUS_CLASSES = ("succeeded", "failed", "stopped", "skipped", "running", "unknown")


def status_class(status: str | None) -> str:
    """The coarse class of a status from any source (case-insensitive): one of :data:`STATUS_CLASSES`.

    Maestro's ``COMPLETED_WITH_ERROR`` (a failure the failure mode ignored) counts as failed: the step's
    work failed, as Argo and Nextflow record it. Alibaba's ``Terminated`` is its success."""
    if not status:
        return "unknown"
    return _CLASS_OF.get(status.strip().upper().replace(" ", "_"), "unknown")


@dataclass(frozen=True, slots=True)
class Disagreement:
    """One status production and the replay disagree on (``path`` '' for the run itself)."""

    run_id: str
    path: str
    observed: str | None  # None: production never observed it (an extra step)
    replayed: str | None  # None: the replay never ran it (a missing step)

    def as_json(self) -> dict[str, str | None]:
        return {
            "run_id": self.run_id,
            "path": self.path,
            "observed": self.observed,
            "replayed": self.replayed,
        }


_CONTAINERS = ("FOREACH", "SUBWORKFLOW")


def _last_attempts(run: RunExecution) -> dict[str, AttemptRecord]:
    last: dict[str, AttemptRecord] = {}
    for att in run.attempts:
        seen = last.get(att.path)
        if seen is None or att.attempt >= seen.attempt:
            last[att.path] = att
    return last


def _first_starts(run: RunExecution) -> dict[str, float]:
    starts: dict[str, float] = {}
    for att in run.attempts:
        if att.started_at is not None and (att.path not in starts or att.started_at < starts[att.path]):
            starts[att.path] = att.started_at
    return starts


def _median(values: Sequence[float]) -> float | None:
    return float(statistics.median(values)) if values else None


@dataclass(slots=True)
class _Tally:
    runs_observed: int = 0
    runs_agree: int = 0
    steps_observed: int = 0
    steps_agree: int = 0
    steps_missing: int = 0
    steps_extra: int = 0
    attempts_agree: int = 0


def _compare_run(
    observed: ObservedRun,
    run: RunExecution | None,
    run_id: str,
    tally: _Tally,
    found: list[tuple[float, str, Disagreement]],
    makespans: list[tuple[float, float]],
    delays: list[float],
) -> None:
    replayed_status = run.status if run is not None else None
    if status_class(observed.status) == "running":
        pass  # captured before the run ended: production's final status is unknown, nothing to compare
    elif run is not None and status_class(observed.status) == status_class(run.status):
        tally.runs_observed += 1
        tally.runs_agree += 1
    else:
        tally.runs_observed += 1
        # Last in its run: a run status that differs follows from the step statuses that differ.
        found.append((float("inf"), "\uffff", Disagreement(run_id, "", observed.status, replayed_status)))
    if run is None:
        ended = sum(1 for step in observed.steps.values() if status_class(step.status) != "running")
        tally.steps_observed += ended
        tally.steps_missing += ended
        return
    last = _last_attempts(run)
    starts = _first_starts(run)
    for path, step in observed.steps.items():
        if status_class(step.status) == "running":
            continue  # still running when production was captured
        tally.steps_observed += 1
        when = step.start_time if step.start_time is not None else float("inf")
        att = last.get(path)
        if att is None:
            tally.steps_missing += 1
            found.append((when, path, Disagreement(run_id, path, step.status, None)))
            continue
        if att.attempt == step.attempts:
            tally.attempts_agree += 1
        if status_class(step.status) == status_class(att.status):
            tally.steps_agree += 1
        else:
            found.append((when, path, Disagreement(run_id, path, step.status, att.status)))
        if (
            step.start_time is not None
            and observed.start_time is not None
            and run.started_at is not None
            and path in starts
            and step.start_time - observed.start_time > 0
        ):
            delays.append((starts[path] - run.started_at) / (step.start_time - observed.start_time))
    if observed.steps:
        for path, att in last.items():
            if (
                path in observed.steps
                or att.step_type in _CONTAINERS
                or status_class(att.status) == "skipped"
            ):
                continue
            tally.steps_extra += 1
            found.append((starts.get(path, float("inf")), path, Disagreement(run_id, path, None, att.status)))
    if (
        observed.start_time is not None
        and observed.end_time is not None
        and run.started_at is not None
        and run.ended_at is not None
        and observed.end_time > observed.start_time
    ):
        makespans.append((run.ended_at - run.started_at, observed.end_time - observed.start_time))


def fidelity_row(trace: Trace, role: str, record: ExecutionRecord) -> FidelityRow | None:
    """The replay of ``trace`` by ``role`` compared with production's observations; None when the trace
    observed no run."""
    runs: Mapping[str, RunExecution] = {r.run_id: r for r in record.runs}
    tally = _Tally()
    found: list[tuple[float, str, Disagreement]] = []
    makespans: list[tuple[float, float]] = []
    delays: list[float] = []
    first_observed: tuple[str, str | None] | None = None
    for run in trace.runs:
        if run.observed is None:
            continue
        replayed = runs.get(run.run_id)
        if first_observed is None:
            first_observed = (run.observed.status, replayed.status if replayed is not None else None)
        _compare_run(run.observed, replayed, run.run_id, tally, found, makespans, delays)
    if first_observed is None:
        return None
    checked = tally.runs_observed + tally.steps_observed + tally.steps_extra
    found.sort(key=lambda item: (item[2].run_id, item[0], item[1]))
    ratios = [replayed / observed for replayed, observed in makespans]
    return FidelityRow(
        trace_id=trace.trace_id,
        engine=role,
        runs_observed=tally.runs_observed,
        runs_agree=tally.runs_agree,
        steps_observed=tally.steps_observed,
        steps_agree=tally.steps_agree,
        steps_missing=tally.steps_missing,
        steps_extra=tally.steps_extra,
        attempts_agree=tally.attempts_agree,
        status_agreement=(tally.runs_agree + tally.steps_agree) / checked if checked else None,
        observed_status=first_observed[0],
        replayed_status=first_observed[1],
        observed_makespan=_median([o for _, o in makespans]),
        replayed_makespan=_median([r for r, _ in makespans]),
        makespan_ratio=_median(ratios),
        start_delay_ratio=_median(delays),
        start_delays=len(delays),
        first_disagreement=found[0][2].path if found else None,
        disagreements=json.dumps(
            [d.as_json() for _, _, d in found[:MAX_DISAGREEMENTS]], sort_keys=True, separators=(",", ":")
        ),
    )
