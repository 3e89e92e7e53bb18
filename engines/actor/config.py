"""Configuration of the actor engine: Maestro's new flow engine timers (MAESTRO-SEMANTICS.md §8), all tunable.

One frozen object, passed in; nothing reads global settings. The defaults are HEAD's values: group
heartbeat 11 s and lease expiry 56 s, reconciliation every 30 s + U(0, 1 s), flow refresh (the
write-behind of a flow's overview) 3 s + U(0, 1 s), the per-status callback delays of §8.1, and an
actor error retry of 5 s. ``groups`` is G in ``group = hash(workflow, instance, run) mod G``.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from types import MappingProxyType

from engines.api import EngineError
from engines.core.statuses import StepStatus
from engines.store.latency import LatencyModel

__all__ = ["DEFAULT_CALLBACKS", "ActorConfig"]

DEFAULT_CALLBACKS: Mapping[StepStatus, float] = MappingProxyType(
    {
        StepStatus.RUNNING: 3.0,
        StepStatus.WAITING_FOR_PERMITS: 15.0,
        StepStatus.WAITING_FOR_SIGNALS: 5.0,
        StepStatus.PAUSED: 5.0,
        StepStatus.FINISHING: 5.0,
    }
)


@dataclass(frozen=True, slots=True)
class ActorConfig:
    """How the actor engine's nodes hold groups, persist, re-deliver and reconcile.

    ``nodes``: engine nodes sharing one store (the factory's ``nodes=`` overrides it). ``groups``: G.
    ``heartbeat`` / ``lease_expiry``: a node renews each owned group's lease every ``heartbeat``
    seconds; a lease not renewed for ``lease_expiry`` seconds may be claimed by another node with
    generation + 1. ``reconcile`` (+ U(0, ``reconcile_jitter``)): how often a node compares its flows'
    memory with the store and repairs. ``sweep_interval`` / ``delivery_deadline``: an outbox row not
    acknowledged ``delivery_deadline`` seconds after it was written is re-delivered by the sweeper,
    which looks every ``sweep_interval`` seconds. ``flow_refresh`` (+ U(0, ``flow_refresh_jitter``)):
    the write-behind delay of a flow's state after a non-terminal update (de-duplicated).
    ``callbacks``: the next-call delay per status when a call changed nothing (§8.1; RUNNING's 3 s is
    the lazy step-timeout ping). ``error_retry``: how long an actor waits before retrying a failed
    store write. ``latency``: the store round-trip model (replay; the same model the legacy uses)."""

    nodes: int = 1
    groups: int = 8
    heartbeat: float = 11.0
    lease_expiry: float = 56.0
    reconcile: float = 30.0
    reconcile_jitter: float = 1.0
    sweep_interval: float = 5.0
    delivery_deadline: float = 10.0
    flow_refresh: float = 3.0
    flow_refresh_jitter: float = 1.0
    callbacks: Mapping[StepStatus, float] = field(default_factory=lambda: DEFAULT_CALLBACKS)
    error_retry: float = 5.0
    latency: LatencyModel = field(default_factory=LatencyModel)

    def __post_init__(self) -> None:
        problems = []
        if self.nodes < 1:
            problems.append(f"nodes={self.nodes} (need at least 1)")
        if self.groups < 1:
            problems.append(f"groups={self.groups} (need at least 1)")
        if not 0 < self.heartbeat < self.lease_expiry:
            problems.append(
                f"heartbeat={self.heartbeat}, lease_expiry={self.lease_expiry} (need 0 < heartbeat < lease_expiry)"
            )
        for name in ("reconcile", "sweep_interval", "delivery_deadline", "flow_refresh", "error_retry"):
            if getattr(self, name) <= 0:
                problems.append(f"{name}={getattr(self, name)} (need > 0 seconds)")
        if self.reconcile_jitter < 0 or self.flow_refresh_jitter < 0:
            problems.append("jitters must be >= 0 seconds")
        if any(v < 0 for v in self.callbacks.values()):
            problems.append(f"callbacks={dict(self.callbacks)} (need >= 0 seconds)")
        if problems:
            raise EngineError("invalid ActorConfig: " + "; ".join(problems) + "; fix these fields")

    @property
    def running_ping(self) -> float:
        """The RUNNING callback: how often a running step is pinged for lazy step-timeout detection."""
        return self.callbacks.get(StepStatus.RUNNING, 3.0)
