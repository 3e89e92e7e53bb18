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
from dataclasses import dataclass, field, replace
from typing import Any

from engines.core.cowmap import COW_THRESHOLD, CowMap
from engines.core.state import Attempt, RunState, Scope, run_from_json, run_to_json
from engines.core.statuses import WorkflowStatus
from engines.store import LoadedRun, StepInstance, StepTimes, Store, WorkflowInstance
from engines.store._ops import _RUN_COLUMNS
from engines.store._sqlite_base import SqliteBase

__all__ = ["CHILD_SEPARATOR", "LoadedState", "RowCodec", "RowWrites", "Snapshot", "child_key", "root_key"]

CHILD_SEPARATOR = "::"
_CACHE_LIMIT = 200_000
_PATCH_LIMIT = 400
_LIVE_EMPTY = '"live": {}'
_LIVE_MEMO_MIN = 64  # live indexes smaller than this are encoded afresh
_WRITTEN_LIMIT = 4096  # changed paths / child rows beyond which an incremental reload reads everything

# Unmetered reads of the fast path's reloads (the store's three metered reads are accounted apart).
_SQL_ROOT = f"SELECT {_RUN_COLUMNS} FROM workflow_instances WHERE run_key = ?"
_SQL_CHILDREN = f"SELECT {_RUN_COLUMNS} FROM workflow_instances WHERE parent_key = ? ORDER BY run_key"
_SQL_RUNS_BY_KEY = "SELECT " + _RUN_COLUMNS + " FROM workflow_instances WHERE run_key IN ({marks})"
_SQL_STEP_TEXTS = "SELECT path, state FROM step_instances WHERE run_key = ? ORDER BY path, attempt"
_SQL_STEP_TEXTS_OF = (
    "SELECT path, state FROM step_instances WHERE run_key = ? AND path IN ({marks}) ORDER BY path, attempt"
)


def _same_head(
    head: tuple[RunState, Scope | None, Mapping[str, Any]], parsed: RunState, doc: Mapping[str, Any]
) -> bool:
    """True when a pre-decoded head equals what parsing its text gives (fields, and index order)."""
    core = head[0]
    return (
        core == parsed
        and list(core.live.items()) == list(parsed.live.items())
        and list(core.backoff.items()) == list(parsed.backoff.items())
        and dict(head[2]) == doc["book"]
        and (head[1] is None) == (doc["scope"] is None)
    )


def _changed_items(after: Mapping[str, Any], before: Mapping[str, Any]) -> Any:
    """``after.items()`` in order, less the entries of copy-on-write chunks ``after`` still shares with
    ``before`` (their values are the very same objects there, so a caller skipping identical values
    would skip them anyway). Plain mappings: every item."""
    if type(after) is not CowMap or type(before) is not CowMap:
        return after.items()
    old_chunks = before._chunks
    n = len(old_chunks)
    return (
        item
        for i, chunk in enumerate(after._chunks)
        if i >= n or chunk is not old_chunks[i]
        for item in chunk.items()
    )


def _run_row(row: Any) -> WorkflowInstance:
    return WorkflowInstance(*row)


def _meter_read(store: SqliteBase, operation: str) -> None:
    """Account one read round trip exactly as the store's own ``_read`` does (count + latency draw)."""
    store._round_trip("read", operation)
    store._reads += 1


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
    rows: int = 0  # step rows (attempts) of the run


