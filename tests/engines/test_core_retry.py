"""Retry policies (§1): defaults, param-driven values, exhaustion, backoff, and their exact virtual times."""

from __future__ import annotations

import pytest

from corpora.model import Backoff, BackoffType, JsonValue, RetryPolicy, StepType
from engines.core.durations import parse_duration_seconds, resolve_timeout_seconds
from engines.core.errors import ParamError
from engines.core.retry import (
    DEFAULT_RETRY_POLICY,
    ParsedRetryPolicy,
    RetryCounters,
    check_policy_shape,
    is_exhausted,
    resolve_retry_policy,
    retry_delay_seconds,
)
from engines.core.statuses import StepStatus as S
from engines.core.testing import T0, attempts_of, make_trace, oracle, rec, step


class TestPolicyParsing:
    def test_defaults(self) -> None:
        """No policy means Maestro's defaults: error 2, platform 10, timeout 0, exponential 60 s x2."""
        p = resolve_retry_policy(None, {})
        assert p.limits() == (2, 10, 0)
        assert p.cap_secs == (600, 3600, 3600)

    def test_partial_backoff_takes_same_type_defaults(self) -> None:
        """A FIXED backoff with one field set gets the other fields from the FIXED default (60 s)."""
        p = resolve_retry_policy(
            RetryPolicy(backoff=Backoff(type=BackoffType.FIXED_BACKOFF, error_retry_backoff_in_secs=5)), {}
        )
        assert p.backoff_type == "FIXED_BACKOFF"
        assert p.base_secs == (5, 60, 60)

    def test_param_driven_values(self) -> None:
        """'$x' and '${x}' are read from workflow params; backoff fields accept duration strings."""
        policy = RetryPolicy(
            error_retry_limit="$lim",
            backoff=Backoff(error_retry_backoff_in_secs="${b} min", error_retry_limit_in_secs="1h"),
        )
        p = resolve_retry_policy(policy, {"lim": 5, "b": "2"})
        assert p.error_retry_limit == 5
        assert p.base_secs[0] == 120
        assert p.cap_secs[0] == 3600
        assert not p.fallback

    @pytest.mark.parametrize(
        "policy",
        [
            RetryPolicy(error_retry_limit="$missing"),
            RetryPolicy(error_retry_limit="abc"),
            RetryPolicy(error_retry_limit=100),
            RetryPolicy(backoff=Backoff(platform_retry_backoff_in_secs=0)),
            RetryPolicy(backoff=Backoff(timeout_retry_limit_in_secs="2 days")),
        ],
    )
    def test_any_error_falls_back_to_whole_default(self, policy: RetryPolicy) -> None:
        """A parse or range error anywhere replaces the whole policy by the default (§1.2), flagged."""
        p = resolve_retry_policy(policy, {})
        assert p.limits() == DEFAULT_RETRY_POLICY.limits()
        assert p.fallback

    def test_definition_time_check(self) -> None:
        """At compile time '$' values count as 2; literal out-of-range values are impossible."""
        assert check_policy_shape(RetryPolicy(error_retry_limit="$x")) is None
        assert check_policy_shape(RetryPolicy(error_retry_limit=500)) is not None

    def test_json_round_trip(self) -> None:
        """The parsed policy survives to_json/from_json unchanged."""
        p = resolve_retry_policy(
            RetryPolicy(error_retry_limit=3, backoff=Backoff(type=BackoffType.FIXED_BACKOFF)), {}
        )
        assert ParsedRetryPolicy.from_json(p.to_json()) == p


