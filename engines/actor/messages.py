"""The closed set of messages actors exchange: small frozen records, handled with ``match``.

Durable messages (:data:`DurableMessage`) cross actors through the transactional outbox: they are
written in the same transaction as the state change that causes them, handed to the target mailbox
at once after the commit, acknowledged in the receiver's next store round trip, and re-delivered by
the sweeper if nobody acknowledged them in time. Every handler of a durable message is idempotent
(a duplicate is ignored), so at-least-once delivery never runs a step attempt twice.
In-memory messages (:data:`LocalMessage`) never leave their node; a lost one is repaired by the
next RUNNING ping or by reconciliation.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, TypeAlias

from engines.api import EngineError
from engines.core.effects import RuntimeReport
from engines.core.expr import Value

__all__ = [
    "DurableMessage",
    "LocalMessage",
    "Message",
    "Reconcile",
    "Refresh",
    "RetryDue",
    "RunEnded",
    "RuntimeDone",
    "Shutdown",
    "StartFlow",
    "StartTask",
    "StopFlow",
    "TaskUpdate",
    "WakeUp",
    "decode_message",
    "encode_message",
]


# ---- durable (outbox) ------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class StartFlow:
    """Start (or resume) the flow of an admitted run. Duplicate: ignored when the flow runs."""

    run_key: str


@dataclass(frozen=True, slots=True)
class StopFlow:
    """Stop a running run (LAST_ONLY displaced it). Duplicate: the core's stop is idempotent."""

    run_key: str


@dataclass(frozen=True, slots=True)
class StartTask:
    """Start the runtime of one leaf attempt with ``params`` (committed STARTING -> RUNNING).
    Duplicate: the external runtime is started at most once per attempt."""

    run_key: str
    path: str
    attempt: int
    step_type: str
    params: Mapping[str, Value] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class RunEnded:
    """A run reached a terminal status: the run strategy may dequeue others. Duplicate: the
    strategy re-plans from the store and finds nothing more to do."""

    run_key: str


DurableMessage: TypeAlias = StartFlow | StopFlow | StartTask | RunEnded
_DURABLE: dict[str, type[Any]] = {c.__name__: c for c in (StartFlow, StopFlow, StartTask, RunEnded)}


# ---- local (in memory) -----------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class WakeUp:
    """Call the core's ``execute`` for ``path`` now (a status change, a decide, a Wake effect)."""

    path: str


@dataclass(frozen=True, slots=True)
class TaskUpdate:
    """A task actor's word on its attempt: the runtime's ``report`` (None: still running; a ping).
    Handled at once by the flow: ``execute`` and, on a terminal status, ``decide``."""

    path: str
    attempt: int
    report: RuntimeReport | None = None
    poll_at: float | None = None


@dataclass(frozen=True, slots=True)
class RuntimeDone:
    """The external runtime of the task actor's attempt finished (or is unrecorded)."""

    report: RuntimeReport


@dataclass(frozen=True, slots=True)
class RetryDue:
    """A retry backoff or a workflow timeout is due: ``decide`` again (FlowTaskRetry / FLOW_TIMEOUT)."""

    at: float


@dataclass(frozen=True, slots=True)
class Refresh:
    """FLOW_REFRESH: write the flow's state behind (de-duplicated per flow)."""


@dataclass(frozen=True, slots=True)
class Reconcile:
    """FLOW_RECONCILE: full ``decide`` and repair of lost task updates and task starts;
    ``resume`` after a takeover (RUNNING steps are executed too, re-arming their pings)."""

    resume: bool = False


@dataclass(frozen=True, slots=True)
class Shutdown:
    """Stop the actor: cancel its timers, drop its mailbox (a crash or a lost lease)."""


LocalMessage: TypeAlias = WakeUp | TaskUpdate | RuntimeDone | RetryDue | Refresh | Reconcile | Shutdown
Message: TypeAlias = DurableMessage | LocalMessage


def encode_message(message: DurableMessage) -> str:
    """The outbox row text of a durable message: ``{"kind": ClassName, ...fields}``."""
    body: dict[str, Any] = {"kind": type(message).__name__}
    for name in message.__slots__:
        value = getattr(message, name)
        body[name] = dict(value) if isinstance(value, Mapping) else value
    return json.dumps(body, separators=(",", ":"), sort_keys=True)


def decode_message(text: str) -> DurableMessage:
    """Parse an outbox row text back into its message; EngineError names what is wrong."""
    try:
        body = json.loads(text)
        cls = _DURABLE[body.pop("kind")]
        message: DurableMessage = cls(**body)
    except (ValueError, KeyError, TypeError) as exc:
        raise EngineError(
            f"outbox message {text[:120]!r} is not a durable actor message ({exc}); it was written by another "
            "version of the engine or edited by hand: delete the row or run the matching engine version"
        ) from exc
    return message
