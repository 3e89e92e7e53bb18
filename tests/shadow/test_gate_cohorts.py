"""Cohort files: format validation, selector semantics and stable hash buckets."""

from __future__ import annotations

from pathlib import Path

import pytest

from shadow.gate.cohorts import Budget, load_cohorts, parse_cohorts
from shadow.gate.errors import CohortFileError
from shadow.gate.router import RootWorkflow

EXAMPLES = Path(__file__).resolve().parents[2] / "examples"


def cohort(**select: object) -> object:
    return parse_cohorts({"cohort": [{"name": "c", "select": select}]})[0]


class TestSelectors:
    def test_empty_selector_takes_everything(self) -> None:
        """A cohort without a select table contains every workflow."""
        (only,) = parse_cohorts({"cohort": [{"name": "all"}]})
        assert only.matches(RootWorkflow("anything"))

    def test_keys_combine_with_and_lists_with_or(self) -> None:
        """Owner and type must both match; either listed owner will do."""
        c = cohort(owner=["a", "b"], workflow_type="etl")
        assert c.matches(RootWorkflow("w", owner="b", workflow_type="etl"))
        assert not c.matches(RootWorkflow("w", owner="b", workflow_type="ml"))
        assert not c.matches(RootWorkflow("w", owner="z", workflow_type="etl"))

    def test_tags_match_any_listed_tag(self) -> None:
        """A workflow carrying one of the listed tags is selected."""
        c = cohort(tags=["etl", "daily"])
        assert c.matches(RootWorkflow("w", tags=("hourly", "daily")))
        assert not c.matches(RootWorkflow("w", tags=("hourly",)))

    def test_workflow_id_globs(self) -> None:
        """Shell-style globs select workflow ids, case-sensitively."""
        c = cohort(workflow_id=["etl.*", "report-??"])
        assert c.matches(RootWorkflow("etl.daily"))
        assert c.matches(RootWorkflow("report-01"))
        assert not c.matches(RootWorkflow("ETL.daily"))

    def test_percent_bucket_is_stable_and_near_the_share(self) -> None:
        """percent = 30 selects about 30 % of ids, and the same ids every time."""
        c = cohort(percent=30)
        ids = [f"wf-{i}" for i in range(4000)]
        chosen = [i for i in ids if c.matches(RootWorkflow(i))]  # type: ignore[attr-defined]
        again = [i for i in ids if c.matches(RootWorkflow(i))]  # type: ignore[attr-defined]
        assert chosen == again
        assert 0.27 < len(chosen) / len(ids) < 0.33


class TestFormat:
    def test_defaults_apply_and_cohort_budget_overrides(self) -> None:
        """[defaults] fills every cohort's budget; a cohort's own budget key wins."""
        cohorts = parse_cohorts({
            "defaults": {"min_traces": 50, "divergence_budget": 0.02},
            "cohort": [{"name": "a"}, {"name": "b", "budget": {"min_traces": 10}}],
        })  # fmt: skip
        assert cohorts[0].budget == Budget(min_traces=50, divergence_budget=0.02)
        assert cohorts[1].budget.min_traces == 10
        assert cohorts[1].budget.divergence_budget == 0.02

    @pytest.mark.parametrize(
        ("document", "where"),
        [
            (
                {"cohort": [{"name": "a", "budget": {"divergence_budget": 0}}]},
                "cohort[0].budget.divergence_budget",
            ),
            ({"cohort": [{"name": "a", "select": {"owners": ["x"]}}]}, "cohort[0].select"),
            ({"cohort": [{"name": "a", "select": {"percent": 150}}]}, "cohort[0].select.percent"),
            ({"cohort": []}, "cohort"),
            ({"cohorts": [{"name": "a"}]}, "(top level)"),
        ],
    )
    def test_bad_documents_name_the_key(self, document: dict[str, object], where: str) -> None:
        """A malformed cohort file raises CohortFileError naming the offending key."""
        with pytest.raises(CohortFileError) as info:
            parse_cohorts(document, source="c.toml")
        assert f"c.toml: {where}" in str(info.value)
        assert "examples/cohorts.toml" in str(info.value)

    def test_duplicate_names_are_refused(self) -> None:
        """Two cohorts with one name would make rollout state ambiguous: refused."""
        with pytest.raises(CohortFileError, match="duplicate cohort name 'a'"):
            parse_cohorts({"cohort": [{"name": "a"}, {"name": "a"}]})

    def test_warn_ratio_above_fail_ratio_is_refused(self) -> None:
        """p99_ratio_warn above p99_ratio_max is a contradiction the file must not hold."""
        with pytest.raises(CohortFileError, match="p99_ratio_warn"):
            parse_cohorts(
                {"cohort": [{"name": "a", "budget": {"p99_ratio_warn": 2.0, "p99_ratio_max": 1.5}}]}
            )

    def test_unreadable_and_non_toml_files(self, tmp_path: Path) -> None:
        """A missing file and a non-TOML file both raise CohortFileError with the path."""
        with pytest.raises(CohortFileError, match="cannot read"):
            load_cohorts(tmp_path / "absent.toml")
        bad = tmp_path / "bad.toml"
        bad.write_text("[[cohort]\nname=", encoding="utf-8")
        with pytest.raises(CohortFileError, match="not valid TOML"):
            load_cohorts(bad)

    def test_shipped_example_loads(self) -> None:
        """examples/cohorts.toml is a valid cohort file."""
        cohorts = load_cohorts(EXAMPLES / "cohorts.toml")
        assert len(cohorts) >= 2


class TestShippedRegistry:
    def test_example_registry_loads_and_matches_foreach_params(self) -> None:
        """examples/known-divergences.toml parses with shadow.noise and its glob catches foreach paths."""
        from shadow.noise import Registry

        registry = Registry.load(EXAMPLES / "known-divergences.toml")
        entry = registry.match("etl|python|fan[*]/inner|params")
        assert entry is not None
        assert entry.id == "foreach-iteration-params"
        assert registry.match("etl|python|fan|params") is None


class TestBucketIndependence:
    def test_cohort_percent_and_canary_percent_are_independent(self) -> None:
        """A 50 % cohort at a 50 % canary puts about a quarter of all workflows on the actor engine."""
        from shadow.gate.router import CohortRoute, EngineChoice, RolloutPhase, Router

        (half,) = parse_cohorts({"cohort": [{"name": "half", "select": {"percent": 50}}]})
        router = Router([CohortRoute("half", RolloutPhase.CANARY, 50.0, half.matches)])
        ids = [f"wf-{i}" for i in range(4000)]
        on_actor = sum(router.route(RootWorkflow(i)).engine is EngineChoice.ACTOR for i in ids)
        assert 0.22 < on_actor / len(ids) < 0.28
