"""Conditional branches for generated workflows, written in the agreed expression subset.

Each branch knows how to decide its own truth in Python for a given run, so the generator can record
outputs that make some conditions false (and UNSATISFIED propagate) without evaluating expressions
itself. Outputs-based branches read an upstream step's output (``check__row_count > 1000``); param
based ones read workflow params that individual runs may override.
"""

from __future__ import annotations

import random
from collections.abc import Callable, Mapping
from dataclasses import dataclass

from corpora.model import JsonValue, Param

__all__ = ["WORKFLOW_PARAMS", "Branch", "choose_branch", "run_param_overrides"]

# Literal workflow params every generated workflow defines; runs may override the first three.
WORKFLOW_PARAMS: dict[str, Param] = {
    "env": Param(value="prod"),
    "threshold": Param(value=100),
    "backfill": Param(value=False),
    "regions": Param(value=["us-east-1", "eu-west-1", "ap-south-1"]),
    "output_path": Param(value="s3://warehouse/${env}/events"),
    "lookback_days": Param(expression="backfill ? 30 : 1"),
}


def run_param_overrides(rng: random.Random) -> dict[str, JsonValue]:
    """Run params: usually none, sometimes another env, threshold or a backfill flag."""
    out: dict[str, JsonValue] = {}
    if rng.random() < 0.3:
        out["env"] = rng.choice(["staging", "dev"])
    if rng.random() < 0.2:
        out["threshold"] = rng.choice([10, 50, 500])
    if rng.random() < 0.15:
        out["backfill"] = True
    return out


_Decide = Callable[[random.Random, Mapping[str, JsonValue]], tuple[tuple[bool, ...], dict[str, JsonValue]]]


def _param(params: Mapping[str, JsonValue], name: str) -> JsonValue:
    if name in params:
        return params[name]
    return WORKFLOW_PARAMS[name].value


def _as_int(value: JsonValue) -> int:
    return value if isinstance(value, int) else 0


@dataclass(frozen=True, slots=True)
class Branch:
    """Conditions on all out-edges of one step. ``conditions[i]`` guards the i-th out-edge;
    ``decide(rng, run_params)`` returns (truth per edge, outputs the source step must record)."""

    conditions: tuple[str, ...]
    decide: _Decide
    reads_outputs: bool


def choose_branch(rng: random.Random, source: str, fan_out: int, source_is_leaf: bool) -> Branch:
    """A branch over ``fan_out`` edges from step ``source``; conditions alternate between a test and
    its negation, so usually one side is taken and the other becomes UNSATISFIED."""
    kinds = ["env", "threshold", "backfill", "regions"] + (
        ["rows", "ready", "label"] * 2 if source_is_leaf else []
    )
    kind = rng.choice(kinds)
    sides = [i % 2 == 0 for i in range(fan_out)]  # True: the test itself; False: its negation

    def pack(test: Callable[[Mapping[str, JsonValue]], bool]) -> _Decide:
        def decide(
            r: random.Random, params: Mapping[str, JsonValue]
        ) -> tuple[tuple[bool, ...], dict[str, JsonValue]]:
            del r
            value = test(params)
            return tuple(value if side else not value for side in sides), {}

        return decide

    if kind == "env":
        pair = ("env == 'prod'", "env != 'prod'")
        decide = pack(lambda p: _param(p, "env") == "prod")
    elif kind == "threshold":
        pair = ("threshold >= 100", "threshold < 100")
        decide = pack(lambda p: _as_int(_param(p, "threshold")) >= 100)
    elif kind == "backfill":
        pair = ("!backfill", "backfill")
        decide = pack(lambda p: not _param(p, "backfill"))
    elif kind == "regions":
        pair = ("len(regions) > 2 && env == 'prod'", "!(len(regions) > 2 && env == 'prod')")
        decide = pack(lambda p: _param(p, "env") == "prod")
    else:
        pair, decide = _output_branch(rng, kind, source, sides)
    conditions = tuple(pair[0] if side else pair[1] for side in sides)
    return Branch(conditions, decide, reads_outputs=kind in ("rows", "ready", "label"))


def _output_branch(
    rng: random.Random, kind: str, source: str, sides: list[bool]
) -> tuple[tuple[str, str], _Decide]:
    limit = rng.choice([100, 1000, 5000])
    p_true = rng.choice([0.5, 0.7, 0.9])

    def decide(
        r: random.Random, params: Mapping[str, JsonValue]
    ) -> tuple[tuple[bool, ...], dict[str, JsonValue]]:
        del params
        truth = r.random() < p_true
        outputs: dict[str, JsonValue]
        if kind == "rows":
            outputs = {"row_count": r.randint(limit + 1, limit * 4) if truth else r.randint(0, limit)}
        elif kind == "ready":
            outputs = {"has_new_data": truth}
        else:
            outputs = {
                "quality": "ok" if truth else r.choice(["degraded", "missing"]),
                "checked": r.randint(1, 50),
            }
        return tuple(truth if side else not truth for side in sides), outputs

    if kind == "rows":
        pair = (f"{source}__row_count > {limit}", f"{source}__row_count <= {limit}")
    elif kind == "ready":
        pair = (f"{source}__has_new_data", f"!{source}__has_new_data")
    else:
        pair = (f"{source}__quality == 'ok' && {source}__checked > 0", f"{source}__quality != 'ok'")
    return pair, decide
