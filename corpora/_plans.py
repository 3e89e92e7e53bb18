"""Retry policies and recorded attempt sequences for the built-in corpus.

The generator must record *every* attempt an engine could ask for (a missing attempt is a finding
during replay), so each leaf step gets a :class:`LeafPlan`: an outcome sequence that ends in success
or exhausts the step's retry limits exactly as Maestro counts them (a limit of L allows L retries of
that class; the three counters are independent; ``fatal_error`` is never retried), plus the backoff
delays an engine will wait between the attempts (Maestro's formula: the exponent is the number of
earlier retries of the same class; defaults merged per backoff type).
"""

from __future__ import annotations

import math
import random
from dataclasses import dataclass, field, replace

from corpora.model import Backoff, BackoffType, JsonValue, Outcome, Param, RetryPolicy

__all__ = [
    "NEAR_TIMEOUT_MARGIN",
    "NEAR_TIMEOUT_OVERRUN",
    "LeafPlan",
    "ResolvedRetry",
    "choose_retry_policy",
    "heavy_tail_duration",
    "plan_leaf",
    "with_timeout_retries",
]

# Keeps every recorded duration clearly on one side of a step timeout, whatever the engine's latency.
TIMEOUT_MARGIN = 120.0
#: The closest a *succeeding* attempt of a "near timeout" plan ends before its step timeout. An engine
#: checks the timeout before it reads the runtime's result, so the success must be noticed before the
#: timeout instant: the legacy engine notices a job's end at its next RUNNING poll (3 s) plus its queue,
#: which stays far below this in the small traces that get near-timeout plans.
NEAR_TIMEOUT_MARGIN = 20.0
#: How far past its step timeout a *timed-out* attempt of a "near timeout" plan runs at most. Any
#: distance past the timeout is race-free: every call from the timeout instant on finds the timeout
#: first, whatever the runtime reports.
NEAR_TIMEOUT_OVERRUN = 30.0
#: The share of attempts of a step with a timeout that a "near timeout" plan moves close to it.
NEAR_TIMEOUT_RATE = 0.25
#: Only steps with a timeout up to this many seconds get near-timeout attempts: a success close to a
#: timeout of an hour keeps the legacy engine polling a RUNNING step every 3 s for that hour (measured on
#: the main job's corpus: near successes under timeouts up to 3,600 s cost +10 % CPU; up to 900 s, +2 %).
NEAR_TIMEOUT_MAX = 900.0

_CLASSES = {Outcome.USER_ERROR: "error", Outcome.PLATFORM_ERROR: "platform", Outcome.TIMEOUT: "timeout"}


@dataclass(frozen=True, slots=True)
class ResolvedRetry:
    """A retry policy with defaults merged in and ``$param`` values resolved: what an engine will use."""

    error_limit: int = 2
    platform_limit: int = 10
    timeout_limit: int = 0
    fixed: bool = False
    base: dict[str, float] = field(default_factory=lambda: {"error": 60.0, "platform": 60.0, "timeout": 60.0})
    exponent: dict[str, float] = field(
        default_factory=lambda: {"error": 2.0, "platform": 2.0, "timeout": 2.0}
    )
    cap: dict[str, float] = field(
        default_factory=lambda: {"error": 600.0, "platform": 3600.0, "timeout": 3600.0}
    )

    def limit(self, outcome: Outcome) -> int:
        return {"error": self.error_limit, "platform": self.platform_limit, "timeout": self.timeout_limit}[
            _CLASSES[outcome]
        ]

    def delay(self, outcome: Outcome, earlier_retries: int) -> float:
        """Seconds between a failed attempt of class ``outcome`` and the next attempt."""
        klass = _CLASSES[outcome]
        if self.fixed:
            return self.base[klass]
        return float(min(int(self.base[klass] * self.exponent[klass] ** earlier_retries), self.cap[klass]))