@dataclass(frozen=True, slots=True)
class RowWrites:
    """What one cycle must write: the root row (always, versioned), new and changed child rows, attempts."""

    root: WorkflowInstance
    new_children: tuple[WorkflowInstance, ...]
    changed_children: tuple[WorkflowInstance, ...]
    steps: tuple[StepInstance, ...]
    journal: dict[str, dict[int, tuple[frozenset[str], frozenset[str]]]] | None = field(
        default=None, compare=False
    )

    def apply(self, store: Store) -> WorkflowInstance:
        """Write everything (call inside ``store.transaction()``); returns the root at its new version."""
        saved = store.save_run(self.root)
        if self.journal is not None:
            # Which rows the write at this version touched (the codec's incremental reload reads only
            # those). A rolled-back write leaves a stale entry that the committed write at the same
            # version overwrites: a write always lands at base version + 1.
            self.journal.setdefault(saved.run_key, {})[saved.version] = (
                frozenset(s.path for s in self.steps),
                frozenset(r.run_key for r in (*self.new_children, *self.changed_children)),
            )
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
        # run_key -> {version: (step paths, child run keys) written at that version} (fast mode only)
        self.journal: dict[str, dict[int, tuple[frozenset[str], frozenset[str]]]] | None = None
        self._scope_memo: tuple[Scope, str, str] | None = None  # the last root scope written and its JSON
        self._live_memo: dict[str, tuple[Any, tuple[tuple[str, int], ...], str]] = {}  # run id -> live index
        self._key_frags: dict[str, str] = {}  # path -> its JSON key part ('"path": ')
        # fast mode: root text written -> (core state, root scope text, book), used instead of parsing it
        self._written: dict[str, tuple[RunState, str | None, dict[str, Any]]] | None = None
        self._verify_written = 64  # pre-decoded heads still checked against a real parse
        self.incremental = 0  # reloads that read only the changed rows (diagnostics)
        self.full_reloads = 0
        # (run_key, version) of a reload the fast path already made and counted (:meth:`speculate`): the
        # next reload of that run at that version is the same one, counted once
        self.prepaid: tuple[str, int] | None = None

    def enable_fast(self) -> None:
        """Keep snapshots and the write journal: reloads then read only what changed (same counts)."""
        if self.snapshots is None:
            self.snapshots = {}
        if self.journal is None:
            self.journal = {}
        if self._written is None:
            self._written = {}

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

    def _head(self, root: WorkflowInstance) -> tuple[RunState, Scope | None, Mapping[str, Any]]:
        head = self._roots.get(root.state)
        if head is None:
            self.decodes += 1
            pre = self._written.pop(root.state, None) if self._written is not None else None
            if pre is not None:
                # The text is what root_text() wrote for this very state: the same lookups, no parse.
                core, scope_text, book = pre
                root_scope = self._scope_text(scope_text) if scope_text is not None else None
                head = (core, root_scope, book)
                if self._verify_written > 0:
                    self._verify_written -= 1
                    doc = json.loads(root.state)
                    if not _same_head(head, run_from_json(doc["core"]), doc):
                        self._written = None  # never again for this codec: parse like the exact mode
                        head = (run_from_json(doc["core"]), root_scope, doc["book"])
            else:
                doc = json.loads(root.state)
                root_scope = (
                    self._scope(doc["scope"], doc["scope_text"]) if doc["scope"] is not None else None
                )
                # run_from_json restores every run-level field the core keeps (its indexes included).
                head = (run_from_json(doc["core"]), root_scope, doc["book"])
            if len(self._roots) >= _CACHE_LIMIT:
                self._roots.clear()
                self.epoch += 1
            self._roots[root.state] = head
        else:
            self.cache_hits += 1
        return head

    def _scope_text(self, text: str) -> Scope:
        """``_scope(json.loads(text), text)`` with the parse done only on a cache miss."""
        hit = self._scopes.get(text)
        if hit is not None:
            self.cache_hits += 1
            return hit
        return self._scope(json.loads(text), text)

    def decode(self, loaded: LoadedRun, children: list[WorkflowInstance]) -> LoadedState:
        """The core state of a run from its rows (root row, child rows, every attempt row)."""
        root = loaded.run
        core, root_scope, book = self._head(root)
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
        """Reload a run and everything under it from the store (three reads, one snapshot).

        In fast mode (:meth:`enable_fast`, a SQLite store without fault hooks) the three reads are
        metered as always but only the rows written since the last reload are fetched and decoded; the
        state, the cache hits and decodes are exactly those of the full reload (:meth:`refresh`)."""
        if self.journal is not None and isinstance(store, SqliteBase) and store._faults is None:
            with store.transaction():
                _meter_read(store, "load_run")
                root = store._conn.execute(_SQL_ROOT, (run_key,)).fetchone()
                if root is None:
                    return None
                _meter_read(store, "load_run")
                _meter_read(store, "child_runs")
                return self.refresh(store._conn, _run_row(root))
        with store.transaction():
            loaded = store.load_run(run_key)
            if loaded is None:
                return None
            children = store.child_runs(run_key)
        if self.snapshots is None:
            return self.decode(loaded, children)
        return self._snap(loaded.run, self.decode, loaded, children, len(loaded.steps))

    def _snap(self, root: WorkflowInstance, fn: Any, *args: Any) -> LoadedState:
        assert self.snapshots is not None
        epoch = self.epoch
        *call, rows = args
        out: LoadedState = fn(*call)
        if self.epoch == epoch:
            hits = 1 + len(out.children) + rows
            self.snapshots[root.run_key] = Snapshot(root.version, out, hits, epoch, rows)
        else:
            self.snapshots.pop(root.run_key, None)
        return out

    def refresh(self, conn: Any, root: WorkflowInstance) -> LoadedState:
        """The run at ``root`` (its freshly read row), reading only the rows written since its snapshot.

        Same result and same cache effects as a full :meth:`decode` of every row: every row of the
        run is looked up once -- unchanged ones are counted as the hits they are (their text is in the
        cache: same epoch, and no clear can happen during this reload), changed ones are fetched and
        looked up for real, in the full reload's order. Falls back to the full reload when the journal
        does not cover every version since the snapshot or a cache might fill up."""
        assert self.snapshots is not None
        assert self.journal is not None
        key = root.run_key
        snap = self.snapshots.get(key)
        prepaid = self.prepaid
        if prepaid is not None and prepaid[0] == key:
            self.prepaid = None
            if snap is not None and snap.epoch == self.epoch and root.version == snap.version == prepaid[1]:
                return snap.loaded  # this very reload was made (and counted) by speculate()
        if snap is not None and snap.epoch == self.epoch:
            if root.version == snap.version:
                self.cache_hits += snap.hits
                return snap.loaded
            patched = self._incremental(conn, root, snap)
            if patched is not None:
                return patched
        self.full_reloads += 1
        steps = conn.execute(_SQL_STEP_TEXTS, (key,)).fetchall()
        children = [_run_row(r) for r in conn.execute(_SQL_CHILDREN, (key,)).fetchall()]
        return self._snap(root, self._decode_texts, root, steps, children, len(steps))

    def _incremental(self, conn: Any, root: WorkflowInstance, snap: Snapshot) -> LoadedState | None:
        """The incremental reload of ``root`` from ``snap`` (same epoch), or None when only a full reload
        is exact (the journal does not cover every version since, or a decode cache might fill up: an
        incremental reload never clears a cache, so it never changes the epoch)."""
        changes = self._changes(root.run_key, snap.version, root.version)
        if changes is None:
            return None
        paths, kids = changes
        if (
            len(paths) <= _PATCH_LIMIT
            and len(kids) <= _PATCH_LIMIT
            and len(self._roots) + 1 < _CACHE_LIMIT
            and len(self._scopes) + len(kids) + 1 < _CACHE_LIMIT
            and len(self._attempts) + snap.rows + len(paths) < _CACHE_LIMIT
        ):
            self.incremental += 1
            return self._patch(conn, root, snap, paths, kids)
        return None

    def speculate(self, conn: Any, root: WorkflowInstance) -> Snapshot | None:
        """For the fast path: make now the reload a poll of the run at ``root`` (its freshly read row, a
        newer version than its snapshot) would make, counted as that reload counts it, and return the new
        snapshot; None (nothing done) when that reload would not be incremental.

        The fast path then either keeps the poll (its reload is this one) or hands it to the real worker,
        whose reload of the run at this version is then this one too: it returns the snapshot and counts
        nothing (:attr:`prepaid`). Cache effects are the same whichever of the two makes the lookups."""
        assert self.snapshots is not None
        snap = self.snapshots.get(root.run_key)
        if (
            snap is None
            or snap.epoch != self.epoch
            or root.version <= snap.version
            or self.prepaid is not None
        ):
            return None
        if self._incremental(conn, root, snap) is None:
            return None
        self.prepaid = (root.run_key, root.version)
        return self.snapshots[root.run_key]

    def _changes(self, key: str, since: int, until: int) -> tuple[set[str], set[str]] | None:
        assert self.journal is not None
        entries = self.journal.get(key)
        if entries is None or until <= since:
            return None
        paths: set[str] = set()
        kids: set[str] = set()
        for v in range(since + 1, until + 1):
            entry = entries.get(v)
            if entry is None:
                return None
            paths |= entry[0]
            kids |= entry[1]
        return paths, kids

    def _decode_texts(
        self, root: WorkflowInstance, steps: list[tuple[str, str]], children: list[WorkflowInstance]
    ) -> LoadedState:
        """:meth:`decode` from (path, state) pairs of every attempt row, ordered by path and attempt."""
        core, root_scope, book = self._head(root)
        scopes: dict[str, Scope] = {}
        kids: dict[str, WorkflowInstance] = {}
        if root_scope is not None:
            scopes[""] = root_scope
        for row in children:
            scope = self._child_scope(row)
            scopes[scope.prefix] = scope
            kids[scope.prefix] = row
        attempts: dict[str, tuple[Attempt, ...]] = {}
        for path, text in steps:
            a = self._attempt(text)
            prev = attempts.get(path)
            attempts[path] = (a,) if prev is None else (*prev, a)
        return LoadedState(replace(core, scopes=scopes, attempts=attempts), root, kids, book)

    def _child_scope(self, row: WorkflowInstance) -> Scope:
        scope = self._scopes.get(row.state)
        if scope is None:
            return self._scope(json.loads(row.state), row.state)
        self.cache_hits += 1
        return scope

    def _patch(
        self, conn: Any, root: WorkflowInstance, snap: Snapshot, paths: set[str], kids: set[str]
    ) -> LoadedState:
        old = snap.loaded
        old_state = old.state
        core, root_scope, book = self._head(root)
        # children, in run-key order: unchanged rows are cache hits, changed and new ones are read
        rows_by_key = {row.run_key: row for row in old.children.values()}
        unchanged_kids = len(rows_by_key) - sum(1 for k in kids if k in rows_by_key)
        fresh: dict[str, WorkflowInstance] = {}
        if kids:
            marks = ", ".join("?" * len(kids))
            for r in conn.execute(_SQL_RUNS_BY_KEY.format(marks=marks), tuple(kids)).fetchall():
                row = _run_row(r)
                fresh[row.run_key] = row
        self.cache_hits += unchanged_kids
        scope_of_key = {row.run_key: old_state.scopes[prefix] for prefix, row in old.children.items()}
        new_keys = [k for k in fresh if k not in rows_by_key]
        order = sorted([*rows_by_key, *new_keys]) if new_keys else list(rows_by_key)
        for k in sorted(fresh):  # looked up in run-key order, as the full reload does
            scope_of_key[k] = self._child_scope(fresh[k])
            rows_by_key[k] = fresh[k]
        scopes: dict[str, Scope] = {}
        children: dict[str, WorkflowInstance] = {}
        if root_scope is not None:
            scopes[""] = root_scope
        for k in order:
            scope = scope_of_key[k]
            scopes[scope.prefix] = scope
            children[scope.prefix] = rows_by_key[k]
        # attempts, in path order: every row of a changed path is read and looked up, the others are hits
        attempts_old = old_state.attempts
        rows = snap.rows
        unchanged_rows = rows - sum(len(attempts_old.get(p, ())) for p in paths)
        self.cache_hits += unchanged_rows
        changed: dict[str, tuple[Attempt, ...]] = {}
        if paths:
            marks = ", ".join("?" * len(paths))
            for path, text in conn.execute(
                _SQL_STEP_TEXTS_OF.format(marks=marks), (root.run_key, *paths)
            ).fetchall():
                a = self._attempt(text)
                prev = changed.get(path)
                changed[path] = (a,) if prev is None else (*prev, a)
        total_rows = unchanged_rows + sum(len(t) for t in changed.values())
        attempts: Mapping[str, tuple[Attempt, ...]]
        if all(p in attempts_old for p in changed):
            # same paths, same order (the full reload's: by path): replace the changed entries in place
            if isinstance(attempts_old, CowMap):
                cow: CowMap[str, tuple[Attempt, ...]] = attempts_old
                for p, atts in changed.items():
                    cow = cow.set(p, atts)
                attempts = cow
            else:
                plain = dict(attempts_old)
                plain.update(changed)
                attempts = plain
        else:
            merged = dict(attempts_old)
            merged.update(changed)
            attempts = {p: merged[p] for p in sorted(merged)}
        if type(attempts) is not CowMap and len(attempts) >= COW_THRESHOLD:
            # what the core's first with_attempt() would build anyway; later reloads then share chunks
            attempts = CowMap(attempts)
        out = LoadedState(replace(core, scopes=scopes, attempts=attempts), root, children, book)
        assert self.snapshots is not None
        self.snapshots[root.run_key] = Snapshot(
            root.version, out, 1 + len(children) + total_rows, self.epoch, total_rows
        )
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

    def root_text(self, state: RunState, bookkeeping: Mapping[str, Any]) -> str:
        """``json.dumps(run_document(state, bookkeeping))``, character for character, without encoding the
        root scope again when it is the same object as at the previous write (its text is kept).

        In fast mode the decoded form of the text is kept too (:meth:`_head` uses it instead of parsing
        the text back; the first reloads check that both agree)."""
        core, core_state = self._core_text(state)
        root = state.scopes.get("")
        if root is None:
            scope_text = "null"
            quoted = "null"
        else:
            memo = self._scope_memo
            if memo is not None and memo[0] is root:
                scope_text, quoted = memo[1], memo[2]
            else:
                scope_text = json.dumps(run_to_json(_blank(scopes={"": root}))["scopes"][0])
                quoted = json.dumps(scope_text)
                self._scope_memo = (root, scope_text, quoted)
        book = dict(bookkeeping)
        text = (
            f'{{"core": {core}, "scope": {scope_text}, "scope_text": {quoted}, "book": {json.dumps(book)}}}'
        )
        written = self._written
        if written is not None:
            if len(written) >= _WRITTEN_LIMIT:
                written.clear()
            written[text] = (core_state, None if root is None else scope_text, book)
        return text

    def _core_text(self, state: RunState) -> tuple[str, RunState]:
        """``json.dumps`` of the core's run-level document, and that document's state. Its biggest part,
        the ``live`` index (one entry per live step), is often the same as at the run's previous write:
        its text is then reused (checked by identity, else by content), else built from per-key parts."""
        core_state = replace(state, scopes={}, attempts={})
        live = state.live
        if len(live) < _LIVE_MEMO_MIN:
            return json.dumps(run_to_json(core_state)), core_state
        text = json.dumps(run_to_json(replace(core_state, live={})))
        if text.count(_LIVE_EMPTY) != 1:  # the core's document changed shape: encode it whole
            return json.dumps(run_to_json(core_state)), core_state
        memo = self._live_memo.get(state.run_id)
        if memo is not None and memo[0] is live:
            live_text = memo[2]
        else:
            items = tuple(live.items())
            if memo is not None and memo[1] == items:
                live_text = memo[2]
            else:
                live_text = self._live_json(live)
            self._live_memo[state.run_id] = (live, items, live_text)
        return text.replace(_LIVE_EMPTY, '"live": ' + live_text, 1), core_state

    def _live_json(self, live: Mapping[str, int]) -> str:
        """``json.dumps(dict(live))`` from cached per-key parts (paths repeat from write to write)."""
        frags = self._key_frags
        parts = []
        for k, v in live.items():
            if type(v) is not int or type(k) is not str:
                return json.dumps(dict(live))
            f = frags.get(k)
            if f is None:
                if len(frags) >= _CACHE_LIMIT:
                    frags.clear()
                f = frags[k] = json.dumps(k) + ": "
            parts.append(f + str(v))
        return "{" + ", ".join(parts) + "}"

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
        old_attempts = old.attempts
        for path, atts in _changed_items(after.attempts, old_attempts):
            prev = old_attempts.get(path)
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
            state=self.root_text(after, book),
            updated_at=now,
        )
        return RowWrites(root, tuple(new_children), tuple(changed_children), tuple(steps), self.journal)
