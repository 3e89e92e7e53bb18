"""Retry policies: defaults and merging (§1.1), ``$param`` values (§1.2), exhaustion (§1.3), backoff (§1.4).

A policy is parsed once, when a step's first attempt is created, against the workflow params; any
parse or range error makes the *whole* policy fall back to the default (Maestro logs and carries on,
it does not fail the step). Retries reuse the parsed policy.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass

from corpora.model import Backoff, BackoffType, RetryPolicy
from engines.core.durations import interpolate, parse_duration_seconds
from engines.core.errors import ParamError
from engines.core.expr import Value
from engines.core.statuses import StepStatus

__all__ = [
    "DEFAULT_RETRY_POLICY",
    "MAX_RETRY_LIMIT",
    "ParsedRetryPolicy",
    "RetryCounters",
    "check_policy_shape",
    "is_exhausted",
    "resolve_retry_policy",
    "retry_delay_seconds",
]

MAX_RETRY_LIMIT = 99
_MAX_EXPONENT = 2**31 - 1
_MAX_SECS = 86_400
_CLASSES = ("error", "platform", "timeout")
_EXP_DEFAULTS = {"error": (60, 2, 600), "platform": (60, 2, 3600), "timeout": (60, 2, 3600)}
_FIXED_DEFAULT = 60
_STATUS_CLASS = {
    StepStatus.USER_FAILED: 0,
    StepStatus.PLATFORM_FAILED: 1,
    StepStatus.TIMEOUT_FAILED: 2,
}


@dataclass(frozen=True, slots=True)
class ParsedRetryPolicy:
    """A fully resolved policy: limits and, per class (error, platform, timeout), base seconds,
    exponent and cap seconds (for FIXED_BACKOFF only the base is used)."""

    error_retry_limit: int = 2
    platform_retry_limit: int = 10
    timeout_retry_limit: int = 0
    backoff_type: str = BackoffType.EXPONENTIAL_BACKOFF.value
    base_secs: tuple[int, int, int] = (60, 60, 60)
    exponents: tuple[int, int, int] = (2, 2, 2)
    cap_secs: tuple[int, int, int] = (600, 3600, 3600)
    fallback: bool = False  # True when the trace's policy could not be parsed and the default was used

    def limits(self) -> tuple[int, int, int]:
        return (self.error_retry_limit, self.platform_retry_limit, self.timeout_retry_limit)

    def to_json(self) -> dict[str, Value]:
        """The configuration-parity view (and the stored form)."""
        return {
            "error_retry_limit": self.error_retry_limit,
            "platform_retry_limit": self.platform_retry_limit,
            "timeout_retry_limit": self.timeout_retry_limit,
            "backoff_type": self.backoff_type,
            "base_secs": list(self.base_secs),
            "exponents": list(self.exponents),
            "cap_secs": list(self.cap_secs),
            "fallback": self.fallback,
        }

    @staticmethod
    def from_json(d: Mapping[str, object]) -> ParsedRetryPolicy:
        def triple(key: str) -> tuple[int, int, int]:
            v = d[key]
            assert isinstance(v, list | tuple)
            return (int(v[0]), int(v[1]), int(v[2]))

        return ParsedRetryPolicy(
            int(d["error_retry_limit"]),  # type: ignore[call-overload]
            int(d["platform_retry_limit"]),  # type: ignore[call-overload]
            int(d["timeout_retry_limit"]),  # type: ignore[call-overload]
            str(d["backoff_type"]),
            triple("base_secs"),
            triple("exponents"),
            triple("cap_secs"),
            bool(d.get("fallback", False)),
        )


DEFAULT_RETRY_POLICY = ParsedRetryPolicy()


@dataclass(frozen=True, slots=True)
class RetryCounters:
    """Retries of each class already performed (Maestro's ``StepRetry`` counters)."""

    error: int = 0
    platform: int = 0
    timeout: int = 0

    def as_tuple(self) -> tuple[int, int, int]:
        return (self.error, self.platform, self.timeout)

    def after(self, failed: StepStatus) -> RetryCounters:
        """The counters of the next attempt, after an attempt that ended ``failed`` (§1.3 increment)."""
        if failed is StepStatus.USER_FAILED:
            return RetryCounters(self.error + 1, self.platform, self.timeout)
        if failed is StepStatus.PLATFORM_FAILED:
            return RetryCounters(self.error, self.platform + 1, self.timeout)
        if failed is StepStatus.TIMEOUT_FAILED:
            return RetryCounters(self.error, self.platform, self.timeout + 1)
        return self


def is_exhausted(policy: ParsedRetryPolicy, counters: RetryCounters, failed: StepStatus) -> bool:
    """True when a failure of ``failed``'s class has no retry left (``retries >= limit``)."""
    k = _STATUS_CLASS[failed]
    return counters.as_tuple()[k] >= policy.limits()[k]


def retry_delay_seconds(policy: ParsedRetryPolicy, counters: RetryCounters, failed: StepStatus) -> int:
    """Backoff before the retry of an attempt that ended ``failed`` (§1.4): the exponent is the number
    of retries of the same class already performed (0 for the first retry), capped per class."""
    k = _STATUS_CLASS[failed]
    if policy.backoff_type == BackoffType.FIXED_BACKOFF.value:
        return policy.base_secs[k]
    n = counters.as_tuple()[k]
    base, exp, cap = policy.base_secs[k], policy.exponents[k], policy.cap_secs[k]
    if n > 0 and exp > 1 and n * exp.bit_length() > 64:  # Java's pow overflows to a huge double; cap wins
        return cap
    raw = int(base * float(exp) ** n)
    return int(min(raw, cap))


def _read(value: int | str | None, params: Mapping[str, Value], *, duration: bool, field: str) -> int | None:
    if value is None:
        return None
    if isinstance(value, bool):
        raise ParamError(f"expected a number, got {value!r}", param=field)
    if isinstance(value, int):
        return value
    text = interpolate(value, params).strip()
    try:
        return int(text)
    except ValueError:
        if not duration:
            raise ParamError(f"{text!r} is not an integer", param=field) from None
    try:
        return parse_duration_seconds(text)
    except ValueError as exc:
        raise ParamError(str(exc), param=field) from exc


def _checked(v: int, lo: int, hi: int, field: str) -> int:
    if not lo <= v <= hi:
        raise ParamError(f"{v} is outside {lo}..{hi}", param=field)
    return v


def _parse(policy: RetryPolicy, params: Mapping[str, Value]) -> ParsedRetryPolicy:
    limits = []
    for cls, default in zip(_CLASSES, (2, 10, 0), strict=True):
        field = f"{cls}_retry_limit"
        v = _read(getattr(policy, field), params, duration=False, field=field)
        limits.append(_checked(default if v is None else v, 0, MAX_RETRY_LIMIT, field))
    backoff = policy.backoff or Backoff()
    btype = BackoffType(str(backoff.type).upper())
    bases, exps, caps = [], [], []
    for cls in _CLASSES:
        d_base, d_exp, d_cap = _EXP_DEFAULTS[cls]
        if btype is BackoffType.FIXED_BACKOFF:
            d_base = _FIXED_DEFAULT
        f_base, f_exp, f_cap = (
            f"{cls}_retry_backoff_in_secs",
            f"{cls}_retry_exponent",
            f"{cls}_retry_limit_in_secs",
        )
        base = _read(getattr(backoff, f_base), params, duration=True, field=f_base)
        bases.append(_checked(d_base if base is None else base, 1, _MAX_SECS, f_base))
        if btype is BackoffType.FIXED_BACKOFF:
            exps.append(d_exp)
            caps.append(d_cap)
            continue
        exp = _read(getattr(backoff, f_exp), params, duration=False, field=f_exp)
        exps.append(_checked(d_exp if exp is None else exp, 0, _MAX_EXPONENT, f_exp))
        cap = _read(getattr(backoff, f_cap), params, duration=True, field=f_cap)
        caps.append(_checked(d_cap if cap is None else cap, 1, _MAX_SECS, f_cap))
    return ParsedRetryPolicy(
        limits[0], limits[1], limits[2], btype.value,
        (bases[0], bases[1], bases[2]), (exps[0], exps[1], exps[2]), (caps[0], caps[1], caps[2]),
    )  # fmt: skip


def resolve_retry_policy(policy: RetryPolicy | None, params: Mapping[str, Value]) -> ParsedRetryPolicy:
    """Merge ``policy`` with Maestro's defaults and resolve ``$param`` / duration strings against the
    workflow ``params``. Any parse or range error yields the whole default policy with ``fallback=True``."""
    if policy is None:
        return DEFAULT_RETRY_POLICY
    hit = _RESOLVED.get(id(policy))
    if hit is None or hit[0] is not policy:
        if len(_RESOLVED) >= _CACHE_MAX:
            _RESOLVED.clear()
        # equal policies (by repr: 1 is not True, 2 is not "2") share their parsed forms
        shared = _BY_VALUE.get(repr(policy))
        if shared is None:
            if len(_BY_VALUE) >= _CACHE_MAX:
                _BY_VALUE.clear()
            shared = _BY_VALUE[repr(policy)] = (_param_names(policy), {})
        hit = _RESOLVED[id(policy)] = (policy, shared[0], shared[1])
    names, parsed_by = hit[1], hit[2]
    if not names:  # the common case: a constant policy
        cached = parsed_by.get(())
        if cached is not None:
            return cached
    # the parse reads only the params its ``$`` strings name: key the result on their values
    key: tuple[object, ...] | None = tuple(
        (type(v), v)
        if (v := params.get(n, _MISSING)) is _MISSING or isinstance(v, str | int | float | bool | None)
        else _UNHASHABLE
        for n in names
    )
    if key is not None and _UNHASHABLE in key:
        key = None
    if key is not None:
        cached = parsed_by.get(key)
        if cached is not None:
            return cached
    try:
        parsed = _parse(policy, params)
    except (ParamError, ValueError):
        parsed = ParsedRetryPolicy(fallback=True)
    if key is not None and len(parsed_by) < 64:
        parsed_by[key] = parsed
    return parsed


_CACHE_MAX = 4096
_MISSING: object = object()
_UNHASHABLE: object = object()
_RESOLVED: dict[int, tuple[RetryPolicy, tuple[str, ...], dict[tuple[object, ...], ParsedRetryPolicy]]] = {}
"""``id(policy)`` -> (policy, the param names its strings read, parsed form by those params'
values): the policy is held, so the id stays valid while the entry lives."""
_BY_VALUE: dict[str, tuple[tuple[str, ...], dict[tuple[object, ...], ParsedRetryPolicy]]] = {}
_NAME = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)\}|\$([A-Za-z_][A-Za-z0-9_]*)")