def choose_retry_policy(
    rng: random.Random, workflow_params: dict[str, Param]
) -> tuple[RetryPolicy | None, ResolvedRetry]:
    """Mostly Maestro's defaults; otherwise explicit fixed or exponential policies, some driven by
    workflow params (``"$max_user_retries"``), which are added to ``workflow_params`` when needed."""
    roll = rng.random()
    if roll < 0.6:
        return None, ResolvedRetry()
    error_limit = rng.choice([0, 1, 2, 3, 4])
    platform_limit = rng.choice([1, 2, 3, 5, 10])
    if roll < 0.75:  # fixed backoff
        secs = {k: float(rng.choice([60, 90, 120, 300])) for k in ("error", "platform", "timeout")}
        backoff = Backoff(
            type=BackoffType.FIXED_BACKOFF,
            error_retry_backoff_in_secs=int(secs["error"]),
            platform_retry_backoff_in_secs=int(secs["platform"]),
        )
        secs["timeout"] = 60.0  # not set above: the fixed default
        resolved = ResolvedRetry(error_limit, platform_limit, 0, fixed=True, base=secs)
        return RetryPolicy(error_limit, platform_limit, backoff=backoff), resolved
    if roll < 0.9:  # explicit exponential
        base = float(rng.choice([60, 120, 180]))
        exponent = float(rng.choice([2, 3]))
        cap = float(rng.choice([900, 1800, 3600]))
        backoff = Backoff(
            type=BackoffType.EXPONENTIAL_BACKOFF,
            error_retry_backoff_in_secs=int(base),
            error_retry_exponent=int(exponent),
            error_retry_limit_in_secs=int(cap),
        )
        resolved = ResolvedRetry(
            error_limit,
            platform_limit,
            0,
            base={"error": base, "platform": 60.0, "timeout": 60.0},
            exponent={"error": exponent, "platform": 2.0, "timeout": 2.0},
            cap={"error": cap, "platform": 3600.0, "timeout": 3600.0},
        )
        return RetryPolicy(error_limit, platform_limit, backoff=backoff), resolved
    # param-driven: "$name" resolved against workflow params when the first attempt is created
    limit_param = workflow_params.setdefault("max_user_retries", Param(value=rng.choice([1, 2, 3])))
    backoff_param = workflow_params.setdefault("retry_backoff_secs", Param(value=rng.choice([60, 90, 120])))
    assert isinstance(limit_param.value, int)
    assert isinstance(backoff_param.value, int)
    backoff = Backoff(type=BackoffType.FIXED_BACKOFF, error_retry_backoff_in_secs="$retry_backoff_secs")
    resolved = ResolvedRetry(
        limit_param.value,
        10,
        0,
        fixed=True,
        base={"error": float(backoff_param.value), "platform": 60.0, "timeout": 60.0},
    )
    return RetryPolicy(error_retry_limit="$max_user_retries", backoff=backoff), resolved


def heavy_tail_duration(rng: random.Random, median: float = 90.0) -> float:
    """A lognormal duration: mostly a minute or two, sometimes seconds, now and then hours (cap 6 h)."""
    return round(min(max(rng.lognormvariate(math.log(median), 1.3), 1.0), 6 * 3600.0), 3)


@dataclass(frozen=True, slots=True)
class LeafPlan:
    """The attempts one leaf step records in one run, and how an engine will time them."""

    outcomes: tuple[Outcome, ...]
    durations: tuple[float, ...]
    delays: tuple[float, ...]  # backoff before attempts 2..n
    timeout: float | None = None
    terminal: str | None = None  # None (ends succeeded), "failed" (FATALLY_FAILED) or "timed_out"
    outputs: dict[str, JsonValue] = field(default_factory=dict)

    def elapsed(self, k: int) -> float:
        """How long attempt ``k`` (0-based) runs under an engine: a step timeout cuts a timeout attempt."""
        if self.outcomes[k] is Outcome.TIMEOUT and self.timeout is not None:
            return self.timeout
        return self.durations[k]


