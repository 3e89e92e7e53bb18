"""How a flow's run state lies in the store: a run row plus one row per step attempt, written as deltas.

Maestro keeps a workflow instance row and a step instance row per attempt; the actor engine does the
same so a commit writes only what changed: the attempts whose object changed since the last commit
(step rows) and, when the run's own part changed, the run row -- the run header (status, times,
indexes) and its scopes (one per foreach iteration or subworkflow child). Encoded scopes and
attempts are cached by object identity (core state is immutable), so a foreach of a thousand
iterations is not re-encoded at every commit. ``decode_run`` rebuilds the exact ``RunState`` from
the rows, for a takeover, a reconciliation or the final record.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Iterator, Mapping
from typing import Any

from engines.core.cowmap import CowMap, as_dict
from engines.core.state import (
    Attempt,
    RunState,
    Scope,
    attempt_from_json,
    attempt_to_json,
    run_from_json,
    scope_to_json,
)
from engines.store.records import StepInstance, StepTimes

__all__ = ["RunCodec", "decode_run", "detached_key", "encode_new_run", "has_detached_work"]

_DUMPS = json.JSONEncoder(separators=(",", ":"), ensure_ascii=False).encode


def _header(state: RunState) -> dict[str, Any]:
    """``run_to_json(state)`` without its scopes and attempts: the same keys in the same order,
    built directly (it used to build a copy of the state without them and convert that)."""
    return {
        "trace_id": state.trace_id, "run_id": state.run_id, "run_index": state.run_index,
        "status": state.status.value, "triggered_at": state.triggered_at, "started_at": state.started_at,
        "ended_at": state.ended_at, "stuck": state.stuck, "live": as_dict(state.live),
        "backoff": as_dict(state.backoff), "open_scopes": list(state.open_scopes), "completions": state.completions,
    }  # fmt: skip


_HEADER_FIELDS = (
    "trace_id", "run_id", "run_index", "status", "triggered_at", "started_at", "ended_at", "stuck", "live",
    "backoff", "open_scopes", "completions",
)  # fmt: skip


def _scope_json(scope: Scope) -> str:
    # what run_to_json writes for a scope (its "scopes" list is scope_to_json of each)
    return _DUMPS(scope_to_json(scope))


DETACHED_SUFFIX = "/async"


def has_detached_work(state: RunState) -> bool:
    """Whether a run whose root has ended still has work: an async subworkflow child (an independent
    workflow instance in Maestro) goes on after its parent's run ends, in the same flow."""
    return bool(state.open_scopes or state.live or state.backoff)


def detached_key(run_key: str) -> str:
    """The store key of a run's *detached-work marker*: a child row (``parent_key`` = the run) that
    is IN_PROGRESS while the run has ended but async children still run, so a takeover, the periodic
    reconciliation and ``wait_live`` see the work although the run row itself is terminal."""
    return run_key + DETACHED_SUFFIX


def encode_new_run(state: RunState) -> str:
    """The run row text of a run that has no scopes or attempts yet (a trigger)."""
    return RunCodec().run_text(state)


