"""The immutable run state the core functions take and return, and its JSON form.

A :class:`RunState` is everything about one run of a workflow *and its children* (foreach
iterations, subworkflow runs): every attempt of every step path, and one :class:`Scope` per
workflow instance (the root run has prefix ``""``; iteration 3 of foreach ``fan`` has ``fan[3]/``;
the child of subworkflow step ``call`` has ``call/``). The legacy engine stores it as JSON in SQL and
reloads it at every poll, so :func:`run_to_json` / :func:`run_from_json` are plain, fast and lossless.

Concurrency: values are immutable; whoever holds a RunState owns it. Functions return new values.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from dataclasses import fields as dataclass_fields
from typing import Any, TypeVar

from engines.core.cowmap import COW_THRESHOLD, as_dict, with_entry, without_entry
from engines.core.expr import Value
from engines.core.retry import DEFAULT_RETRY_POLICY, ParsedRetryPolicy, RetryCounters
from engines.core.statuses import StepStatus, WorkflowStatus

__all__ = [
    "Attempt",
    "RunState",
    "Scope",
    "StopKind",
    "attempt_from_json",
    "attempt_to_json",
    "evolve",
    "frozen_constructor",
    "new_attempt",
    "run_from_json",
    "run_to_json",
    "scope_counts",
    "scope_from_json",
    "scope_of",
    "scope_to_json",
]

StopKind = str
"""A pending termination for every incomplete step of a scope: ``"STOP"`` (FAIL_IMMEDIATELY, a
parent being stopped, LAST_ONLY) or ``"TIME_OUT"`` (workflow timeout)."""


@dataclass(frozen=True)  # no __slots__: a copy with changes is one dict copy (see evolve)
class Attempt:
    """One attempt (1-based) of the step at ``path``, with Maestro's per-status timestamps."""

    path: str
    step_id: str
    attempt: int
    status: StepStatus
    created_at: float
    ready_at: float
    policy: ParsedRetryPolicy = DEFAULT_RETRY_POLICY
    counters: RetryCounters = field(default_factory=RetryCounters)
    started_at: float | None = None
    ended_at: float | None = None
    timeout_s: float | None = None
    params: Mapping[str, Value] | None = None
    outputs: Mapping[str, Value] = field(default_factory=dict)
    outcome: str | None = None
    unrecorded: bool = False
    satisfied: bool | None = None
    conditions: Mapping[str, bool] | None = None
    retry_at: float | None = None
    note: str | None = None
    children: int = 0  # foreach: iterations launched so far; subworkflow: 1 once the child started
    child_total: int | None = None  # foreach: number of iterations
    terminating: str | None = None  # foreach/subworkflow: status requested while children are torn down

    def with_status(self, status: StepStatus, now: float, **changes: Any) -> Attempt:
        if status.is_terminal and self.ended_at is None:
            changes.setdefault("ended_at", now)
        changes["status"] = status
        return evolve(self, changes)


@dataclass(frozen=True)  # no __slots__: a copy with changes is one dict copy (see evolve)
class Scope:
    """One workflow instance inside a run: the root, a foreach iteration or a subworkflow child."""

    prefix: str
    workflow: str  # compiled workflow key
    params: Mapping[str, Value]
    instance_id: int
    parent_step: str | None
    status: WorkflowStatus
    started_at: float
    timeout_s: float
    ended_at: float | None = None
    stopping: StopKind | None = None
    waiting: tuple[str, ...] = ()  # step ids with no attempt yet, in topological order
    scanned: int = -1  # ``completed`` when ``waiting`` was last checked for readiness
    completed: int = 0  # how many times a latest attempt of a step of this scope became complete
    failed_children: tuple[str, ...] = ()  # prefixes of this scope's child scopes that are FAILED now