def _sequence(
    rng: random.Random, kind: str, retry: ResolvedRetry, timeout: float | None
) -> tuple[list[Outcome], str | None]:
    s, u, p, t, f = (
        Outcome.SUCCEEDED,
        Outcome.USER_ERROR,
        Outcome.PLATFORM_ERROR,
        Outcome.TIMEOUT,
        Outcome.FATAL_ERROR,
    )
    if kind == "retry":
        options: list[list[Outcome]] = []
        if retry.error_limit >= 1:
            options.append([u] * rng.randint(1, retry.error_limit) + [s])
        if retry.platform_limit >= 1:
            options.append([p] * rng.randint(1, min(3, retry.platform_limit)) + [s])
        if retry.error_limit >= 1 and retry.platform_limit >= 1:
            options.append([u, p, s])
        if timeout is not None and retry.timeout_limit >= 1:
            options += [[t] * rng.randint(1, retry.timeout_limit) + [s]] * 2
        return (rng.choice(options) if options else [s]), None
    if kind == "fail":
        options = [[u] * (retry.error_limit + 1), [f]]
        if retry.error_limit >= 1:
            options.append([u, f])
        if retry.platform_limit <= 3:
            options.append([p] * (retry.platform_limit + 1))
        return rng.choice(options), "failed"
    if kind == "timed_out":
        assert timeout is not None
        return [t] * (retry.timeout_limit + 1), "timed_out"
    return [s], None


def plan_leaf(
    rng: random.Random,
    kind: str,
    retry: ResolvedRetry,
    *,
    timeout: float | None = None,
    median: float = 90.0,
    outputs: dict[str, JsonValue] | None = None,
    near: random.Random | None = None,
) -> LeafPlan:
    """A plan of ``kind`` ``ok`` / ``retry`` (errors, then success) / ``fail`` / ``timed_out``.

    With ``near`` (a random stream of its own, so the other draws stay as they were) and a ``timeout`` of at
    most :data:`NEAR_TIMEOUT_MAX`, some attempts end close to the timeout: a success between :data:`NEAR_TIMEOUT_MARGIN` and twice that
    before it, a timeout at most :data:`NEAR_TIMEOUT_OVERRUN` past it. Without, every attempt ends at
    least :data:`TIMEOUT_MARGIN` away from it."""
    outcomes, terminal = _sequence(rng, kind, retry, timeout)
    durations: list[float] = []
    for outcome in outcomes:
        d = heavy_tail_duration(rng, median)
        if timeout is not None:
            if outcome is Outcome.TIMEOUT:  # clearly past the timeout, so it fires on every engine
                d = round(timeout + TIMEOUT_MARGIN + rng.expovariate(1 / 600), 3)
            else:  # clearly inside it
                d = min(d, timeout - TIMEOUT_MARGIN)
            if near is not None and timeout <= NEAR_TIMEOUT_MAX and near.random() < NEAR_TIMEOUT_RATE:
                if outcome is Outcome.TIMEOUT:
                    d = round(timeout + near.uniform(0.5, NEAR_TIMEOUT_OVERRUN), 3)
                else:
                    d = round(timeout - near.uniform(NEAR_TIMEOUT_MARGIN, 2 * NEAR_TIMEOUT_MARGIN), 3)
        durations.append(d)
    delays: list[float] = []
    seen: dict[Outcome, int] = {}
    for outcome in outcomes[:-1]:
        delays.append(retry.delay(outcome, seen.get(outcome, 0)))
        seen[outcome] = seen.get(outcome, 0) + 1
    return LeafPlan(
        tuple(outcomes),
        tuple(durations),
        tuple(delays),
        timeout,
        terminal,
        dict(outputs or {}) if terminal is None else {},
    )


def with_timeout_retries(
    policy: RetryPolicy | None, retry: ResolvedRetry, limit: int
) -> tuple[RetryPolicy, ResolvedRetry]:
    """The same policy allowing ``limit`` retries after a step timeout (Maestro's default is none)."""
    return (
        replace(policy or RetryPolicy(), timeout_retry_limit=limit),
        replace(retry, timeout_limit=limit),
    )