class TestBackoff:
    def test_default_platform_delays(self) -> None:
        """Platform delays with the default policy: 60, 120, ..., capped at 3600 (§1.4 table)."""
        delays = [
            retry_delay_seconds(DEFAULT_RETRY_POLICY, RetryCounters(platform=n), S.PLATFORM_FAILED)
            for n in range(10)
        ]
        assert delays == [60, 120, 240, 480, 960, 1920, 3600, 3600, 3600, 3600]

    def test_user_delays_cap_600(self) -> None:
        """User-error delays: 60, 120, 240, 480, then the 600 s cap."""
        delays = [
            retry_delay_seconds(DEFAULT_RETRY_POLICY, RetryCounters(error=n), S.USER_FAILED) for n in range(6)
        ]
        assert delays == [60, 120, 240, 480, 600, 600]

    def test_exponent_counts_same_class_only(self) -> None:
        """The exponent is the number of retries of the same class (platform retries do not count)."""
        assert (
            retry_delay_seconds(DEFAULT_RETRY_POLICY, RetryCounters(error=1, platform=5), S.USER_FAILED)
            == 120
        )

    def test_huge_exponent_hits_cap(self) -> None:
        """An enormous exponent does not overflow: the cap wins."""
        p = ParsedRetryPolicy(exponents=(2**31 - 1, 2, 2))
        assert retry_delay_seconds(p, RetryCounters(error=3), S.USER_FAILED) == 600

    def test_exhaustion(self) -> None:
        """A limit of L allows L retries of that class."""
        assert not is_exhausted(DEFAULT_RETRY_POLICY, RetryCounters(error=1), S.USER_FAILED)
        assert is_exhausted(DEFAULT_RETRY_POLICY, RetryCounters(error=2), S.USER_FAILED)
        assert is_exhausted(DEFAULT_RETRY_POLICY, RetryCounters(), S.TIMEOUT_FAILED)


class TestDurations:
    @pytest.mark.parametrize(
        ("text", "secs"),
        [("30", 30), ("30s", 30), ("5 min", 300), ("1d 2h", 93600), ("1500ms", 1), ("2 hours", 7200)],
    )
    def test_parse(self, text: str, secs: int) -> None:
        """Duration strings read as whole seconds."""
        assert parse_duration_seconds(text) == secs

    def test_timeout_bounds(self) -> None:
        """Step timeouts must be 0 < t <= 120 days; unset is 10 days; strings interpolate workflow params."""
        assert resolve_timeout_seconds(None, {}) == 864000
        assert resolve_timeout_seconds("${t}s", {"t": 90}) == 90
        for bad in (0, -1, "121 days", "soon"):
            with pytest.raises(ParamError):
                resolve_timeout_seconds(bad, {})