class RunCodec:
    """Per-flow encoder with identity caches; ``seq`` orders attempts as they were created.

    ``step_rows`` stages what it returns; the flow calls ``commit`` once the transaction committed
    and ``rollback`` when it failed, so rows of a failed write are written again by the retry."""

    __slots__ = ("_attempts", "_head", "_scopes", "_staged", "_staged_seq", "seq")

    def __init__(self, seq: int = 0) -> None:
        self._scopes: dict[str, tuple[Scope, str]] = {}
        self._head: tuple[tuple[Any, ...], str] | None = None  # header field values -> encoded header
        self._attempts: dict[tuple[str, int], tuple[Attempt, int]] = {}
        self._staged: dict[tuple[str, int], tuple[Attempt, int]] = {}
        self._staged_seq = seq
        self.seq = seq

    def commit(self) -> None:
        """The rows last returned by ``step_rows`` are durable: remember them as written."""
        self._attempts.update(self._staged)
        self._staged.clear()
        self._staged_seq = self.seq

    def rollback(self) -> None:
        """The write of the rows last returned by ``step_rows`` failed: they are still to write."""
        self._staged.clear()
        self.seq = self._staged_seq

    def run_text(self, state: RunState) -> str:
        parts = []
        cache = self._scopes
        for prefix, scope in state.scopes.items():
            hit = cache.get(prefix)
            if hit is None or hit[0] is not scope:
                hit = cache[prefix] = (scope, _scope_json(scope))
            parts.append(hit[1])
        # The header (status, times, live / backoff indexes) is re-encoded only when one of its
        # fields is another object: the core never mutates a value it returned (live and backoff
        # maps included), so same objects encode to the same text. Compared by identity only: an
        # equal but distinct value is simply encoded again.
        values = tuple([getattr(state, f) for f in _HEADER_FIELDS])
        head = self._head
        if (
            head is None
            or len(head[0]) != len(values)
            or any(a is not b for a, b in zip(head[0], values, strict=True))
        ):
            head = self._head = (values, _DUMPS(_header(state)))
        return '{"h":' + head[1] + ',"s":[' + ",".join(parts) + "]}"

    def step_rows(self, run_key: str, state: RunState, before: RunState, now: float) -> list[StepInstance]:
        """Rows for every attempt that is new or changed since ``before``."""
        out: list[StepInstance] = []
        self.rollback()  # rows staged by a write that never committed are computed afresh
        for path, atts in _changed(state.attempts, before.attempts):
            for a in atts:
                key = (path, a.attempt)
                hit = self._attempts.get(key)
                if hit is not None and hit[0] is a:
                    continue
                seq = hit[1] if hit is not None else self._next()
                self._staged[key] = (a, seq)
                body = attempt_to_json(a)
                times = StepTimes(create_time=a.created_at, start_time=a.started_at, end_time=a.ended_at)
                # the text of _DUMPS({"seq": seq, "a": body}), without building the wrapper dict
                text = '{"seq":' + str(seq) + ',"a":' + _DUMPS(body) + "}"
                out.append(StepInstance(run_key, path, a.attempt, a.status.value, text, times, now))
        return out

    def _next(self) -> int:
        self.seq += 1
        return self.seq

    def remember(self, state: RunState, seqs: Mapping[tuple[str, int], int]) -> None:
        """After a decode: cache what is already stored, so the next commit writes only changes."""
        for prefix, scope in state.scopes.items():
            self._scopes[prefix] = (scope, _scope_json(scope))
        for path, atts in state.attempts.items():
            for a in atts:
                self._attempts[(path, a.attempt)] = (a, seqs.get((path, a.attempt), 0))


def _changed(new: Mapping[str, Any], old: Mapping[str, Any]) -> Iterator[tuple[str, Any]]:
    """The items of ``new`` whose value is not (by identity) ``old``'s, in ``new``'s order. Between two
    versions of a :class:`~engines.core.cowmap.CowMap` an unchanged chunk is the same dict object, so
    only the chunks a transition copied are looked at: a commit costs what changed, not the DAG."""
    if isinstance(new, CowMap) and isinstance(old, CowMap):
        old_chunks = old._chunks
        for i, chunk in enumerate(new._chunks):
            prev = old_chunks[i] if i < len(old_chunks) else None
            if prev is chunk:
                continue
            for path, value in chunk.items():
                if (prev is not None and prev.get(path) is value) or old.get(path) is value:
                    continue
                yield path, value
        return
    for path, value in new.items():
        if old.get(path) is not value:
            yield path, value


def decode_run(text: str, steps: Iterable[StepInstance] = ()) -> tuple[RunState, RunCodec]:
    """Rebuild a run state from its run row text and its step rows; a codec primed with them."""
    d = json.loads(text)
    header = dict(d["h"])
    header["scopes"] = d["s"]
    loaded = []
    for row in steps:
        body = json.loads(row.state)
        loaded.append((body["seq"], attempt_from_json(body["a"])))
    loaded.sort(key=lambda p: p[0])
    header["attempts"] = []
    state = run_from_json(header)
    attempts: dict[str, tuple[Attempt, ...]] = {}
    for _, a in loaded:
        attempts[a.path] = (*attempts.get(a.path, ()), a)
    state = RunState(
        trace_id=state.trace_id, run_id=state.run_id, run_index=state.run_index, status=state.status,
        triggered_at=state.triggered_at, scopes=state.scopes, attempts=attempts, started_at=state.started_at,
        ended_at=state.ended_at, stuck=state.stuck, live=state.live, backoff=state.backoff,
        open_scopes=state.open_scopes, completions=state.completions,
    )  # fmt: skip
    codec = RunCodec(max((s for s, _ in loaded), default=0))
    codec.remember(state, {(a.path, a.attempt): s for s, a in loaded})
    return state, codec
