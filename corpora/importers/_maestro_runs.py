"""The seeded outcome model that gives Maestro definitions (which hold no runs) one recorded run.

For every leaf step path the run can reach (foreach iterations enumerated from loop params evaluated
at import time; subworkflow children under ``call/``) the model draws, from a generator seeded with
``f"{seed}/{trace_id}/{path}"`` (so one path's draw never depends on another's):

- with probability ``failure_rate``: the step fails for good, ``error_retry_limit + 1`` attempts with
  outcome ``user_error`` (the retries are exhausted, so the step ends FATALLY_FAILED);
- with probability ``retry_rate``: k failed attempts (1 <= k <= the class's limit; the class is
  ``user_error`` 70 % / ``platform_error`` 30 %) followed by one success; with a limit of 0 the step
  just succeeds;
- otherwise: one succeeded attempt.

Durations: NOOP 0 s; SLEEP its ``sleep_seconds`` when that evaluates at import time (else 1 s); any
other type a log-normal draw (median 60 s, sigma 0.75), kept below a numeric step timeout. Retry
limits that are ``"$param"`` strings are resolved against workflow params as Maestro does; one that
does not resolve to an integer falls back to the default limits, as Maestro falls back to its default
policy. Every run is triggered at 2026-01-01T00:00:00Z.

With ``race_margin > 0`` (the default, 120 s) the final attempt of each failing step is then
lengthened so the failure cannot race with other launches (:mod:`._maestro_races`); 0 keeps the
raw draws.
"""

from __future__ import annotations

import math
import random
import re
from collections.abc import Iterator, Mapping, Sequence
from typing import Any

from corpora._plans import LeafPlan
from corpora.errors import TraceError
from corpora.importers._common import ImportOptions
from corpora.importers._maestro_params import literal_values
from corpora.importers._maestro_races import backoff_delays, place_failures, workflow_timeout_races
from corpora.importers._sel import SelSyntaxError, Unresolved, evaluate
from corpora.model import Outcome, Param, RecordedAttempt, Run, Step, StepType, WorkflowDefinition

__all__ = ["TRIGGER_TIME", "leaf_paths", "synthesize_run"]

TRIGGER_TIME = 1_767_225_600.0
_MAX_ITERATIONS = 25_000
_INTERP = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)\}|\$([A-Za-z_][A-Za-z0-9_]*)")


def _loop_values(param: Param, env: Mapping[str, Any], where: str) -> list[Any]:
    if param.expression is None:
        value: Any = param.value
    else:
        try:
            value = evaluate(param.expression, env)
        except (Unresolved, SelSyntaxError) as exc:
            raise TraceError(
                "unresolvable_foreach",
                f"{where}: loop param cannot be evaluated at import time ({exc})",
                hint="give the loop param a literal array or an expression over literal params",
            ) from None
    if not isinstance(value, list):
        raise TraceError(
            "unresolvable_foreach",
            f"{where}: loop param is not an array ({type(value).__name__})",
            hint="loop params must evaluate to arrays",
        )
    return value


def leaf_paths(
    steps: Sequence[Step],
    env: Mapping[str, Any],
    subworkflows: Mapping[str, WorkflowDefinition],
    prefix: str = "",
    iterations: dict[str, int] | None = None,
) -> Iterator[tuple[str, Step, dict[str, Any]]]:
    """Every (path, leaf step, evaluated params) a run of ``steps`` can reach; ``iterations``, when
    given, receives each foreach path's iteration count."""
    for step in steps:
        if step.foreach is not None:
            own = literal_values(step.params, env)
            names = list(step.foreach.loop_params)
            arrays = [_loop_values(step.foreach.loop_params[n], own, f"{prefix}{step.id}.{n}") for n in names]
            count = math.prod(len(a) for a in arrays) if arrays else 0
            if count > _MAX_ITERATIONS:
                raise TraceError(
                    "too_many_iterations",
                    f"{prefix}{step.id}: {count} foreach iterations",
                    hint=f"Maestro allows at most {_MAX_ITERATIONS}",
                )
            if iterations is not None:
                iterations[f"{prefix}{step.id}"] = count
            for i in range(count):
                child = {**own, "loop_index": i}
                idx = i
                for name, array in zip(names, arrays, strict=True):
                    child[name] = array[idx % len(array)]
                    idx //= len(array)
                yield from leaf_paths(
                    step.foreach.steps, child, subworkflows, f"{prefix}{step.id}[{i}]/", iterations
                )
        elif step.subworkflow is not None:
            definition = subworkflows[step.subworkflow.workflow_id]
            passed = {} if step.subworkflow.explicit_params else dict(env)
            child = literal_values(definition.params, literal_values(step.params, passed))
            yield from leaf_paths(definition.steps, child, subworkflows, f"{prefix}{step.id}/", iterations)
        else:
            yield f"{prefix}{step.id}", step, literal_values(step.params, env)


