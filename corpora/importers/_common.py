"""Shared pieces of every importer: options, the Importer protocol, DAG helpers and trace checks.

Importers turn files written by other systems into :class:`~corpora.model.Trace` objects. They all
stream (one trace at a time), and a bad input unit is reported as a :class:`TraceError` in the stream
instead of stopping the import, so one broken file never hides a thousand good ones.
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Protocol

import networkx as nx

from corpora.errors import TraceError, TraceLocation
from corpora.model import Step, StepType, Trace, Transition
from corpora.validate import validate_trace

__all__ = [
    "ImportOptions",
    "ImportedItem",
    "Importer",
    "SafeIds",
    "build_dag_steps",
    "check_acyclic",
    "dag_depth",
    "discover_files",
    "fail",
    "parse_timestamp",
    "run_import",
    "validate_imported",
]


@dataclass(frozen=True, slots=True)
class ImportOptions:
    """Knobs of an import. ``seed``, ``failure_rate`` and ``retry_rate`` drive the outcome model of
    sources that hold no runs (Maestro definitions); ``race_margin`` keeps that model's failures out of
    latency races between engines; ``schema_dir`` is where WfFormat JSON schemas are read from when
    present (they are LGPL and never shipped in this repository)."""

    seed: int = 0
    failure_rate: float = 0.05
    retry_rate: float = 0.1
    schema_dir: Path | None = None
    #: seconds a synthesized failure keeps from every other attempt start / end (Maestro; 0 = raw draws)
    race_margin: float = 120.0

    def __post_init__(self) -> None:
        for name in ("failure_rate", "retry_rate"):
            value = getattr(self, name)
            if not (0.0 <= value <= 1.0) or math.isnan(value):
                raise ValueError(f"{name} must be within [0, 1], got {value!r}")
        if self.failure_rate + self.retry_rate > 1.0:
            raise ValueError("failure_rate + retry_rate must not exceed 1")
        if not (0.0 <= self.race_margin < 86_400.0) or math.isnan(self.race_margin):
            raise ValueError(f"race_margin must be within [0, 86400) seconds, got {self.race_margin!r}")


@dataclass(frozen=True, slots=True)
class ImportedItem:
    """One result of an import: a trace, or the error that quarantined an input unit."""

    source: str
    trace: Trace | None = None
    error: TraceError | None = None


class Importer(Protocol):
    """One source format. ``discover`` expands the user's paths into input units (files or run
    folders); ``import_unit`` yields traces, or TraceErrors for parts that could not be imported."""

    name: str
    description: str

    def discover(self, paths: Sequence[Path]) -> list[Path]: ...

    def import_unit(self, path: Path, options: ImportOptions) -> Iterator[Trace | TraceError]: ...


def fail(code: str, message: str, *, file: Path | str | None, hint: str, json_path: str = "$") -> TraceError:
    """A TraceError located in an input file (not in a trace line)."""
    return TraceError(
        code,
        message,
        location=TraceLocation(file=str(file) if file is not None else None, json_path=json_path),
        hint=hint,
    )


def discover_files(paths: Sequence[Path], suffixes: tuple[str, ...]) -> list[Path]:
    """Files given directly, plus files under given folders whose name ends with one of ``suffixes``."""
    out: list[Path] = []
    for path in paths:
        if path.is_dir():
            out.extend(
                sorted(p for p in path.rglob("*") if p.is_file() and p.name.lower().endswith(suffixes))
            )
        else:
            out.append(path)
    return out


class SafeIds:
    """Maps foreign task names to step ids that are safe in step paths (no ``/``, ``[``, ``]``) and
    unique; the mapping is deterministic so the same source always gives the same ids."""

    _UNSAFE = re.compile(r"[^A-Za-z0-9_.\-]+")

    def __init__(self) -> None:
        self._by_raw: dict[str, str] = {}
        self._used: set[str] = set()

    def __call__(self, raw: str) -> str:
        known = self._by_raw.get(raw)
        if known is not None:
            return known
        base = self._UNSAFE.sub("_", raw).strip("_") or "step"
        candidate, n = base, 1
        while candidate in self._used:
            n += 1
            candidate = f"{base}_{n}"
        self._used.add(candidate)
        self._by_raw[raw] = candidate
        return candidate


def check_acyclic(
    nodes: Iterable[str], edges: Iterable[tuple[str, str]], *, where: str, file: Path | str | None
) -> None:
    """Raise a ``cycle`` TraceError naming the cycle (``a -> b -> a``) if the graph has one."""
    graph = nx.DiGraph()
    graph.add_nodes_from(nodes)
    graph.add_edges_from(edges)
    try:
        cycle = nx.find_cycle(graph)
    except nx.NetworkXNoCycle:
        return
    names = [u for u, _ in cycle] + [cycle[0][0]]
    raise fail(
        "cycle",
        f"{where} has a cycle: {' -> '.join(names)}",
        file=file,
        hint="a workflow must be a DAG; remove one of the transitions in the cycle",
    )


def dag_depth(nodes: Iterable[str], edges: Iterable[tuple[str, str]]) -> int:
    """Number of steps on the longest path (1 for independent steps, 0 for no steps)."""
    graph = nx.DiGraph()
    graph.add_nodes_from(nodes)
    graph.add_edges_from(edges)
    if graph.number_of_nodes() == 0:
        return 0
    return int(nx.dag_longest_path_length(graph)) + 1


def build_dag_steps(
    order: Sequence[str],
    edges: Iterable[tuple[str, str]],
    make_step: Callable[[str, tuple[Transition, ...]], Step] | None = None,
) -> tuple[Step, ...]:
    """Steps in ``order`` whose unconditional transitions are ``edges`` (deduplicated, sorted)."""
    successors: dict[str, set[str]] = {node: set() for node in order}
    for parent, child in edges:
        successors[parent].add(child)
    steps: list[Step] = []
    for node in order:
        transitions = tuple(Transition(to=child) for child in sorted(successors[node]))
        if make_step is None:
            steps.append(Step(id=node, type=StepType.SHELL, transitions=transitions))
        else:
            steps.append(make_step(node, transitions))
    return tuple(steps)


_MM_DD_YY = re.compile(r"^(\d\d)-(\d\d)-(\d\d)(T.*)$")


def parse_timestamp(value: object, *, file: Path | str | None, json_path: str) -> float:
    """Epoch seconds from an ISO-8601 string, a datetime (YAML loaders give those for unquoted
    timestamps) or a number; naive times are taken as UTC."""
    if isinstance(value, datetime):
        moment = value
    elif isinstance(value, date):
        moment = datetime(value.year, value.month, value.day)
    elif isinstance(value, (int, float)) and not isinstance(value, bool):
        return float(value)
    elif isinstance(value, str):
        text = value.strip().replace("Z", "+00:00")
        legacy = _MM_DD_YY.match(text)
        if legacy:  # some WfCommons instances write MM-DD-YY (e.g. 03-23-21T05:57:15Z)
            month, day, year, rest = legacy.groups()
            text = f"20{year}-{month}-{day}{rest}"
        try:
            moment = datetime.fromisoformat(text)
        except ValueError:
            raise fail(
                "bad_timestamp",
                f"cannot read timestamp {value!r}",
                file=file,
                json_path=json_path,
                hint="use ISO-8601 like 2018-08-01T10:22:43Z",
            ) from None
    else:
        raise fail(
            "bad_timestamp",
            f"expected a timestamp, got {type(value).__name__}",
            file=file,
            json_path=json_path,
            hint="use ISO-8601 like 2018-08-01T10:22:43Z",
        )
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return moment.timestamp()


def validate_imported(trace: Trace) -> None:
    """Full semantic validation of an imported trace (``corpora.validate.validate_trace``)."""
    validate_trace(trace)


def run_import(importer: Importer, paths: Sequence[Path], options: ImportOptions) -> Iterator[ImportedItem]:
    """Stream every unit of ``paths`` through ``importer``; validate each trace; quarantine failures."""
    for unit in importer.discover(paths):
        source = str(unit)
        try:
            for produced in importer.import_unit(unit, options):
                if isinstance(produced, TraceError):
                    yield ImportedItem(source, error=produced.at(file=produced.location.file or source))
                    continue
                try:
                    validate_imported(produced)
                except TraceError as exc:
                    yield ImportedItem(source, error=exc.at(file=source, trace_id=produced.trace_id))
                    continue
                yield ImportedItem(source, trace=produced)
        except TraceError as exc:
            yield ImportedItem(source, error=exc.at(file=exc.location.file or source))
        except (OSError, UnicodeDecodeError) as exc:
            yield ImportedItem(
                source,
                error=fail(
                    "unreadable",
                    f"cannot read input: {exc}",
                    file=source,
                    hint="check the path and permissions",
                ),
            )


def param_map(values: Mapping[str, object]) -> dict[str, object]:
    """A copy with string keys (YAML may give ints)."""
    return {str(k): v for k, v in values.items()}
