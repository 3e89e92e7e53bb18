"""What the core asks an engine to do, and what an engine tells the core about a runtime.

The core never runs anything itself: :func:`engines.core.step.execute` returns effects (a closed set
of small immutable records) that the engine carries out on its own clock, and takes a
:class:`RuntimeReport` saying where the attempt's runtime is.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import TypeAlias

from engines.core.expr import Value

__all__ = ["Effect", "LaunchChildRuns", "RuntimeReport", "StartRuntime", "TerminateRuntime", "Wake"]


@dataclass(frozen=True, slots=True)
class StartRuntime:
    """Start the runtime of a leaf attempt (Maestro's ``runtime.start()``), handing it ``params``.

    The engine answers later calls for this attempt with a :class:`RuntimeReport`: in replay the
    runtime finishes ``duration`` seconds after ``now`` with the recorded outcome, or is ``unrecorded``."""

    path: str
    attempt: int
    step_type: str
    params: Mapping[str, Value]


@dataclass(frozen=True, slots=True)
class TerminateRuntime:
    """Kill the runtime of this attempt (step timeout, STOP, workflow timeout); it will report nothing more."""

    path: str
    attempt: int


@dataclass(frozen=True, slots=True)
class Wake:
    """Call ``execute`` for these step paths now (a stop reached them, their children finished, ...).

    Engines may also simply call :func:`engines.core.flow.decide`, which reports the same paths."""

    paths: tuple[str, ...]


@dataclass(frozen=True, slots=True)
class LaunchChildRuns:
    """A foreach or subworkflow step added child workflow instances (scopes ``prefixes``) to the run
    state; the engine calls :func:`engines.core.flow.decide`, which creates their first steps."""

    path: str
    prefixes: tuple[str, ...]


Effect: TypeAlias = StartRuntime | TerminateRuntime | Wake | LaunchChildRuns


@dataclass(frozen=True, slots=True)
class RuntimeReport:
    """Where the runtime of the latest attempt of a step is, as of the ``execute`` call.

    ``state``: ``"running"`` (not finished yet), ``"finished"`` (with the recorded ``outcome`` -- a
    :class:`corpora.model.Outcome` value -- and ``outputs``) or ``"unrecorded"`` (the trace has no such
    attempt: the step becomes INTERNALLY_FAILED with ``unrecorded=True``)."""

    state: str
    outcome: str | None = None
    outputs: Mapping[str, Value] = field(default_factory=dict)

    @staticmethod
    def running() -> RuntimeReport:
        return _RUNNING

    @staticmethod
    def finished(outcome: str, outputs: Mapping[str, Value] | None = None) -> RuntimeReport:
        report: RuntimeReport = object.__new__(RuntimeReport)  # the frozen __init__, without its cost
        _set_state(report, "finished")
        _set_outcome(report, outcome)
        _set_outputs(report, outputs or {})
        return report

    @staticmethod
    def unrecorded() -> RuntimeReport:
        return _UNRECORDED

    @staticmethod
    def of(
        outcome: str | None, outputs: Mapping[str, Value] | None = None, *, unrecorded: bool = False
    ) -> RuntimeReport:
        """From a runtime's finished result (e.g. ``engines.runtimes.RuntimeResult``'s fields)."""
        if unrecorded or outcome is None:
            return _UNRECORDED
        return RuntimeReport("finished", str(outcome), dict(outputs or {}))


_set_state = RuntimeReport.__dict__["state"].__set__
_set_outcome = RuntimeReport.__dict__["outcome"].__set__
_set_outputs = RuntimeReport.__dict__["outputs"].__set__
_RUNNING = RuntimeReport("running")
_UNRECORDED = RuntimeReport("unrecorded")
