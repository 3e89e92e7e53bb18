"""The legacy engine's rows: a core :class:`RunState` as store rows, and back, at every poll.

A run is stored the way Maestro's legacy engine stored it: one ``workflow_instances`` row for the
run (its own scope, the root), one child ``workflow_instances`` row per foreach iteration or
subworkflow run (``parent_key`` = the root run), and one ``step_instances`` row per step attempt
(children's attempts included, by full path). Every poll reloads all of them (:meth:`RowCodec.load`:
three SQL reads) and decodes them.

Decoding is made cheap, never skipped: rows are JSON text and the decoded values are immutable, so
a decode is memoized by the row's exact text (a content-addressed cache). A row that changed has new
text and is decoded afresh; one that did not costs a dict lookup instead of ``json.loads`` plus
object construction. Writing back is symmetric: only attempts and scopes whose objects the core
replaced are encoded, and the run row (the optimistic-concurrency anchor) is written on every change.

Concurrency: a codec is used from the loop's thread only; its caches hold immutable values.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass, replace
from typing import Any

from engines.core.state import Attempt, RunState, Scope, run_from_json, run_to_json
from engines.core.statuses import WorkflowStatus
from engines.store import LoadedRun, StepInstance, StepTimes, Store, WorkflowInstance

__all__ = ["CHILD_SEPARATOR", "LoadedState", "RowCodec", "RowWrites", "Snapshot", "child_key", "root_key"]

CHILD_SEPARATOR = "::"
_CACHE_LIMIT = 200_000


def root_key(trace_id: str, run_index: int) -> str:
    """The run key of a root run: sortable by trigger order within a workflow."""
    return f"{trace_id}{CHILD_SEPARATOR}{run_index:06d}"


def child_key(root: str, prefix: str) -> str:
    """The run key of a child workflow instance (foreach iteration ``fan[3]/``, subworkflow ``call/``)."""
    return f"{root}{CHILD_SEPARATOR}{prefix}"


@dataclass(frozen=True, slots=True)
class LoadedState:
    """One poll's copy of a run: the core state and the rows it came from (for versioned writes)."""

    state: RunState
    root: WorkflowInstance
    children: Mapping[str, WorkflowInstance]
    book: Mapping[str, Any]  # engine bookkeeping kept in the root row (``dequeued`` by the run strategy)


@dataclass(frozen=True, slots=True)
class Snapshot:
    """A run as the codec last decoded it, for the fast path (:mod:`engines.legacy.fastpath`).

    Valid while the run's row is still at ``version`` and no decode cache was cleared since
    (``epoch``): a reload would then return an equal state, every row a cache hit (``hits`` of them)."""

    version: int
    loaded: LoadedState
    hits: int
    epoch: int


@dataclass(frozen=True, slots=True)
class RowWrites:
    """What one cycle must write: the root row (always, versioned), new and changed child rows, attempts."""

    root: WorkflowInstance
    new_children: tuple[WorkflowInstance, ...]
    changed_children: tuple[WorkflowInstance, ...]
    steps: tuple[StepInstance, ...]

    def apply(self, store: Store) -> WorkflowInstance:
        """Write everything (call inside ``store.transaction()``); returns the root at its new version."""
        saved = store.save_run(self.root)
        for row in self.new_children:
            store.create_run(row)
        for row in self.changed_children:
            store.save_run(row)
        store.save_steps(self.steps)
        return saved


def _blank(**changes: Any) -> RunState:
    base = RunState(
        trace_id="",
        run_id="",
        run_index=0,
        status=WorkflowStatus.CREATED,
        triggered_at=0.0,
        scopes={},
        attempts={},
    )
    return replace(base, **changes)


_BLANK_JSON: dict[str, Any] = run_to_json(_blank())