class TestRetryTimeline:
    def test_user_error_retries_then_fatal(self) -> None:
        """Three user errors with the default policy: retries at +60 and +120 after each failure, then FATALLY_FAILED."""
        run = oracle(
            make_trace(
                [step("a")],
                [rec("a", 1, "user_error", 5), rec("a", 2, "user_error", 5), rec("a", 3, "user_error", 5)],
            )
        )
        atts = attempts_of(run, "a")
        assert [a.status for a in atts] == ["USER_FAILED", "USER_FAILED", "FATALLY_FAILED"]
        assert [a.started_at for a in atts] == [T0, T0 + 65, T0 + 190]
        assert [a.ready_at for a in atts] == [T0, T0 + 65, T0 + 190]
        assert run.status == "FAILED"
        assert run.ended_at == T0 + 195

    def test_retry_then_success(self) -> None:
        """A platform error then success: attempt 2 starts 60 s after attempt 1 ended and the run succeeds."""
        run = oracle(
            make_trace([step("a")], [rec("a", 1, "platform_error", 10), rec("a", 2, "succeeded", 1)])
        )
        assert [(a.status, a.started_at) for a in attempts_of(run, "a")] == [
            ("PLATFORM_FAILED", T0),
            ("SUCCEEDED", T0 + 70),
        ]
        assert run.status == "SUCCEEDED"
        assert run.ended_at == T0 + 71

    def test_mixed_classes_use_independent_exponents(self) -> None:
        """user, platform, user errors: delays 60 (user n=0), 60 (platform n=0), 120 (user n=1)."""
        attempts = [
            rec("a", 1, "user_error", 0),
            rec("a", 2, "platform_error", 0),
            rec("a", 3, "user_error", 0),
            rec("a", 4, "succeeded", 0),
        ]
        run = oracle(make_trace([step("a")], attempts))
        assert [a.started_at for a in attempts_of(run, "a")] == [T0, T0 + 60, T0 + 120, T0 + 240]

    def test_fixed_backoff_param_driven_limit(self) -> None:
        """A '$lim' limit of 1 and a fixed 10 s backoff: 2 attempts, 10 s apart, then FATALLY_FAILED."""
        policy = RetryPolicy(
            error_retry_limit="$lim",
            backoff=Backoff(type=BackoffType.FIXED_BACKOFF, error_retry_backoff_in_secs=10),
        )
        trace = make_trace(
            [step("a", retry=policy)],
            [rec("a", 1, "user_error", 1), rec("a", 2, "user_error", 1)],
            params={"lim": 1},
        )
        run = oracle(trace)
        assert [(a.status, a.started_at) for a in attempts_of(run, "a")] == [
            ("USER_FAILED", T0),
            ("FATALLY_FAILED", T0 + 11),
        ]
        assert attempts_of(run, "a")[0].config["retry_policy"]["error_retry_limit"] == 1  # type: ignore[index]

    def test_fatal_error_is_never_retried(self) -> None:
        """A fatal_error outcome is FATALLY_FAILED at once, whatever the limits."""
        run = oracle(make_trace([step("a")], [rec("a", 1, "fatal_error", 2)]))
        assert [a.status for a in attempts_of(run, "a")] == ["FATALLY_FAILED"]
        assert run.status == "FAILED"

    def test_unrecorded_attempt(self) -> None:
        """A retry the trace never recorded ends INTERNALLY_FAILED, marked unrecorded, and is not retried."""
        run = oracle(make_trace([step("a")], [rec("a", 1, "user_error", 1)]))
        last = attempts_of(run, "a")[-1]
        assert (last.attempt, last.status, last.unrecorded) == (2, "INTERNALLY_FAILED", True)
        assert run.status == "FAILED"

    def test_non_leaf_steps_use_default_policy(self) -> None:
        """Foreach and subworkflow steps carry the default policy (they never auto-retry)."""
        from corpora.model import Foreach, Param

        fan = step(
            "fan",
            type=StepType.FOREACH,
            foreach=Foreach(loop_params={"i": Param(value=[1])}, steps=(step("x"),)),
        )
        run = oracle(make_trace([fan], [rec("fan[0]/x", 1, "succeeded", 1)]))
        assert attempts_of(run, "fan")[0].config["retry_policy"] == DEFAULT_RETRY_POLICY.to_json()


FLAG: dict[str, JsonValue] = {"maestro_retry": {"type": "RETRY", "retryable": False}}


class TestNonRetryableFlag:
    def test_flag_makes_kubernetes_failure_fatal(self) -> None:
        """A KUBERNETES user error whose output says retryable:false is FATALLY_FAILED at once (§1.5)."""
        run = oracle(make_trace([step("k", type=StepType.KUBERNETES)], [rec("k", 1, "user_error", 3, FLAG)]))
        assert [(a.status, a.outputs) for a in attempts_of(run, "k")] == [("FATALLY_FAILED", FLAG)]

    def test_flag_ignored_for_other_types(self) -> None:
        """The flag only applies to KUBERNETES, TITUS and HTTP steps: a NOOP step retries as usual."""
        run = oracle(
            make_trace([step("n")], [rec("n", 1, "user_error", 3, FLAG), rec("n", 2, "succeeded", 1)])
        )
        assert [a.status for a in attempts_of(run, "n")] == ["USER_FAILED", "SUCCEEDED"]

    def test_platform_retries_exhaust(self) -> None:
        """With platform_retry_limit 2: three platform errors, delays 60 and 120, then FATALLY_FAILED."""
        s = step("p", retry=RetryPolicy(platform_retry_limit=2))
        run = oracle(make_trace([s], [rec("p", k, "platform_error", 1) for k in (1, 2, 3)]))
        assert [(a.status, a.started_at) for a in attempts_of(run, "p")] == [
            ("PLATFORM_FAILED", T0),
            ("PLATFORM_FAILED", T0 + 61),
            ("FATALLY_FAILED", T0 + 182),
        ]
