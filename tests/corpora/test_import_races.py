"""--race-margin: synthesized Maestro failures are placed so engines of different latency agree.

A foreach of 8 Sleep iterations (30 s each, concurrency 2) ends iterations in lock-step, so a
failing iteration ends exactly when a slot frees: with margin 0 whether the next iteration launches
depends on orchestration latency (the oracle has none, the legacy engine seconds); with a margin the
failure is moved into a quiet gap and both engines launch the same iterations.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from corpora.importers import ImportOptions
from corpora.importers._maestro_races import backoff_delays
from corpora.model import Backoff, BackoffType, Outcome, Trace
from engines.api import ReplayOptions, RunExecution
from engines.core.oracle import CoreOracle
from engines.legacy import LegacyEngine
from tests.corpora._import_helpers import SHARED, import_all

_FAN = {
    "properties": {"owner": "tester"},
    "workflow": {
        "id": "race-fan",
        "steps": [
            {
                "foreach": {
                    "id": "fan",
                    "concurrency": 2,
                    "params": {
                        "loop_params": {
                            "value": {"i": {"value": [1, 2, 3, 4, 5, 6, 7, 8], "type": "long_array"}},
                            "type": "MAP",
                        }
                    },
                    "steps": [
                        {
                            "step": {
                                "id": "work",
                                "type": "Sleep",
                                "retry_policy": {"error_retry_limit": 0},
                                "params": {"sleep_seconds": {"value": 30, "type": "LONG"}},
                            }
                        }
                    ],
                    "transition": {"successors": {"after": "true"}},
                }
            },
            {"step": {"id": "after", "type": "NoOp"}},
        ],
    },
}


def _fan_trace(tmp_path: Path, seed: int, margin: float) -> Trace:
    path = tmp_path / "race-fan.json"
    path.write_text(json.dumps(_FAN), encoding="utf-8")
    (item,) = import_all(
        "maestro",
        path,
        options=ImportOptions(seed=seed, failure_rate=0.2, retry_rate=0.0, race_margin=margin),
    )
    assert item.trace is not None, item.error
    return item.trace


def _launched(run: RunExecution) -> list[tuple[str, int, str]]:
    return sorted((a.path, a.attempt, a.status) for a in run.attempts)


def _agree(trace: Trace) -> bool:
    oracle = CoreOracle().replay(trace, ReplayOptions(seed=1)).runs[0]
    legacy = LegacyEngine().replay(trace, ReplayOptions(seed=1)).runs[0]
    return _launched(oracle) == _launched(legacy) and oracle.status == legacy.status


class TestRaceMargin:
    def test_margin_zero_races_between_engines(self, tmp_path: Path) -> None:
        """With margin 0 some seeds make the oracle and the legacy engine launch different iterations."""
        assert not all(_agree(_fan_trace(tmp_path, seed, 0.0)) for seed in (3, 4))

    def test_default_margin_makes_engines_agree(self, tmp_path: Path) -> None:
        """With the default margin every seed's failures launch the same iterations on oracle and legacy."""
        assert ImportOptions().race_margin == 120.0
        for seed in range(8):
            assert _agree(_fan_trace(tmp_path, seed, 120.0)), seed

    def test_margin_only_lengthens_final_failed_attempts(self, tmp_path: Path) -> None:
        """The margin keeps every outcome and attempt, and only lengthens the last attempt of failing steps."""
        for seed in range(8):
            raw = {(a.path, a.attempt): a for a in _fan_trace(tmp_path, seed, 0.0).runs[0].attempts}
            placed = {(a.path, a.attempt): a for a in _fan_trace(tmp_path, seed, 120.0).runs[0].attempts}
            assert raw.keys() == placed.keys()
            for key, attempt in raw.items():
                assert placed[key].outcome is attempt.outcome
                if attempt.outcome is Outcome.SUCCEEDED:
                    assert placed[key].duration == attempt.duration
                else:
                    assert placed[key].duration >= attempt.duration

    def test_placed_failures_keep_the_margin_from_other_ends(self, tmp_path: Path) -> None:
        """On the oracle, a failing iteration ends at least 120 s after every other attempt's end before it."""
        trace = _fan_trace(tmp_path, 3, 120.0)
        run = CoreOracle().replay(trace, ReplayOptions(seed=1)).runs[0]
        failed = [a for a in run.attempts if a.outcome == "user_error"]
        assert failed
        for attempt in failed:
            assert attempt.ended_at is not None
            others = [
                a.ended_at
                for a in run.attempts
                if a.outcome is not None
                and a.path != attempt.path
                and a.ended_at is not None
                and a.ended_at <= attempt.ended_at
            ]
            assert all(attempt.ended_at - t >= 120.0 for t in others), attempt.path

    def test_trace_is_tagged_with_its_margin(self, tmp_path: Path) -> None:
        """A trace imported with a margin says so in its tags; margin 0 adds no tag."""
        assert "race-margin:120" in _fan_trace(tmp_path, 0, 120.0).metadata.tags
        assert not any(t.startswith("race-margin") for t in _fan_trace(tmp_path, 0, 0.0).metadata.tags)

    @pytest.mark.parametrize("margin", [-1.0, float("nan"), 86_400.0])
    def test_bad_margin_is_rejected(self, margin: float) -> None:
        """A negative, NaN or day-long margin is a ValueError naming race_margin."""
        with pytest.raises(ValueError, match="race_margin"):
            ImportOptions(race_margin=margin)