class RowCodec:
    """Encodes and decodes run rows with content-keyed caches (see the module docstring)."""

    def __init__(self) -> None:
        self._attempts: dict[str, Attempt] = {}
        self._scopes: dict[str, Scope] = {}
        self._roots: dict[str, tuple[RunState, Scope | None, Mapping[str, Any]]] = {}
        self.decodes = 0
        self.cache_hits = 0
        self.epoch = 0  # bumped whenever a decode cache is cleared (snapshots taken before are void)
        self.snapshots: dict[str, Snapshot] | None = None  # run_key -> last load (fast mode only)

    # ---- decoding ---------------------------------------------------------------------------

    def _attempt(self, text: str) -> Attempt:
        hit = self._attempts.get(text)
        if hit is not None:
            self.cache_hits += 1
            return hit
        self.decodes += 1
        d = json.loads(text)["attempt"]
        doc = dict(_BLANK_JSON, attempts=[d])
        attempt = run_from_json(doc).attempts[d["path"]][0]
        if len(self._attempts) >= _CACHE_LIMIT:
            self._attempts.clear()
            self.epoch += 1
        self._attempts[text] = attempt
        return attempt

    def _scope(self, doc: list[Any], text: str) -> Scope:
        hit = self._scopes.get(text)
        if hit is not None:
            self.cache_hits += 1
            return hit
        self.decodes += 1
        scope = run_from_json(dict(_BLANK_JSON, scopes=[doc])).scopes[doc[0]]
        if len(self._scopes) >= _CACHE_LIMIT:
            self._scopes.clear()
            self.epoch += 1
        self._scopes[text] = scope
        return scope

    def decode(self, loaded: LoadedRun, children: list[WorkflowInstance]) -> LoadedState:
        """The core state of a run from its rows (root row, child rows, every attempt row)."""
        root = loaded.run
        head = self._roots.get(root.state)
        if head is None:
            self.decodes += 1
            doc = json.loads(root.state)
            root_scope = self._scope(doc["scope"], doc["scope_text"]) if doc["scope"] is not None else None
            # run_from_json restores every run-level field the core keeps (its indexes included).
            head = (run_from_json(doc["core"]), root_scope, doc["book"])
            if len(self._roots) >= _CACHE_LIMIT:
                self._roots.clear()
                self.epoch += 1
            self._roots[root.state] = head
        else:
            self.cache_hits += 1
        core, root_scope, book = head
        scopes: dict[str, Scope] = {}
        kids: dict[str, WorkflowInstance] = {}
        if root_scope is not None:
            scopes[""] = root_scope
        for row in children:
            scope = self._scopes.get(row.state)
            if scope is None:
                scope = self._scope(json.loads(row.state), row.state)
            else:
                self.cache_hits += 1
            scopes[scope.prefix] = scope
            kids[scope.prefix] = row
        attempts: dict[str, tuple[Attempt, ...]] = {}
        for step in loaded.steps:  # ordered by path, attempt
            a = self._attempt(step.state)
            prev = attempts.get(step.path)
            attempts[step.path] = (a,) if prev is None else (*prev, a)
        state = replace(core, scopes=scopes, attempts=attempts)
        return LoadedState(state, root, kids, book)

    def load(self, store: Store, run_key: str) -> LoadedState | None:
        """Reload a run and everything under it from the store (three reads, one snapshot)."""
        with store.transaction():
            loaded = store.load_run(run_key)
            if loaded is None:
                return None
            children = store.child_runs(run_key)
        if self.snapshots is None:
            return self.decode(loaded, children)
        epoch = self.epoch
        out = self.decode(loaded, children)
        if self.epoch == epoch:
            hits = 1 + len(children) + len(loaded.steps)
            self.snapshots[run_key] = Snapshot(loaded.run.version, out, hits, epoch)
        else:
            self.snapshots.pop(run_key, None)
        return out

    # ---- encoding ---------------------------------------------------------------------------

    @staticmethod
    def run_document(state: RunState, bookkeeping: Mapping[str, Any]) -> dict[str, Any]:
        """The root row's JSON: the core's run-level fields, the root scope, engine bookkeeping."""
        core = run_to_json(replace(state, scopes={}, attempts={}))
        root = state.scopes.get("")
        scope_doc = run_to_json(_blank(scopes={"": root}))["scopes"][0] if root is not None else None
        return {
            "core": core,
            "scope": scope_doc,
            "scope_text": json.dumps(scope_doc) if scope_doc is not None else None,
            "book": dict(bookkeeping),
        }

    @staticmethod
    def attempt_row(
        run_key: str, a: Attempt, now: float, job: Mapping[str, float] | None = None
    ) -> StepInstance:
        """One attempt's row. ``job`` (the runtime's own start, end and duration, for capture) rides in
        the opaque state next to the core's attempt document."""
        doc = run_to_json(_blank(attempts={a.path: (a,)}))["attempts"][0]
        times = StepTimes(create_time=a.created_at, start_time=a.started_at, end_time=a.ended_at)
        body: dict[str, Any] = {"attempt": doc}
        if job:
            body["job"] = dict(job)
        return StepInstance(run_key, a.path, a.attempt, a.status.value, json.dumps(body), times, now)

    @staticmethod
    def job_of(step: StepInstance) -> Mapping[str, float] | None:
        """The runtime's start, end and duration recorded with an attempt row (None if never ran)."""
        job: Mapping[str, float] | None = json.loads(step.state).get("job")
        return job

    def new_root(
        self, run_key: str, workflow_id: str, state: RunState, bookkeeping: Mapping[str, Any], now: float
    ) -> WorkflowInstance:
        """The row a trigger inserts for a new run (CREATED, no scopes yet)."""
        doc = json.dumps(self.run_document(state, bookkeeping))
        return WorkflowInstance(
            run_key, workflow_id, state.run_id, state.status.value, doc, created_at=now, updated_at=now
        )

    def writes(
        self,
        before: LoadedState,
        after: RunState,
        now: float,
        bookkeeping: Mapping[str, Any] | None = None,
        *,
        job_times: Mapping[tuple[str, int], Mapping[str, float]] | None = None,
    ) -> RowWrites | None:
        """The rows to write for ``after`` (a successor of ``before.state``); None when nothing changed."""
        book = before.book if bookkeeping is None else bookkeeping
        old = before.state
        if after is old and bookkeeping is None:
            return None
        key = before.root.run_key
        steps: list[StepInstance] = []
        for path, atts in after.attempts.items():
            prev = old.attempts.get(path)
            if atts is prev:
                continue
            known = {id(a) for a in prev} if prev else set()
            steps.extend(
                self.attempt_row(key, a, now, job_times.get((path, a.attempt)) if job_times else None)
                for a in atts
                if id(a) not in known
            )
        new_children: list[WorkflowInstance] = []
        changed_children: list[WorkflowInstance] = []
        for prefix, scope in after.scopes.items():
            if prefix == "" or old.scopes.get(prefix) is scope:
                continue
            text = json.dumps(run_to_json(_blank(scopes={prefix: scope}))["scopes"][0])
            row = before.children.get(prefix)
            if row is None:
                new_children.append(
                    WorkflowInstance(child_key(key, prefix), before.root.workflow_id, before.root.run_id,
                                     scope.status.value, text, parent_key=key, created_at=now, updated_at=now)
                )  # fmt: skip
            else:
                changed_children.append(replace(row, status=scope.status.value, state=text, updated_at=now))
        root = replace(
            before.root,
            status=after.status.value,
            state=json.dumps(self.run_document(after, book)),
            updated_at=now,
        )
        return RowWrites(root, tuple(new_children), tuple(changed_children), tuple(steps))
