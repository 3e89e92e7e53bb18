"""Named, seeded fault hooks for the actor engine, parsed from short specs.

Specs (``shadow replay --engine actor --fault SPEC``, repeatable; times are seconds after the first
trigger, in the replay's clock):

``crash:NODE@T``       node NODE (0-based index, or ``*`` for a seeded random node) crashes at T:
                       its memory (flows, tasks, timers, mailboxes) is lost; its leases expire and
                       other nodes take its groups over.
``pause:NODE@T+D``     node NODE stops processing at T for D seconds (a GC pause). Past its lease
                       expiry its groups are taken over; on waking its late writes are rejected by
                       fencing and it stops.
``drop:KIND#N``        the N-th delivery (1-based) of message KIND (StartFlow, StopFlow, StartTask,
                       RunEnded, TaskUpdate, RuntimeDone) is lost in memory.
``dup:KIND#N``         the N-th delivery of message KIND is delivered twice.
``store-fail:KIND#N``  the N-th store round trip of KIND (write, read or commit) fails with
                       "database or disk is full"; the transaction rolls back and the writer retries.

Faults are plain objects handed to the engine: no global switches.
"""

from __future__ import annotations

import random
import re
from collections import Counter
from dataclasses import dataclass, field

from engines.api import EngineError
from engines.store.faults import FailNthRoundTrip

__all__ = ["FAULT_SYNTAX", "FaultPlan", "FaultSpecError", "NodeFault", "parse_faults"]

FAULT_SYNTAX = (
    "actor faults: crash:NODE@T | pause:NODE@T+D | drop:KIND#N | dup:KIND#N | store-fail:write|read|commit#N "
    "(NODE: 0-based index or * for a seeded pick; T, D: seconds after the first trigger; KIND: StartFlow, "
    "StopFlow, StartTask, RunEnded, TaskUpdate, RuntimeDone; N: 1-based occurrence)"
)

MESSAGE_KINDS = frozenset({"StartFlow", "StopFlow", "StartTask", "RunEnded", "TaskUpdate", "RuntimeDone"})

_NODE = re.compile(r"^(crash|pause):(\*|\d+)@(\d+(?:\.\d*)?)(?:\+(\d+(?:\.\d*)?))?$")
_MESSAGE = re.compile(r"^(drop|dup):(\w+)#(\d+)$")
_STORE = re.compile(r"^store-fail:(write|read|commit)#(\d+)$")


class FaultSpecError(EngineError):
    """A fault spec does not parse; the message shows the syntax."""


@dataclass(frozen=True, slots=True)
class NodeFault:
    kind: str  # "crash" | "pause"
    node: int
    at: float
    duration: float = 0.0


@dataclass(slots=True)
class FaultPlan:
    """The parsed faults of one replay, and the counters that decide when message faults fire."""

    node_faults: tuple[NodeFault, ...] = ()
    message_faults: dict[tuple[str, int], str] = field(default_factory=dict)
    store_hook: FailNthRoundTrip | None = None
    seen: Counter[str] = field(default_factory=Counter)
    fired: list[str] = field(default_factory=list)

    def copies(self, kind: str) -> int:
        """How many times to deliver this occurrence of ``kind``: 0 (dropped), 1, or 2 (duplicated).

        Deliveries of the fault-able kinds are counted always (``deliveries_KIND`` counters of the
        record), so a fault campaign can place ``drop:KIND#N`` within the deliveries a run makes."""
        if kind not in MESSAGE_KINDS:
            return 1
        self.seen[kind] += 1
        if not self.message_faults:
            return 1
        action = self.message_faults.get((kind, self.seen[kind]))
        if action is None:
            return 1
        self.fired.append(f"{action}:{kind}#{self.seen[kind]}")
        return 0 if action == "drop" else 2


def parse_faults(specs: tuple[str, ...] | list[str], *, nodes: int, seed: int) -> FaultPlan:
    """Parse fault specs for a cluster of ``nodes``; ``*`` nodes are drawn from ``seed``."""
    rng = random.Random(f"actor-faults:{seed}")
    node_faults: list[NodeFault] = []
    message_faults: dict[tuple[str, int], str] = {}
    hook: FailNthRoundTrip | None = None
    for raw in specs:
        spec = raw.strip()
        if m := _NODE.match(spec):
            kind, node_text, at, duration = m.groups()
            if kind == "pause" and duration is None:
                raise FaultSpecError(
                    f"fault {spec!r}: a pause needs a duration, e.g. pause:0@100+120; {FAULT_SYNTAX}"
                )
            node = rng.randrange(nodes) if node_text == "*" else int(node_text)
            if node >= nodes:
                raise FaultSpecError(
                    f"fault {spec!r}: node {node} does not exist (nodes=0..{nodes - 1}); {FAULT_SYNTAX}"
                )
            node_faults.append(NodeFault(kind, node, float(at), float(duration or 0.0)))
        elif m := _MESSAGE.match(spec):
            action, kind, n = m.groups()
            if kind not in MESSAGE_KINDS or int(n) < 1:
                raise FaultSpecError(f"fault {spec!r}: unknown message kind or N < 1; {FAULT_SYNTAX}")
            message_faults[(kind, int(n))] = action
        elif m := _STORE.match(spec):
            kind, n = m.groups()
            if hook is not None or int(n) < 1:
                raise FaultSpecError(f"fault {spec!r}: at most one store fault, N >= 1; {FAULT_SYNTAX}")
            hook = FailNthRoundTrip(n=int(n), kind=kind)
        else:
            raise FaultSpecError(f"fault {spec!r} does not parse; {FAULT_SYNTAX}")
    return FaultPlan(tuple(node_faults), message_faults, hook)