def _param_names(policy: RetryPolicy) -> tuple[str, ...]:
    values: list[object] = [policy.error_retry_limit, policy.platform_retry_limit, policy.timeout_retry_limit]
    if policy.backoff is not None:
        b = policy.backoff
        values += [getattr(b, f"{c}_{suffix}") for c in _CLASSES
                   for suffix in ("retry_backoff_in_secs", "retry_exponent", "retry_limit_in_secs")]  # fmt: skip
    names: dict[str, None] = {}
    for v in values:
        if isinstance(v, str) and "$" in v:
            for m in _NAME.finditer(v.replace("$$", "")):
                names[m.group(1) or m.group(2)] = None
    return tuple(names)


_SHAPES: dict[str, str | None] = {}


def check_policy_shape(policy: RetryPolicy) -> str | None:
    """Definition-time check (Maestro's ``RetryPolicyConstraint``): values containing ``$`` are taken
    as 2, the rest must parse and be in range. Returns a problem description or None."""
    key = repr(policy)  # tells 1 from True, 2 from "2" (equality would not)
    if key in _SHAPES:
        return _SHAPES[key]
    problem = _check_policy_shape(policy)
    if len(_SHAPES) >= _CACHE_MAX:
        _SHAPES.clear()
    _SHAPES[key] = problem
    return problem


def _check_policy_shape(policy: RetryPolicy) -> str | None:
    def neutral(v: int | str | None) -> int | str | None:
        return "2" if isinstance(v, str) and "$" in v else v

    neutral_backoff = None
    if policy.backoff is not None:
        b = policy.backoff
        try:
            BackoffType(str(b.type).upper())
        except ValueError:
            return f"unknown backoff type {b.type!r}; use EXPONENTIAL_BACKOFF or FIXED_BACKOFF"
        neutral_backoff = Backoff(
            type=BackoffType(str(b.type).upper()),
            **{
                f"{c}_{suffix}": neutral(getattr(b, f"{c}_{suffix}"))
                for c in _CLASSES
                for suffix in ("retry_backoff_in_secs", "retry_exponent", "retry_limit_in_secs")
            },
        )
    neutral_policy = RetryPolicy(
        neutral(policy.error_retry_limit), neutral(policy.platform_retry_limit), neutral(policy.timeout_retry_limit),
        neutral_backoff,
    )  # fmt: skip
    try:
        _parse(neutral_policy, {})
    except (ParamError, ValueError) as exc:
        return str(exc)
    return None
