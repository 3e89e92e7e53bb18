"""The one protocol through which anything runs a trace on an engine, and the record it returns.

The shadow harness reaches every engine only through :class:`Engine`: ours (``legacy``, ``actor``)
and any adapter a team writes to its own orchestrator (``shadow run --candidate module:factory``,
where ``factory()`` returns an :class:`Engine`).

An engine replays one :class:`~corpora.model.Trace` — every run in it, under the workflow's run
strategy — with side effects virtualized (each step attempt asks the trace what it did), and returns
a canonical :class:`ExecutionRecord`. Two records of the same trace are comparable field by field:
statuses, attempts, params handed in and outputs must agree between engines; timestamps are the
engines' own and are compared only as latency.

Concurrency: ``replay`` is synchronous and self-contained (it owns its loop and its store); the
harness runs engines in worker processes, never two replays on one engine object at once.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any, Protocol, runtime_checkable

from corpora.model import JsonValue, Trace

__all__ = [
    "DEFAULT_TIME_LIMIT",
    "AttemptRecord",
    "CapturesTraces",
    "CutPoint",
    "DescribesFaults",
    "Engine",
    "EngineError",
    "EngineFactory",
    "ExecutionRecord",
    "FollowsTraces",
    "Handoff",
    "HandsOff",
    "ReplayOptions",
    "RunExecution",
    "TraceFeed",
]


class EngineError(Exception):
    """An engine could not run a trace (bad definition, store failure, deadlock, bad option).

    ``retryable`` says whether running the same thing again may succeed (a locked database) or not
    (a definition the engine cannot execute)."""

    def __init__(self, message: str, *, step: str | None = None, retryable: bool = False) -> None:
        self.step = step
        self.retryable = retryable
        super().__init__(f"step {step!r}: {message}" if step else message)


DEFAULT_TIME_LIMIT = 30 * 24 * 3600.0
"""Virtual seconds after a run's trigger at which an unfinished run is reported stuck (30 days), unless a
replay says otherwise (``ReplayOptions.time_limit``, ``shadow run/replay --time-limit``)."""


@dataclass(frozen=True, slots=True)
class ReplayOptions:
    """How to replay a trace.

    ``seed`` drives every random choice of the engine (store latency draws, poll jitter); a second
    replica with another ``seed`` measures noise (A/A). ``time_limit`` is the virtual seconds after
    the last trigger past which a run that has not ended is reported ``stuck`` instead of hanging.
    ``faults`` are engine-specific fault specs (see ``shadow replay --help``).

    ``exact`` asks for the tick-by-tick simulation: every poll, heartbeat and reconciliation is run
    one at a time on the virtual clock. By default (``exact=False``) an engine may instead jump the
    clock over periods where nothing can change state and *account* for the periodic upkeep it
    skipped (its counters, modeled round trips and their latency); the records of both modes are
    identical -- statuses, attempts, params, outputs, every timestamp and every counter -- and a
    test proves it on whole corpora (``tests/engines/test_fast_exact.py``). Engines that have no
    fast path ignore the flag."""

    seed: int = 0
    time_limit: float = DEFAULT_TIME_LIMIT
    faults: tuple[str, ...] = ()
    exact: bool = False


@dataclass(frozen=True, slots=True)
class AttemptRecord:
    """One attempt of one step (``path`` as in the trace), as the engine executed it.

    ``status`` is the attempt's final step status. ``outcome`` is the recorded outcome the runtime
    replayed (None when the runtime never ran, e.g. UNSATISFIED or STOPPED before starting);
    ``unrecorded`` is True when the engine ran an attempt the trace never recorded. ``params`` are the
    evaluated params handed to the runtime; ``config`` the rest of the configuration-parity set
    (parsed retry policy, timeout seconds, failure mode, tags, successor condition results).
    Timestamps are virtual seconds: ``ready_at`` when the attempt became eligible to start (DAG
    released it, or its retry backoff expired), ``started_at`` when it entered STARTING."""

    path: str
    step_id: str
    step_type: str
    attempt: int
    status: str
    outcome: str | None = None
    unrecorded: bool = False
    params: Mapping[str, JsonValue] = field(default_factory=dict)
    outputs: Mapping[str, JsonValue] = field(default_factory=dict)
    config: Mapping[str, JsonValue] = field(default_factory=dict)
    created_at: float | None = None
    ready_at: float | None = None
    started_at: float | None = None
    ended_at: float | None = None


@dataclass(frozen=True, slots=True)
class RunExecution:
    """One run of the workflow: its final status and every attempt of every step, children included.

    ``stuck`` is True when the run had not reached a terminal status within the time limit; its
    ``status`` is then the last status seen."""

    run_id: str
    status: str
    stuck: bool = False
    workflow_params: Mapping[str, JsonValue] = field(default_factory=dict)
    triggered_at: float | None = None
    started_at: float | None = None
    ended_at: float | None = None
    attempts: tuple[AttemptRecord, ...] = ()


@dataclass(frozen=True, slots=True)
class ExecutionRecord:
    """The canonical result of replaying one trace on one engine.

    ``counters`` are engine statistics (``store_round_trips``, ``polls``, ``messages``, ...), used
    for benchmarks, never compared as outcomes."""

    trace_id: str
    engine: str
    engine_version: str
    seed: int
    runs: tuple[RunExecution, ...]
    counters: Mapping[str, float] = field(default_factory=dict)
    error: str | None = None

    def to_dict(self) -> dict[str, Any]:
        from corpora.codec import encode

        out: dict[str, Any] = encode(self)
        return out


@runtime_checkable
class Engine(Protocol):
    """Anything that can replay a trace and return a canonical record."""

    name: str
    version: str

    def replay(self, trace: Trace, options: ReplayOptions) -> ExecutionRecord: ...


EngineFactory = Callable[[], Engine]


@runtime_checkable
class DescribesFaults(Protocol):
    """An engine that takes fault specs (``faults=`` of its factory, ``ReplayOptions.faults``) says their
    syntax in one line, for ``shadow replay --fault help`` and error messages."""

    fault_syntax: str


@runtime_checkable
class CapturesTraces(Protocol):
    """An engine whose production store can be exported as traces (``shadow capture --engine``): for the
    legacy engine, its SQLite store; for an adapter, whatever its orchestrator keeps."""

    def capture(self, store: str, *, include_unfinished: bool = False) -> Iterator[Trace]: ...


class TraceFeed(Protocol):
    """An open production store that yields runs as they finish (``shadow capture --follow``).

    ``poll(cursor)`` yields ``(trace, cursor)`` pairs, oldest first, for what finished since ``cursor``
    (None: from the start); the caller persists each cursor once its trace is written, and hands the last
    one back to the next poll, in this process or after a restart. Cursors are small JSON objects."""

    def poll(
        self, cursor: Mapping[str, JsonValue] | None
    ) -> Iterator[tuple[Trace, dict[str, JsonValue]]]: ...

    def close(self) -> None: ...


@runtime_checkable
class FollowsTraces(Protocol):
    """An engine whose production store can be followed while it runs (``shadow capture --follow``)."""

    def follow(self, store: str, *, since: float | None = None) -> TraceFeed: ...


# ---- in-flight hand-off: a run half done on one engine finishes on another (docs/HANDOFF.md) ----------


@dataclass(frozen=True, slots=True)
class CutPoint:
    """When to stop the source engine of a hand-off, relative to a trace's first trigger.

    ``kind``: ``seconds`` (``value`` virtual seconds after the first trigger), ``fraction`` (of the
    source-only replay's makespan: first trigger to last run end), ``step`` (just after the first
    attempt of step path ``value`` started on the source) or ``random`` (a fraction drawn from the
    seed, the trace id and ``value``, the index of the draw). Written as ``90s`` / ``90``, ``50%``,
    ``step:PATH``, ``random`` (see :meth:`parse`)."""

    kind: str
    value: float | str

    KINDS = ("seconds", "fraction", "step", "random")

    @classmethod
    def parse(cls, spec: str, *, index: int = 0) -> CutPoint:
        """``90s`` or ``90`` (seconds), ``50%`` (fraction of the makespan), ``step:PATH``, ``random``
        (``index`` tells draws of one trace apart). Raises ValueError naming the spec and the forms."""
        text = spec.strip()
        forms = "use SECONDS (e.g. 90 or 90s), PERCENT (e.g. 50%), step:PATH (e.g. step:extract) or random"
        if text == "random":
            return cls("random", float(index))
        if text.startswith("step:"):
            path = text[5:].strip()
            if not path:
                raise ValueError(f"cut point {spec!r} names no step; {forms}")
            return cls("step", path)
        try:
            if text.endswith("%"):
                pct = float(text[:-1])
                if not 0.0 <= pct <= 100.0:
                    raise ValueError(text)
                return cls("fraction", pct / 100.0)
            seconds = float(text[:-1] if text.endswith("s") else text)
        except ValueError:
            raise ValueError(f"cut point {spec!r} is not understood; {forms}") from None
        if not seconds >= 0.0 or seconds == float("inf"):
            raise ValueError(f"cut point {spec!r} must be a finite number of seconds >= 0; {forms}")
        return cls("seconds", seconds)

    @property
    def spec(self) -> str:
        """The canonical text of the cut point (what :meth:`parse` reads back)."""
        if self.kind == "seconds":
            return f"{float(self.value):g}s"
        if self.kind == "fraction":
            return f"{float(self.value) * 100:g}%"
        if self.kind == "step":
            return f"step:{self.value}"
        return "random"

    def resolve(self, source: ExecutionRecord, start: float, *, seed: int = 0) -> float | None:
        """Virtual seconds after the first trigger (``start``) at which to cut, from the source-only
        record of the same trace and seed; None when the cut point is never reached (the step never
        started on the source, or the source record has no end)."""
        if self.kind == "seconds":
            return float(self.value)
        if self.kind == "step":
            started = [
                a.started_at for r in source.runs for a in r.attempts
                if a.path == self.value and a.started_at is not None
            ]  # fmt: skip
            # just after it started: the source made the start durable, its job runs
            return min(started) - start + 1e-3 if started else None
        ends = [r.ended_at for r in source.runs if r.ended_at is not None]
        if not ends:
            return None
        makespan = max(ends) - start
        if self.kind == "fraction":
            return makespan * float(self.value)
        import random

        rng = random.Random(f"handoff-cut:{seed}:{source.trace_id}:{int(float(self.value))}")
        return makespan * rng.uniform(0.05, 0.95)


@dataclass(frozen=True, slots=True)
class Handoff:
    """One hand-off replay: the trace run on the source engine up to ``cut_at`` (virtual seconds after
    the first trigger), the source stopped there with its store as it was, and the target engine
    adopting the runs from that store and finishing them.

    ``record`` is the whole trace as one canonical record (attempts before the cut are the source's,
    after it the target's). What the target found at the cut: ``runs_live`` (runs in progress it
    adopted), ``runs_queued`` (runs waiting behind a run strategy), ``runs_ended`` (already terminal),
    ``runs_untriggered`` (whose trigger was still to come), ``attempts_running`` (RUNNING attempts
    whose runtime was still alive: attached, not restarted), ``attempts_lost`` (RUNNING attempts the
    runtime did not know, started by the target), ``attempts_finished_unseen`` (runtimes that had
    finished but the source had not noticed yet), ``retries_pending`` (steps in a retry backoff).
    ``duplicate_starts`` counts attempts whose runtime both engines started (must be 0)."""

    record: ExecutionRecord
    cut_at: float
    source: str
    target: str
    runs_live: int = 0
    runs_queued: int = 0
    runs_ended: int = 0
    runs_untriggered: int = 0
    attempts_running: int = 0
    attempts_lost: int = 0
    attempts_finished_unseen: int = 0
    retries_pending: int = 0
    duplicate_starts: int = 0


@runtime_checkable
class HandsOff(Protocol):
    """An engine that can adopt runs in flight on another engine (the target of a cut-over).

    ``handoff`` replays ``trace`` on the source engine named ``source`` until ``cut_at`` virtual
    seconds after the first trigger, stops it, adopts the runs from its store through the target's
    own take-over path and finishes them. ``handoff_sources`` names the engines it can adopt from."""

    handoff_sources: tuple[str, ...]

    def handoff(
        self, trace: Trace, options: ReplayOptions, cut_at: float, *, source: str = ...
    ) -> Handoff: ...
