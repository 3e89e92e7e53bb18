"""Which engine runs a root workflow, decided from the rollout state of the cohorts.

The router is the production half of the gate: once a cohort's rollout moves from shadow to canary
to cut-over, new root workflows of that cohort start on the actor engine. Three rules keep a
migration safe:

- **A whole root workflow runs on one engine.** Subworkflow runs follow their root (a parent on
  one engine waiting for a child on the other would need cross-engine signalling nobody tested).
- **Stable by workflow id.** The canary bucket is a hash of the workflow id (salted with the cohort
  name), never of the run, so every run of a workflow lands on the same engine, and raising the
  canary from 5 % to 25 % keeps the first 5 % where they are (buckets are monotone in the percent).
- **Rollback restarts on legacy.** When a cohort rolls back, in-flight runs on the actor engine are
  restarted from the top on the legacy engine (``Router.restarts``), instead of being migrated
  mid-flight between two engines' state models.

This module knows nothing about TOML files or databases (``engines`` must not import ``shadow``):
the caller hands in the cohort routes, each with a predicate over ``RootWorkflow``.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from enum import StrEnum

__all__ = [
    "CohortRoute",
    "EngineChoice",
    "InFlightRun",
    "RestartOrder",
    "RolloutPhase",
    "RootWorkflow",
    "Router",
    "RoutingDecision",
    "stable_bucket",
]


class RolloutPhase(StrEnum):
    """A cohort's place in the migration; ``CANARY`` carries a percentage beside it."""

    SHADOW = "shadow"
    CANARY = "canary"
    CUTOVER = "cutover"
    ROLLED_BACK = "rolled_back"


class EngineChoice(StrEnum):
    LEGACY = "legacy"
    ACTOR = "actor"


@dataclass(frozen=True, slots=True)
class RootWorkflow:
    """What the router (and the cohort selectors) may look at: the workflow, never the run."""

    workflow_id: str
    owner: str = "unknown"
    tags: tuple[str, ...] = ()
    workflow_type: str = "generic"


@dataclass(frozen=True, slots=True)
class CohortRoute:
    """One cohort's rollout state, as the router needs it. ``percent`` matters only in ``CANARY``."""

    cohort: str
    phase: RolloutPhase
    percent: float
    matches: Callable[[RootWorkflow], bool]


@dataclass(frozen=True, slots=True)
class RoutingDecision:
    workflow_id: str
    engine: EngineChoice
    cohort: str | None
    reason: str


@dataclass(frozen=True, slots=True)
class InFlightRun:
    """A run that is executing right now, and where."""

    root: RootWorkflow
    run_id: str
    engine: EngineChoice


@dataclass(frozen=True, slots=True)
class RestartOrder:
    """Stop ``run_id`` on ``stop_on`` and start it again from the top on ``restart_on``."""

    workflow_id: str
    run_id: str
    stop_on: EngineChoice
    restart_on: EngineChoice
    reason: str


def stable_bucket(key: str, salt: str) -> float:
    """A stable position in [0, 100) for ``key``: the same on every machine and every run.

    sha256 rather than ``hash()`` (which is salted per process). Different salts give independent
    buckets, so a cohort selected by ``percent`` and its canary percentage do not line up.
    """
    digest = hashlib.sha256(f"{salt}\x00{key}".encode()).digest()
    return int.from_bytes(digest[:8], "big") / 2**64 * 100.0


class Router:
    """Routes root workflows by the first cohort (in cohort-file order) that selects them.

    Stateless and immutable: build a new router when the rollout state changes. Safe to share
    between threads.
    """

    def __init__(self, routes: Sequence[CohortRoute]) -> None:
        for route in routes:
            if not 0.0 <= route.percent <= 100.0:
                raise ValueError(
                    f"cohort {route.cohort!r}: canary percent {route.percent} is outside 0..100; "
                    "fix the rollout state"
                )
        self._routes = tuple(routes)

    def route(self, root: RootWorkflow) -> RoutingDecision:
        """The engine that starts a new run of ``root`` (and every child run under it)."""
        for route in self._routes:
            if not route.matches(root):
                continue
            engine, why = self._engine_for(route, root.workflow_id)
            return RoutingDecision(root.workflow_id, engine, route.cohort, why)
        return RoutingDecision(
            root.workflow_id, EngineChoice.LEGACY, None, "in no cohort: stays on the legacy engine"
        )

    def route_child(self, parent: RoutingDecision) -> RoutingDecision:
        """A subworkflow run goes where its root went, whatever cohort the child would be in."""
        return RoutingDecision(
            parent.workflow_id, parent.engine, parent.cohort, f"child of a root on {parent.engine}"
        )

    def restarts(self, in_flight: Iterable[InFlightRun]) -> list[RestartOrder]:
        """Runs on the actor engine whose cohort rolled back: restart them on legacy.

        Only a rollback moves a running workflow; a canary that grows or shrinks affects new runs only.
        """
        orders: list[RestartOrder] = []
        for run in in_flight:
            if run.engine is not EngineChoice.ACTOR:
                continue
            decision = self.route(run.root)
            route = next((r for r in self._routes if r.cohort == decision.cohort), None)
            if route is not None and route.phase is RolloutPhase.ROLLED_BACK:
                orders.append(
                    RestartOrder(
                        run.root.workflow_id,
                        run.run_id,
                        EngineChoice.ACTOR,
                        EngineChoice.LEGACY,
                        f"cohort {route.cohort!r} rolled back: restart the run from the top on legacy",
                    )
                )
        return orders

    @staticmethod
    def _engine_for(route: CohortRoute, workflow_id: str) -> tuple[EngineChoice, str]:
        match route.phase:
            case RolloutPhase.SHADOW:
                return EngineChoice.LEGACY, f"cohort {route.cohort!r} is in shadow: legacy runs it"
            case RolloutPhase.ROLLED_BACK:
                return EngineChoice.LEGACY, f"cohort {route.cohort!r} rolled back: legacy runs it"
            case RolloutPhase.CUTOVER:
                return EngineChoice.ACTOR, f"cohort {route.cohort!r} is cut over: the actor engine runs it"
            case RolloutPhase.CANARY:
                bucket = stable_bucket(workflow_id, f"canary:{route.cohort}")
                if bucket < route.percent:
                    return EngineChoice.ACTOR, (
                        f"cohort {route.cohort!r} canary {route.percent:g} %: bucket {bucket:.2f} is inside"
                    )
                return EngineChoice.LEGACY, (
                    f"cohort {route.cohort!r} canary {route.percent:g} %: bucket {bucket:.2f} is outside"
                )