@dataclass(frozen=True)  # no __slots__: a copy with changes is one dict copy (see evolve)
class RunState:
    """All state of one run. ``attempts`` maps a step path to its attempts in order."""

    trace_id: str
    run_id: str
    run_index: int
    status: WorkflowStatus
    triggered_at: float
    scopes: Mapping[str, Scope]
    attempts: Mapping[str, tuple[Attempt, ...]]
    started_at: float | None = None
    ended_at: float | None = None
    stuck: bool = False
    # Indexes that keep decide() proportional to what is going on rather than to the DAG size:
    live: Mapping[str, int] = field(default_factory=dict)  # path -> attempt, latest attempt not terminal
    backoff: Mapping[str, float] = field(default_factory=dict)  # path -> retry due time (retryable latest)
    open_scopes: tuple[str, ...] = ()  # prefixes of scopes not terminal, in creation order
    completions: int = 0  # how many times a latest attempt became complete (readiness can change)

    @property
    def unfinished(self) -> bool:
        """Started and not done: the run is not terminal, or it is but a child it launched without waiting
        (an async subworkflow, ``sync: false``) is still open. At the end of a replay such a run is
        reported ``stuck``."""
        return self.started_at is not None and (not self.status.is_terminal or bool(self.open_scopes))

    def latest(self, path: str) -> Attempt | None:
        atts = self.attempts.get(path)
        return atts[-1] if atts else None

    def with_attempt(self, a: Attempt) -> RunState:
        """Replace the latest attempt of ``a.path`` (or append when ``a`` is a new attempt), keeping
        the ``live`` / ``backoff`` indexes right."""
        path = a.path
        old = self.attempts.get(path)
        before: Attempt | None = None
        if not old:
            atts: tuple[Attempt, ...] = (a,)
        elif old[-1].attempt == a.attempt:
            before = old[-1]
            atts = (a,) if len(old) == 1 else (*old[:-1], a)
        else:
            atts = (*old, a)
        attempts = self.attempts
        if type(attempts) is dict and len(attempts) < COW_THRESHOLD:  # with_entry(), inlined
            attempts = attempts.copy()
            attempts[path] = atts
        else:
            attempts = with_entry(attempts, path, atts)
        # evolve(self, changes), inlined (once per transition): the index changes are written straight
        # into the copy of the fields (_index_changes reads ``changes.get("scopes")``, which is then
        # this state's own scopes unless it replaced them itself)
        d = self.__dict__.copy()
        d["attempts"] = attempts
        self._index_changes(path, before, a, d)
        new: RunState = _new(RunState)
        _set_attr(new, "__dict__", d)
        return new

    def with_scope(self, s: Scope) -> RunState:
        """Replace (or add) a scope; a scope turning terminal leaves ``open_scopes``."""
        scopes = dict(self.scopes)  # a plain dict: foreach code reads every iteration's scope by key
        scopes[s.prefix] = s
        if s.parent_step is not None:
            # the parent scope lists its FAILED children, so a foreach learns "an iteration failed"
            # without reading every iteration's scope at every wake (O(iterations) per wake before)
            parent_prefix = s.parent_step[: s.parent_step.rfind("/") + 1]
            parent = scopes.get(parent_prefix)
            if parent is not None and (s.status is WorkflowStatus.FAILED) != (
                s.prefix in parent.failed_children
            ):
                kids = parent.failed_children
                kids = tuple(k for k in kids if k != s.prefix) if s.prefix in kids else (*kids, s.prefix)
                scopes[parent_prefix] = evolve(parent, {"failed_children": kids})
        changes: dict[str, Any] = {"scopes": scopes}
        if s.prefix not in self.open_scopes and not s.status.is_terminal:
            changes["open_scopes"] = (*self.open_scopes, s.prefix)
        elif s.status.is_terminal and s.prefix in self.open_scopes:
            changes["open_scopes"] = tuple(p for p in self.open_scopes if p != s.prefix)
        return evolve(self, changes)

    def with_indexes(self, path: str, before: Attempt | None, after: Attempt) -> RunState:
        """Keep ``live`` and ``backoff`` right after the latest attempt of ``path`` went from
        ``before`` (None: it is new) to ``after``. (:meth:`with_attempt` already does this.)"""
        changes: dict[str, Any] = {}
        self._index_changes(path, before, after, changes)
        return evolve(self, changes) if changes else self

    def _index_changes(
        self, path: str, before: Attempt | None, after: Attempt, changes: dict[str, Any]
    ) -> None:
        status = after.status
        if before is not None and path not in self.backoff:
            was = before.status
            if was is status and not status.is_retryable:
                return  # same status (conditions, params, children changed): no index moves
            if not was.is_terminal and not status.is_terminal:
                # CREATED -> INITIALIZED -> WAITING_FOR_PERMITS -> RUNNING: live before and after,
                # neither complete nor retryable (both imply terminal), not in backoff: nothing moves
                return
        if status.is_complete and (before is None or not before.status.is_complete):
            changes["completions"] = self.completions + 1
            # readiness in a scope only changes when one of its own steps completes: count per scope
            # so decide() rescans only that scope's waiting steps, not every open foreach iteration's
            prefix = path[: path.rfind("/") + 1]
            scopes = changes.get("scopes", self.scopes)
            scope = scopes.get(prefix)
            if scope is not None:
                scopes = dict(scopes)
                scopes[prefix] = evolve(scope, {"completed": scope.completed + 1})
                changes["scopes"] = scopes
        was_live = before is not None and not before.status.is_terminal
        is_live = not after.status.is_terminal
        # live and backoff can hold thousands of paths (a wide DAG): copy-on-write past 128 entries
        if was_live != is_live:
            live = self.live
            if is_live:
                changes["live"] = new_live = with_entry(live, path, after.attempt)
                _derive_counts(live, new_live, path, 0 if path in live else 1)
            elif path in live:
                changes["live"] = new_live = without_entry(live, path)
                _derive_counts(live, new_live, path, -1)
        in_backoff = path in self.backoff
        wants_backoff = after.status.is_retryable
        if in_backoff != wants_backoff or (wants_backoff and self.backoff[path] != after.retry_at):
            backoff = self.backoff
            if wants_backoff:
                due = after.retry_at if after.retry_at is not None else after.ended_at or 0.0
                changes["backoff"] = new_backoff = with_entry(backoff, path, due)
                _derive_counts(backoff, new_backoff, path, 0 if in_backoff else 1)
            else:
                changes["backoff"] = new_backoff = without_entry(backoff, path)
                _derive_counts(backoff, new_backoff, path, -1)


