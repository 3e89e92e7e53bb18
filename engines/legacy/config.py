"""Configuration of the legacy polling engine: Maestro's legacy (Conductor) schedule, all of it tunable.

The defaults are the values MAESTRO-SEMANTICS.md §7.1 read from Maestro's LEGACY ``application.yml``:
a 100 ms queue poll, a 1 s default callback, 3 s for RUNNING / WAITING_FOR_PERMITS /
WAITING_FOR_SIGNALS / PAUSED, and a forced 0 s callback for the first two cycles of a step that is
still CREATED. With them a chained step takes ~4-5 s to start, which is the point: the shadow harness
must see the legacy engine as production saw it.

One frozen object, passed in; nothing reads global settings.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from types import MappingProxyType

from engines.api import EngineError
from engines.core.statuses import StepStatus

__all__ = ["DEFAULT_STATUS_CALLBACKS", "LegacyConfig", "RoundTripLatency"]

DEFAULT_STATUS_CALLBACKS: Mapping[StepStatus, float] = MappingProxyType(
    {
        StepStatus.RUNNING: 3.0,
        StepStatus.WAITING_FOR_PERMITS: 3.0,
        StepStatus.WAITING_FOR_SIGNALS: 3.0,
        StepStatus.PAUSED: 3.0,
    }
)


@dataclass(frozen=True, slots=True)
class RoundTripLatency:
    """The seeded latency of one store round trip (replay only): lognormal, heavy-tailed.

    ``median`` seconds with log-space spread ``sigma`` (sigma 0.8 puts p99 at ~6x the median), capped
    at ``cap`` so one freak draw cannot stall a replay. ``median == 0`` turns latency off."""

    median: float = 0.002
    sigma: float = 0.8
    cap: float = 0.5


@dataclass(frozen=True, slots=True)
class LegacyConfig:
    """How the legacy engine polls, claims and re-queues.

    ``workers``: stateless workers polling the queue (Maestro ran 1 thread per task type; a shared
    queue with N workers is the scaled-out deployment). ``poll_interval`` and ``poll_jitter`` (a
    uniform fraction of the interval added to each poll, seeded) set when an idle worker looks again.
    ``claim_timeout``: a claimed task whose worker has not acknowledged it within this many seconds is
    delivered again (at-least-once). ``first_polling_cycles`` / ``first_polling_window``: the
    "callback 0" override holds while a CREATED step's task has had at most this many cycles and was
    created less than this many seconds ago. ``start_callback``: delay after the cycle that launched a
    runtime (Maestro runs start() and execute() in one poll; our core needs two calls).
    ``short_circuit_containers``: a FOREACH / SUBWORKFLOW step still in its first polling window runs
    straight to RUNNING in one cycle (``MaestroTask.isFirstPolling``)."""

    workers: int = 1
    poll_interval: float = 0.1
    poll_jitter: float = 0.0
    default_callback: float = 1.0
    status_callbacks: Mapping[StepStatus, float] = field(default_factory=lambda: DEFAULT_STATUS_CALLBACKS)
    first_polling_cycles: int = 2
    first_polling_window: float = 3.0
    start_callback: float = 0.0
    claim_timeout: float = 60.0
    short_circuit_containers: bool = True
    latency: RoundTripLatency = field(default_factory=RoundTripLatency)

    def __post_init__(self) -> None:
        problems = []
        if self.workers < 1:
            problems.append(f"workers={self.workers} (need at least 1)")
        if self.poll_interval <= 0:
            problems.append(f"poll_interval={self.poll_interval} (need > 0 seconds)")
        if not 0 <= self.poll_jitter <= 1:
            problems.append(f"poll_jitter={self.poll_jitter} (a fraction of the interval, 0..1)")
        if self.claim_timeout <= 0:
            problems.append(f"claim_timeout={self.claim_timeout} (need > 0 seconds)")
        if self.default_callback < 0 or self.start_callback < 0:
            problems.append("callbacks must be >= 0 seconds")
        if any(v < 0 for v in self.status_callbacks.values()):
            problems.append(f"status_callbacks={dict(self.status_callbacks)} (need >= 0 seconds)")
        if self.latency.median < 0 or self.latency.sigma < 0 or self.latency.cap < 0:
            problems.append(f"latency={self.latency} (need non-negative values)")
        if problems:
            raise EngineError("invalid LegacyConfig: " + "; ".join(problems) + "; fix these fields")

    def callback_for(self, status: StepStatus) -> float:
        """Maestro's ``StepRuntimeFixedCallbackDelayPolicy``: the delay for the status after a cycle."""
        return self.status_callbacks.get(status, self.default_callback)
