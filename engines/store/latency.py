"""The store round-trip latency model: seeded, configurable, identical for both engines.

Store calls in replay are synchronous sqlite3 calls and take zero virtual time. To still charge each
engine for its database traffic, every round trip draws a latency from this model and the store
*accumulates* it; the engine then awaits ``store.settle(clock)``, which sleeps the accumulated amount
on the clock. An engine that makes more round trips waits longer: the latency difference comes from
the architecture, not from the model.

The default is heavy-tailed: lognormal with median 2 ms and sigma 0.6 (p99 about 8 ms), capped at
50 ms, as a networked PostgreSQL in the same region behaves.
"""

from __future__ import annotations

import math
import random
from dataclasses import dataclass
from enum import StrEnum

__all__ = ["LatencyKind", "LatencyModel", "LatencySampler"]


class LatencyKind(StrEnum):
    LOGNORMAL = "lognormal"
    CONSTANT = "constant"
    ZERO = "zero"


@dataclass(frozen=True, slots=True)
class LatencyModel:
    """How long one store round trip takes, in seconds.

    ``median`` is the lognormal median (``exp(mu)``) or the constant value; ``sigma`` the lognormal
    shape; every draw is capped at ``cap``."""

    kind: LatencyKind = LatencyKind.LOGNORMAL
    median: float = 0.002
    sigma: float = 0.6
    cap: float = 0.05

    def __post_init__(self) -> None:
        if (
            self.median < 0
            or self.sigma < 0
            or self.cap < 0
            or not math.isfinite(self.median + self.sigma + self.cap)
        ):
            raise ValueError(
                f"LatencyModel needs finite non-negative median, sigma and cap; got median={self.median}, "
                f"sigma={self.sigma}, cap={self.cap}"
            )

    @classmethod
    def zero(cls) -> LatencyModel:
        """No simulated latency (live mode, where the database takes real time)."""
        return cls(kind=LatencyKind.ZERO, median=0.0, sigma=0.0, cap=0.0)

    @classmethod
    def constant(cls, seconds: float) -> LatencyModel:
        return cls(kind=LatencyKind.CONSTANT, median=seconds, sigma=0.0, cap=seconds)

    def sampler(self, seed: int) -> LatencySampler:
        return LatencySampler(self, seed)


class LatencySampler:
    """Draws round-trip latencies from a model with its own ``random.Random(seed)``.

    Not thread-safe; one per store."""

    __slots__ = ("_cap", "_kind", "_median", "_mu", "_rng", "_sigma")

    def __init__(self, model: LatencyModel, seed: int) -> None:
        self._rng = random.Random(seed)
        self._kind = model.kind
        self._median = model.median
        self._mu = math.log(model.median) if model.median > 0 else 0.0
        self._sigma = model.sigma
        self._cap = model.cap

    def draw(self) -> float:
        if self._kind is LatencyKind.ZERO:
            return 0.0
        if self._kind is LatencyKind.CONSTANT or self._sigma == 0.0 or self._median == 0.0:
            return min(self._median, self._cap)
        return min(self._rng.lognormvariate(self._mu, self._sigma), self._cap)
