"""Typed errors for bad trace input. Every error says what was wrong, where, and what to do."""

from __future__ import annotations

from dataclasses import dataclass

__all__ = ["TraceError", "TraceLocation"]


@dataclass(frozen=True, slots=True)
class TraceLocation:
    """Where a problem is: a file, a 1-based line in it, and a JSON path inside that line's trace."""

    file: str | None = None
    line: int | None = None
    json_path: str = "$"

    def __str__(self) -> str:
        where = self.file or "<input>"
        if self.line is not None:
            where += f":{self.line}"
        return f"{where} at {self.json_path}"


class TraceError(Exception):
    """A trace is malformed or inconsistent.

    ``code`` is a stable machine-readable kind (``malformed_json``, ``schema``, ``cycle``, ...);
    ``message`` says what is wrong, ``hint`` what to do about it.
    """

    def __init__(
        self,
        code: str,
        message: str,
        *,
        location: TraceLocation | None = None,
        hint: str = "",
        trace_id: str | None = None,
    ) -> None:
        self.code = code
        self.message = message
        self.location = location or TraceLocation()
        self.hint = hint
        self.trace_id = trace_id
        super().__init__(str(self))

    def __str__(self) -> str:
        text = f"{self.location}: [{self.code}] {self.message}"
        if self.trace_id:
            text += f" (trace {self.trace_id!r})"
        if self.hint:
            text += f". {self.hint}"
        return text

    def at(
        self, *, file: str | None = None, line: int | None = None, trace_id: str | None = None
    ) -> TraceError:
        """The same error, placed in a file and line (keeps the JSON path)."""
        loc = TraceLocation(
            file=file if file is not None else self.location.file,
            line=line if line is not None else self.location.line,
            json_path=self.location.json_path,
        )
        return TraceError(
            self.code, self.message, location=loc, hint=self.hint, trace_id=trace_id or self.trace_id
        )

    def to_dict(self) -> dict[str, object]:
        return {
            "code": self.code,
            "message": self.message,
            "hint": self.hint,
            "file": self.location.file,
            "line": self.location.line,
            "json_path": self.location.json_path,
            "trace_id": self.trace_id,
        }