def _limit(value: int | str | None, default: int, env: Mapping[str, Any]) -> int:
    if value is None:
        return default
    if isinstance(value, int):
        return value
    text = _INTERP.sub(lambda m: str(env.get(m.group(1) or m.group(2), m.group(0))), value)
    try:
        number = int(text.strip())
    except ValueError:
        return default
    return number if 0 <= number <= 99 else default


def _timeout_secs(timeout: Any) -> float | None:
    return float(timeout) if isinstance(timeout, (int, float)) and not isinstance(timeout, bool) else None


def _duration(step: Step, params: Mapping[str, Any], rng: random.Random) -> float:
    if step.type is StepType.NOOP:
        return 0.0
    if step.type is StepType.SLEEP:
        value = params.get("sleep_seconds")
        return (
            float(value)
            if isinstance(value, (int, float)) and not isinstance(value, bool) and value >= 0
            else 1.0
        )
    drawn = round(rng.lognormvariate(math.log(60.0), 0.75), 3)
    cap = _timeout_secs(step.timeout)
    return min(drawn, max(0.0, cap - 1.0)) if cap is not None else drawn


def synthesize_run(
    definition: WorkflowDefinition,
    subworkflows: Mapping[str, WorkflowDefinition],
    options: ImportOptions,
    trace_id: str,
) -> tuple[Run, list[str]]:
    """One run of ``definition`` with attempts drawn by the documented outcome model, failures placed
    ``options.race_margin`` away from rival events (:mod:`._maestro_races`). Also returns what is left
    racy: failing paths a step timeout kept from being placed, and ``"workflow-timeout"`` when the
    workflow's own timeout fires close to an attempt start or end (the caller tags them)."""
    env = literal_values(definition.params, {})
    iterations: dict[str, int] = {}
    plans: dict[str, LeafPlan] = {}
    for path, step, params in leaf_paths(definition.steps, env, subworkflows, iterations=iterations):
        rng = random.Random(f"{options.seed}/{trace_id}/{path}")
        policy = step.retry_policy
        error_limit = _limit(policy.error_retry_limit if policy else None, 2, env)
        platform_limit = _limit(policy.platform_retry_limit if policy else None, 10, env)
        draw = rng.random()
        outcomes: list[Outcome]
        if draw < options.failure_rate:
            outcomes = [Outcome.USER_ERROR] * (error_limit + 1)
        elif draw < options.failure_rate + options.retry_rate:
            kind, limit = (
                (Outcome.USER_ERROR, error_limit)
                if rng.random() < 0.7
                else (Outcome.PLATFORM_ERROR, platform_limit)
            )
            failures = rng.randint(1, limit) if limit > 0 else 0
            outcomes = [kind] * failures + [Outcome.SUCCEEDED]
        else:
            outcomes = [Outcome.SUCCEEDED]
        durations = tuple(_duration(step, params, rng) for _ in outcomes)
        plans[path] = LeafPlan(
            outcomes=tuple(outcomes),
            durations=durations,
            delays=backoff_delays(outcomes, policy.backoff if policy else None, env),
            timeout=_timeout_secs(step.timeout),
            terminal="failed" if outcomes[-1] is not Outcome.SUCCEEDED else None,
        )
    plans, unmet = place_failures(definition, subworkflows, plans, iterations, env, options.race_margin)
    if workflow_timeout_races(definition, subworkflows, plans, iterations, env, options.race_margin):
        unmet.append("workflow-timeout")
    attempts = [
        RecordedAttempt(path=path, attempt=number, outcome=outcome, duration=duration)
        for path, plan in plans.items()
        for number, (outcome, duration) in enumerate(zip(plan.outcomes, plan.durations, strict=True), start=1)
    ]
    return Run(run_id="1", trigger_time=TRIGGER_TIME, initiator="manual", attempts=tuple(attempts)), unmet
