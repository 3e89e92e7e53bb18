"""Cohorts: named slices of the workflow population, each with its own budgets, from a TOML file.

A cohort is what a rollout moves from one engine to the other, so membership must be stable: it
depends only on the workflow (id, owner, tags, type, and a hash bucket of the id), never on a run.

File format (see examples/cohorts.toml)::

    [defaults]                      # optional; every key of [cohort.budget] may appear here
    min_traces = 30

    [[cohort]]
    name = "data-eng-etl"
    description = "ETL pipelines of the data engineering team"
    [cohort.select]                 # every key given must match (AND); a list matches any item (OR)
    owner = ["data-eng"]
    tags = ["etl"]                  # the workflow carries at least one of these tags
    workflow_id = ["etl.*"]         # shell-style globs
    workflow_type = ["etl"]
    percent = 50                    # stable hash bucket of the workflow id: this share of the rest
    [cohort.budget]
    divergence_budget = 0.02
"""

from __future__ import annotations

import difflib
import fnmatch
import hashlib
import tomllib
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field, fields, replace
from pathlib import Path
from typing import Any

import jsonschema

from corpora.coverage import FEATURES
from shadow.gate.errors import CohortFileError
from shadow.gate.router import RootWorkflow, stable_bucket

__all__ = ["Budget", "Cohort", "CohortSelector", "cohorts_sha256", "load_cohorts", "parse_cohorts"]

_SELECTOR_KEYS = ("owner", "tags", "workflow_id", "workflow_type")


@dataclass(frozen=True, slots=True)
class Budget:
    """What a cohort must show before the candidate may run it.

    ``divergence_budget``: the highest acceptable share of traces with an unexplained divergence;
    the gate passes when the Wilson upper bound (at ``confidence``) is at or under it.
    ``latency_tolerance``: a slowdown up to this fraction of the baseline median is acceptable.
    ``p99_ratio_warn`` / ``p99_ratio_max``: candidate p99 over baseline p99 above these is MARGINAL / FAIL.
    ``min_latency_samples``: fewer step or run samples than this per engine and the latency judge abstains.
    ``fidelity_min_status_agreement``: where the cohort's traces carry production's observations, the share
    of observed statuses (runs and steps) the *baseline* replay must agree with; below it the baseline is not
    a faithful reference for the cohort and the verdict is INSUFFICIENT_DATA (never PASS). Cohorts without
    observations are not judged on it.
    """

    min_traces: int = 30
    divergence_budget: float = 0.01
    confidence: float = 0.95
    latency_tolerance: float = 0.25
    latency_confidence: float = 0.98
    p99_ratio_warn: float = 1.2
    p99_ratio_max: float = 1.5
    min_latency_samples: int = 10
    fidelity_min_status_agreement: float = 0.9


@dataclass(frozen=True, slots=True)
class CohortSelector:
    """Which root workflows belong to a cohort. Empty tuples select everything."""

    owner: tuple[str, ...] = ()
    tags: tuple[str, ...] = ()
    workflow_id: tuple[str, ...] = ()
    workflow_type: tuple[str, ...] = ()
    percent: float = 100.0

    def matches(self, root: RootWorkflow, *, cohort: str) -> bool:
        if self.owner and root.owner not in self.owner:
            return False
        if self.tags and not set(self.tags) & set(root.tags):
            return False
        if self.workflow_id and not any(fnmatch.fnmatchcase(root.workflow_id, g) for g in self.workflow_id):
            return False
        if self.workflow_type and root.workflow_type not in self.workflow_type:
            return False
        # Salted with the cohort name so two 50 % cohorts are independent halves.
        return self.percent >= 100.0 or stable_bucket(root.workflow_id, f"cohort:{cohort}") < self.percent


@dataclass(frozen=True, slots=True)
class Cohort:
    name: str
    selector: CohortSelector = field(default_factory=CohortSelector)
    budget: Budget = field(default_factory=Budget)
    description: str = ""
    # Situations the cohort's traces must exercise before it can be judged (corpora.coverage.FEATURES); a
    # missing one makes the cohort INSUFFICIENT_DATA, naming it.
    require: tuple[str, ...] = ()

    def matches(self, root: RootWorkflow) -> bool:
        """True when ``root`` belongs to this cohort (stable across runs and machines)."""
        return self.selector.matches(root, cohort=self.name)