_COUNTS: dict[int, tuple[Mapping[str, Any], dict[str, int]]] = {}
"""``id(paths)`` -> (paths, {scope prefix: how many of ``paths`` lie in it}) for ``live`` / ``backoff``
maps (held, so the id stays valid): decide() asks which open scopes have live work at every call,
which was a pass over every live path (thousands on a wide DAG)."""


def scope_counts(paths: Mapping[str, Any]) -> Mapping[str, int]:
    """How many of ``paths`` (a ``live`` or ``backoff`` map) lie in each scope prefix; do not mutate.
    Derived from the previous map's counts when the core made this map from it, else one pass."""
    hit = _COUNTS.get(id(paths))
    if hit is not None and hit[0] is paths:
        return hit[1]
    counts: dict[str, int] = {}
    for p in paths:
        prefix = p[: p.rfind("/") + 1]
        counts[prefix] = counts.get(prefix, 0) + 1
    _remember_counts(paths, counts)
    return counts


def _remember_counts(paths: Mapping[str, Any], counts: dict[str, int]) -> None:
    if len(_COUNTS) >= 4096:
        _COUNTS.clear()
    _COUNTS[id(paths)] = (paths, counts)


def _derive_counts(old: Mapping[str, Any], new: Mapping[str, Any], path: str, delta: int) -> None:
    hit = _COUNTS.get(id(old))
    if hit is None or hit[0] is not old:
        return  # nobody asked for the old map's counts: compute the new one's when asked
    counts = hit[1].copy()
    prefix = path[: path.rfind("/") + 1]
    n = counts.get(prefix, 0) + delta
    if n:
        counts[prefix] = n
    else:
        counts.pop(prefix, None)
    _remember_counts(new, counts)


_T = TypeVar("_T")
_new = object.__new__
_set_attr = object.__setattr__


