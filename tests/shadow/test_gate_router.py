"""The router: one engine per root workflow, stable by workflow id, legacy after a rollback."""

from __future__ import annotations

import pytest

from shadow.gate.router import (
    CohortRoute,
    EngineChoice,
    InFlightRun,
    RolloutPhase,
    RootWorkflow,
    Router,
    stable_bucket,
)

IDS = [f"wf-{i}" for i in range(2000)]


def etl(phase: RolloutPhase, percent: float = 0.0) -> CohortRoute:
    return CohortRoute("etl", phase, percent, lambda root: root.owner == "data-eng")


def actor_share(router: Router) -> set[str]:
    return {i for i in IDS if router.route(RootWorkflow(i, owner="data-eng")).engine is EngineChoice.ACTOR}


class TestRouting:
    def test_workflows_in_no_cohort_stay_on_legacy(self) -> None:
        """A workflow no cohort selects runs on legacy even when another cohort is cut over."""
        decision = Router([etl(RolloutPhase.CUTOVER)]).route(RootWorkflow("w", owner="ml"))
        assert (decision.engine, decision.cohort) == (EngineChoice.LEGACY, None)

    @pytest.mark.parametrize(
        ("phase", "engine"),
        [
            (RolloutPhase.SHADOW, EngineChoice.LEGACY),
            (RolloutPhase.CUTOVER, EngineChoice.ACTOR),
            (RolloutPhase.ROLLED_BACK, EngineChoice.LEGACY),
        ],
    )
    def test_phase_decides_the_engine(self, phase: RolloutPhase, engine: EngineChoice) -> None:
        """shadow and rolled_back run on legacy, cutover on the actor engine."""
        assert Router([etl(phase)]).route(RootWorkflow("w", owner="data-eng")).engine is engine

    def test_canary_share_is_near_the_percent_and_stable(self) -> None:
        """A 10 % canary sends about 10 % of workflows to the actor engine, the same ones every time."""
        router = Router([etl(RolloutPhase.CANARY, 10.0)])
        first = actor_share(router)
        assert first == actor_share(Router([etl(RolloutPhase.CANARY, 10.0)]))
        assert 0.08 < len(first) / len(IDS) < 0.12

    def test_raising_the_canary_keeps_earlier_workflows_on_actor(self) -> None:
        """Going from 5 % to 25 % only adds workflows: none flips back to legacy."""
        small = actor_share(Router([etl(RolloutPhase.CANARY, 5.0)]))
        large = actor_share(Router([etl(RolloutPhase.CANARY, 25.0)]))
        assert small < large

    def test_children_follow_their_root(self) -> None:
        """A subworkflow runs where its root runs, whatever cohort it would be in alone."""
        router = Router([etl(RolloutPhase.CUTOVER)])
        root = router.route(RootWorkflow("parent", owner="data-eng"))
        assert router.route_child(root).engine is EngineChoice.ACTOR
        assert router.route(RootWorkflow("child", owner="ml")).engine is EngineChoice.LEGACY

    def test_first_matching_cohort_wins(self) -> None:
        """Cohort order decides a workflow selected by two cohorts."""
        everything = CohortRoute("all", RolloutPhase.SHADOW, 0.0, lambda root: True)
        router = Router([etl(RolloutPhase.CUTOVER), everything])
        assert router.route(RootWorkflow("w", owner="data-eng")).cohort == "etl"
        assert router.route(RootWorkflow("w", owner="ml")).cohort == "all"

    def test_bad_percent_is_refused(self) -> None:
        """A canary percentage outside 0..100 is a configuration error."""
        with pytest.raises(ValueError, match=r"outside 0\.\.100"):
            Router([etl(RolloutPhase.CANARY, 120.0)])


class TestRollbackRestarts:
    def test_rollback_restarts_actor_runs_on_legacy(self) -> None:
        """After a rollback, runs on the actor engine get a restart order on legacy; legacy runs do not."""
        router = Router([etl(RolloutPhase.ROLLED_BACK)])
        runs = [
            InFlightRun(RootWorkflow("a", owner="data-eng"), "r1", EngineChoice.ACTOR),
            InFlightRun(RootWorkflow("b", owner="data-eng"), "r2", EngineChoice.LEGACY),
            InFlightRun(RootWorkflow("c", owner="ml"), "r3", EngineChoice.ACTOR),
        ]
        orders = router.restarts(runs)
        assert [(o.workflow_id, o.run_id, o.restart_on) for o in orders] == [("a", "r1", EngineChoice.LEGACY)]

    def test_canary_change_restarts_nothing(self) -> None:
        """Shrinking a canary affects new runs only: no restart orders."""
        router = Router([etl(RolloutPhase.CANARY, 1.0)])
        runs = [InFlightRun(RootWorkflow(i, owner="data-eng"), "r", EngineChoice.ACTOR) for i in IDS[:50]]
        assert router.restarts(runs) == []


class TestBuckets:
    def test_bucket_is_deterministic_and_salted(self) -> None:
        """The same key and salt give the same bucket; another salt gives another."""
        assert stable_bucket("wf-1", "s") == stable_bucket("wf-1", "s")
        assert stable_bucket("wf-1", "s") != stable_bucket("wf-1", "t")
        assert 0.0 <= stable_bucket("wf-1", "s") < 100.0
