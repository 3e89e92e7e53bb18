"""A deliberately broken candidate engine, to show the gate failing for the right reason.

``shadow run CORPUS --db DB --candidate examples.planted_fault:lost_wakeup`` replays the corpus on the
default candidate (the actor engine) but loses, without repair, the wake-up that should start the
second step of every chain (``transform_1`` in the built-in corpus): those runs never finish, and
``shadow gate`` exits 1 naming the stuck runs. ``nox -s shadow -- --planted-fault`` does exactly this.
It is also the smallest example of plugging your own engine into ``shadow run`` (any object that
speaks engines/api.py, built by a ``module:factory``).
"""

from __future__ import annotations

from shadow.testing import PlantedFaultEngine, fake_engine_with_fault

__all__ = ["lost_wakeup", "one_retry_fewer", "oracle_lost_wakeup"]


def lost_wakeup(inner: str = "actor", path: str = "transform_1") -> PlantedFaultEngine:
    """The candidate never starts ``path``: every run that reaches it is stuck."""
    return fake_engine_with_fault("lost_wakeup", path=path, inner=inner)


def one_retry_fewer(inner: str = "actor", path: str = "transform_1") -> PlantedFaultEngine:
    """The candidate gives up on ``path`` one retry early: outcome divergences, no stuck run."""
    return fake_engine_with_fault("one_retry_fewer", path=path, inner=inner)


def oracle_lost_wakeup() -> PlantedFaultEngine:
    """``lost_wakeup`` around the reference oracle instead of the actor engine (fast, for tests)."""
    return lost_wakeup(inner="oracle")