_BUDGET_SCHEMA: dict[str, Any] = {
    "type": "object",
    "additionalProperties": False,
    "properties": {
        "min_traces": {"type": "integer", "minimum": 1},
        "divergence_budget": {"type": "number", "exclusiveMinimum": 0, "maximum": 1},
        "confidence": {"type": "number", "exclusiveMinimum": 0.5, "exclusiveMaximum": 1},
        "latency_tolerance": {"type": "number", "minimum": 0},
        "latency_confidence": {"type": "number", "exclusiveMinimum": 0.5, "exclusiveMaximum": 1},
        "p99_ratio_warn": {"type": "number", "exclusiveMinimum": 0},
        "p99_ratio_max": {"type": "number", "exclusiveMinimum": 0},
        "min_latency_samples": {"type": "integer", "minimum": 2},
        "fidelity_min_status_agreement": {"type": "number", "minimum": 0, "maximum": 1},
    },
}
_STRINGS: dict[str, Any] = {
    "oneOf": [
        {"type": "string", "minLength": 1},
        {"type": "array", "items": {"type": "string", "minLength": 1}},
    ]
}
COHORT_FILE_SCHEMA: dict[str, Any] = {
    "type": "object",
    "additionalProperties": False,
    "required": ["cohort"],
    "properties": {
        "defaults": _BUDGET_SCHEMA,
        "cohort": {
            "type": "array",
            "minItems": 1,
            "items": {
                "type": "object",
                "additionalProperties": False,
                "required": ["name"],
                "properties": {
                    "name": {"type": "string", "pattern": r"^[A-Za-z0-9][A-Za-z0-9._-]*$"},
                    "description": {"type": "string"},
                    "select": {
                        "type": "object",
                        "additionalProperties": False,
                        "properties": {
                            **dict.fromkeys(_SELECTOR_KEYS, _STRINGS),
                            "percent": {"type": "number", "exclusiveMinimum": 0, "maximum": 100},
                        },
                    },
                    "budget": _BUDGET_SCHEMA,
                    "require": {"type": "array", "items": {"type": "string", "minLength": 1}},
                },
            },
        },
    },
}


def _toml_path(error: jsonschema.ValidationError) -> str:
    parts: list[str] = []
    for item in error.absolute_path:
        parts.append(f"[{item}]" if isinstance(item, int) else (f".{item}" if parts else str(item)))
    return "".join(parts) or "(top level)"


def _budget(raw: Mapping[str, Any], base: Budget) -> Budget:
    known = {f.name for f in fields(Budget)}
    changes: dict[str, Any] = {k: v for k, v in raw.items() if k in known}
    return replace(base, **changes)


def _strings(value: str | Iterable[str] | None) -> tuple[str, ...]:
    if value is None:
        return ()
    return (value,) if isinstance(value, str) else tuple(value)


def parse_cohorts(document: Mapping[str, Any], *, source: str = "<cohorts>") -> tuple[Cohort, ...]:
    """Cohorts from a parsed TOML document, validated; raises CohortFileError naming the key."""
    validator = jsonschema.Draft202012Validator(COHORT_FILE_SCHEMA)
    errors = sorted(validator.iter_errors(dict(document)), key=lambda e: list(e.absolute_path))
    if errors:
        first = errors[0]
        raise CohortFileError(
            first.message,
            where=f"{source}: {_toml_path(first)}",
            hint="see examples/cohorts.toml and docs/GATE.md for the cohort format",
        )
    defaults = _budget(document.get("defaults", {}), Budget())
    cohorts: list[Cohort] = []
    seen: set[str] = set()
    for index, raw in enumerate(document["cohort"]):
        name = raw["name"]
        where = f"{source}: cohort[{index}]"
        if name in seen:
            raise CohortFileError(
                f"duplicate cohort name {name!r}", where=where, hint="give each cohort its own name"
            )
        seen.add(name)
        budget = _budget(raw.get("budget", {}), defaults)
        if budget.p99_ratio_warn > budget.p99_ratio_max:
            raise CohortFileError(
                f"p99_ratio_warn {budget.p99_ratio_warn} is above p99_ratio_max {budget.p99_ratio_max}",
                where=f"{where}.budget",
                hint="the warning ratio must be at or below the failing ratio",
            )
        select = raw.get("select", {})
        selector = CohortSelector(
            **{key: _strings(select.get(key)) for key in _SELECTOR_KEYS},
            percent=float(select.get("percent", 100.0)),
        )
        require = tuple(raw.get("require", ()))
        unknown = [f for f in require if f not in FEATURES]
        if unknown:
            close = difflib.get_close_matches(unknown[0], list(FEATURES), n=1)
            raise CohortFileError(
                f"unknown coverage feature {unknown[0]!r}"
                + (f" (did you mean {close[0]!r}?)" if close else ""),
                where=f"{where}.require",
                hint="features are the rows of 'shadow corpus stats --coverage' (corpora/coverage.py)",
            )
        cohorts.append(Cohort(name, selector, budget, raw.get("description", ""), require))
    return tuple(cohorts)


def cohorts_sha256(path: str | Path) -> str:
    """sha256 of the cohorts file's bytes: a verdict records it, and the rollout advances a cohort only with
    the very file the verdict judged with (a lenient file cannot vouch for a strict one)."""
    try:
        return hashlib.sha256(Path(path).read_bytes()).hexdigest()
    except OSError as exc:
        raise CohortFileError(
            f"cannot read the cohorts file ({exc.strerror or exc})", where=str(path), hint="check --cohorts"
        ) from exc


def load_cohorts(path: str | Path) -> tuple[Cohort, ...]:
    """Read and validate a cohorts TOML file."""
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise CohortFileError(
            f"cannot read the cohorts file ({exc.strerror or exc})", where=str(path), hint="check --cohorts"
        ) from exc
    except UnicodeDecodeError as exc:
        raise CohortFileError(
            f"the cohorts file is not UTF-8 text ({exc.reason} at byte {exc.start})",
            where=str(path),
            hint="check --cohorts points at the TOML file (see examples/cohorts.toml)",
        ) from exc
    try:
        document = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise CohortFileError(f"not valid TOML: {exc}", where=str(path), hint="fix the TOML syntax") from exc
    return parse_cohorts(document, source=str(path))