def evolve(obj: _T, changes: Mapping[str, Any]) -> _T:
    """``dataclasses.replace(obj, **changes)`` for the core's records (Attempt, Scope, RunState), on
    the hot path of every execute. They have no ``__slots__`` so that a copy is one C-level dict copy
    plus the changes (~3x cheaper than copying 15-22 slots one by one; values are still frozen).
    Unlike ``replace`` it runs no ``__init__`` / ``__post_init__`` and checks no field names, so use
    it only on these records and only with their field names."""
    d = obj.__dict__.copy()
    d.update(changes)
    new: _T = _new(type(obj))
    _set_attr(new, "__dict__", d)
    return new


def new_attempt(
    path: str,
    step_id: str,
    attempt: int,
    status: StepStatus,
    created_at: float,
    ready_at: float,
    policy: ParsedRetryPolicy,
    counters: RetryCounters,
) -> Attempt:
    """``Attempt(path, step_id, attempt, status, created_at, ready_at, policy, counters)`` without the
    frozen ``__init__`` (one ``object.__setattr__`` per field): the core creates every attempt here."""
    a: Attempt = _new(Attempt)
    _set_attr(a, "__dict__", {
        "path": path, "step_id": step_id, "attempt": attempt, "status": status, "created_at": created_at,
        "ready_at": ready_at, "policy": policy, "counters": counters, "started_at": None, "ended_at": None,
        "timeout_s": None, "params": None, "outputs": {}, "outcome": None, "unrecorded": False,
        "satisfied": None, "conditions": None, "retry_at": None, "note": None, "children": 0,
        "child_total": None, "terminating": None,
    })  # fmt: skip
    return a


def frozen_constructor(cls: type[_T]) -> Callable[..., _T]:
    """A positional constructor (every field, in order) for a frozen *slotted* dataclass without
    ``__post_init__``, generated once: the dataclass ``__init__`` of a frozen class sets each field
    through ``object.__setattr__``; this calls the slot setters directly. Only field names reach the
    generated source."""
    names = [f.name for f in dataclass_fields(cls)]  # type: ignore[arg-type]
    ns: dict[str, Any] = {"_new": object.__new__, "_cls": cls}
    body = [f"def make({', '.join(names)}):", "    n = _new(_cls)"]
    for i, name in enumerate(names):
        ns[f"_s{i}"] = cls.__dict__[name].__set__
        body.append(f"    _s{i}(n, {name})")
    body.append("    return n")
    exec("\n".join(body), ns)
    fn: Callable[..., _T] = ns["make"]
    return fn


def scope_of(path: str) -> tuple[str, str]:
    """Split a step path into its scope prefix and step id: ``fan[2]/x`` -> (``fan[2]/``, ``x``)."""
    cut = path.rfind("/") + 1
    return path[:cut], path[cut:]


_ATTEMPT_SIMPLE = (
    "path", "step_id", "attempt", "created_at", "ready_at", "started_at", "ended_at", "timeout_s", "params",
    "outputs", "outcome", "unrecorded", "satisfied", "conditions", "retry_at", "note", "children", "child_total", "terminating",
)  # fmt: skip


_ToJson = Callable[[Attempt], dict[str, Any]]
_FromJson = Callable[[Mapping[str, Any]], Attempt]


def _make_attempt_codec() -> tuple[_ToJson, _FromJson]:
    """Straight-line ``attempt_to_json`` / ``attempt_from_json``, generated once from the field list
    (as ``dataclasses`` generates ``__init__``): the legacy engine converts every attempt of a run at
    every poll, so these are its hottest functions. Only field names reach the generated source."""
    ns: dict[str, Any] = {
        "_new": object.__new__, "_Attempt": Attempt, "_DEFAULT": DEFAULT_RETRY_POLICY,
        "_policy": ParsedRetryPolicy.from_json, "_Counters": RetryCounters,
        "_status": {m.value: m for m in StepStatus},
    }  # fmt: skip
    entries = ", ".join(f"{k!r}: a.{k}" for k in _ATTEMPT_SIMPLE)
    to_src = [
        "def to_json(a):",
        "    c = a.counters",
        f"    return {{{entries}, 'status': a.status.value,",
        "            'policy': a.policy.to_json() if a.policy is not _DEFAULT else None,",
        "            'counters': [c.error, c.platform, c.timeout]}",
    ]
    ns["_set_attr"] = object.__setattr__
    simple = ", ".join(f"{k!r}: d[{k!r}]" for k in _ATTEMPT_SIMPLE)
    from_src = [
        "def from_json(d):",
        "    n = _new(_Attempt)",
        "    p = d['policy']",
        "    c = d['counters']",
        f"    _set_attr(n, '__dict__', {{{simple}, 'status': _status[d['status']],",
        "             'policy': _DEFAULT if p is None else _policy(p), 'counters': _Counters(c[0], c[1], c[2])})",
        "    return n",
    ]
    exec("\n".join(to_src), ns)
    exec("\n".join(from_src), ns)
    return ns["to_json"], ns["from_json"]