def _timed_chain(tmp_path: Path, timeout: int) -> Trace:
    steps = [
        {
            "step": {
                "id": f"s{i}",
                "type": "Sleep",
                "params": {"sleep_seconds": {"value": 40, "type": "LONG"}},
                "transition": {"successors": {f"s{i + 1}": "true"}} if i < 3 else {},
            }
        }
        for i in range(4)
    ]
    path = tmp_path / "timed-chain.json"
    path.write_text(
        json.dumps({"workflow": {"id": "timed-chain", "timeout": timeout, "steps": steps}}), encoding="utf-8"
    )
    (item,) = import_all("maestro", path, options=ImportOptions(failure_rate=0.0, retry_rate=0.0))
    assert item.trace is not None, item.error
    return item.trace


class TestWorkflowTimeoutRace:
    def test_timeout_amid_step_ends_is_tagged(self, tmp_path: Path) -> None:
        """A 100 s workflow timeout over a chain of 40 s sleeps (ends at 80 s, 120 s) is tagged as racy."""
        assert "race-margin-unmet:workflow-timeout" in _timed_chain(tmp_path, 100).metadata.tags

    def test_timeout_far_above_the_run_is_not_tagged(self, tmp_path: Path) -> None:
        """A one-day timeout over a 160 s run races with nothing and is not tagged."""
        assert not any("unmet" in t for t in _timed_chain(tmp_path, 86_400).metadata.tags)


class TestRaceMarginCommand:
    def test_cli_margin_reaches_the_trace(self, tmp_path: Path) -> None:
        """`shadow corpus import --race-margin 30` writes traces tagged with that margin."""
        from corpora.io import read_traces
        from shadow.cli import main

        source = tmp_path / "race-fan.json"
        source.write_text(json.dumps(_FAN), encoding="utf-8")
        out = tmp_path / "out.jsonl"
        assert (
            main(
                ["corpus", "import", "--from", "maestro", str(source), "-o", str(out), "--race-margin", "30"]
            )
            == 0
        )
        (item,) = list(read_traces([out]))
        assert item.trace is not None
        assert "race-margin:30" in item.trace.metadata.tags

    def test_cli_negative_margin_exits_4(self, tmp_path: Path) -> None:
        """A negative --race-margin is a bad option: exit 4, nothing imported."""
        from shadow.cli import main

        source = tmp_path / "race-fan.json"
        source.write_text(json.dumps(_FAN), encoding="utf-8")
        code = main(
            [
                "corpus",
                "import",
                "--from",
                "maestro",
                str(source),
                "-o",
                str(tmp_path / "o.jsonl"),
                "--race-margin",
                "-1",
            ]
        )
        assert code == 4


class TestBackoffDelays:
    def test_default_exponential_backoff(self) -> None:
        """Without a backoff, user-error retries wait 60 s, 120 s, 240 s (Maestro's defaults)."""
        outcomes = [Outcome.USER_ERROR] * 3 + [Outcome.SUCCEEDED]
        assert backoff_delays(outcomes, None, {}) == (60.0, 120.0, 240.0)

    def test_fixed_backoff_with_param(self) -> None:
        """A fixed backoff whose base is a "$param" resolves it against the workflow params."""
        backoff = Backoff(type=BackoffType.FIXED_BACKOFF, platform_retry_backoff_in_secs="$wait")
        outcomes = [Outcome.PLATFORM_ERROR, Outcome.PLATFORM_ERROR, Outcome.SUCCEEDED]
        assert backoff_delays(outcomes, backoff, {"wait": 15}) == (15.0, 15.0)

    def test_cap_applies(self) -> None:
        """Exponential user-error backoff is capped at its limit (600 s by default)."""
        assert backoff_delays([Outcome.USER_ERROR] * 6, None, {})[-1] == 600.0


@pytest.mark.corpora
@pytest.mark.skipif(not SHARED.is_dir(), reason=f"real corpora not found at {SHARED} (../shared/corpora)")
class TestNestedForeachRace:
    def _trace(self, margin: float) -> Trace:
        (path,) = (SHARED / "maestro").glob("*sample-nested-foreach-wf.json")
        (item,) = import_all("maestro", path, options=ImportOptions(seed=0, race_margin=margin))
        assert item.trace is not None
        return item.trace

    def test_seed_zero_races_without_margin(self) -> None:
        """The reported race: with margin 0, foreach-job[5] runs on actor but not on legacy (seed 0)."""
        from engines.actor import ActorEngine

        trace = self._trace(0.0)
        legacy = {a.path for a in LegacyEngine().replay(trace, ReplayOptions(seed=1)).runs[0].attempts}
        actor = {a.path for a in ActorEngine().replay(trace, ReplayOptions(seed=1)).runs[0].attempts}
        assert "foreach-job[5]/job.2" in actor - legacy

    def test_default_margin_makes_legacy_and_actor_agree(self) -> None:
        """With the default margin, legacy and actor run the same attempts with the same statuses."""
        from engines.actor import ActorEngine

        trace = self._trace(120.0)
        legacy = LegacyEngine().replay(trace, ReplayOptions(seed=1)).runs[0]
        actor = ActorEngine().replay(trace, ReplayOptions(seed=1)).runs[0]
        assert _launched(legacy) == _launched(actor)
        assert legacy.status == actor.status == "FAILED"

    def test_workflow_timeout_sample_is_tagged(self) -> None:
        """sample-dag-test-10 (a 100 s workflow timeout over sleeps) is tagged as left racy."""
        (path,) = (SHARED / "maestro").glob("*sample-dag-test-10.json")
        (item,) = import_all("maestro", path)
        assert item.trace is not None
        assert "race-margin-unmet:workflow-timeout" in item.trace.metadata.tags
