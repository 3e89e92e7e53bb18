"""Typed errors of the core semantics.

``DefinitionError`` is raised at compile time (the trace cannot be executed at all) and is an
:class:`engines.api.EngineError`. ``ExpressionError`` and ``ParamError`` are raised while a run
executes; the step machine catches them and marks the step INTERNALLY_FAILED, as Maestro does.
"""

from __future__ import annotations

from engines.api import EngineError

__all__ = ["DefinitionError", "ExpressionError", "ParamError"]


class DefinitionError(EngineError):
    """A workflow definition the core cannot execute (unknown step type, bad expression, cycle, ...).

    Never retryable: the definition has to be fixed (or the trace importer corrected)."""

    def __init__(self, message: str, *, step: str | None = None, workflow: str | None = None) -> None:
        self.workflow = workflow
        where = f"workflow {workflow!r}: " if workflow else ""
        super().__init__(where + message, step=step, retryable=False)


class ExpressionError(Exception):
    """An expression could not be parsed or evaluated.

    ``position`` is the 0-based character offset in ``source`` where the problem is."""

    def __init__(self, message: str, *, source: str, position: int) -> None:
        self.message = message
        self.source = source
        self.position = position
        super().__init__(f"{message} at position {position} in expression {source!r}")


class ParamError(Exception):
    """A param could not be resolved (unknown name, reference cycle, bad value)."""

    def __init__(self, message: str, *, param: str | None = None) -> None:
        self.param = param
        super().__init__(f"param {param!r}: {message}" if param else message)