_attempt_to_json, _attempt_from_json = _make_attempt_codec()


def attempt_to_json(a: Attempt) -> dict[str, Any]:
    """One attempt as plain JSON (an engine may store attempts as separate rows and reload only some)."""
    return _attempt_to_json(a)


def attempt_from_json(d: Mapping[str, Any]) -> Attempt:
    """The inverse of :func:`attempt_to_json` (a missing key is a KeyError, an unknown status too)."""
    return _attempt_from_json(d)


_WORKFLOW_STATUS = {m.value: m for m in WorkflowStatus}


def scope_to_json(s: Scope) -> list[Any]:
    """One scope as a plain JSON list (positional: it is stored once per child run)."""
    return [
        s.prefix, s.workflow, dict(s.params), s.instance_id, s.parent_step, s.status.value, s.started_at,
        s.timeout_s, s.ended_at, s.stopping, list(s.waiting), s.scanned, s.completed, list(s.failed_children),
    ]  # fmt: skip


def scope_from_json(s: Sequence[Any]) -> Scope:
    # a 12-element list predates ``completed``: 0 makes scanned != completed, i.e. one safe rescan;
    # a 13-element one predates ``failed_children`` (stores are per replay: no such file survives)
    completed = s[12] if len(s) > 12 else 0
    failed_children = tuple(s[13]) if len(s) > 13 else ()
    return Scope(
        s[0],
        s[1],
        s[2],
        s[3],
        s[4],
        _WORKFLOW_STATUS[s[5]],
        s[6],
        s[7],
        s[8],
        s[9],
        tuple(s[10]),
        s[11],
        completed,
        failed_children,
    )


def run_to_json(run: RunState) -> dict[str, Any]:
    """A plain-JSON form (dicts, lists, strings, numbers) of ``run``; :func:`run_from_json` inverts it."""
    return {
        "trace_id": run.trace_id,
        "run_id": run.run_id,
        "run_index": run.run_index,
        "status": run.status.value,
        "triggered_at": run.triggered_at,
        "started_at": run.started_at,
        "ended_at": run.ended_at,
        "stuck": run.stuck,
        "scopes": [scope_to_json(s) for s in run.scopes.values()],
        "attempts": [attempt_to_json(a) for atts in run.attempts.values() for a in atts],
        "live": as_dict(run.live),
        "backoff": as_dict(run.backoff),
        "open_scopes": list(run.open_scopes),
        "completions": run.completions,
    }


def run_from_json(d: Mapping[str, Any]) -> RunState:
    scopes = {s[0]: scope_from_json(s) for s in d["scopes"]}
    attempts: dict[str, tuple[Attempt, ...]] = {}
    for ad in d["attempts"]:
        a = attempt_from_json(ad)
        attempts[a.path] = (*attempts.get(a.path, ()), a)
    return RunState(
        trace_id=d["trace_id"],
        run_id=d["run_id"],
        run_index=d["run_index"],
        status=WorkflowStatus(d["status"]),
        triggered_at=d["triggered_at"],
        scopes=scopes,
        attempts=attempts,
        started_at=d["started_at"],
        ended_at=d["ended_at"],
        stuck=d["stuck"],
        live=dict(d["live"]),
        backoff=dict(d["backoff"]),
        open_scopes=tuple(d["open_scopes"]),
        completions=d["completions"],
    )
