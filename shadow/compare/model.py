"""The comparison's vocabulary: divergence kinds and the flattened :class:`Divergence` record."""

from __future__ import annotations

import re
from dataclasses import dataclass
from enum import StrEnum

from corpora.model import JsonValue

__all__ = ["Divergence", "DivergenceKind", "path_pattern", "signature_of"]


class DivergenceKind(StrEnum):
    """What differs. The set is closed: the results schema, the noise filter and the registry key on it."""

    FINAL_STATUS = "final_status"
    STEP_STATUS = "step_status"
    ATTEMPT_COUNT = "attempt_count"
    PARAMS = "params"
    OUTPUTS = "outputs"
    CONFIG = "config"
    MISSING_STEP = "missing_step"
    EXTRA_STEP = "extra_step"
    UNRECORDED_ATTEMPT = "unrecorded_attempt"
    STUCK_RUN = "stuck_run"
    CAUSALITY_VIOLATION = "causality_violation"
    ENGINE_ERROR = "engine_error"


@dataclass(frozen=True, slots=True)
class Divergence:
    """One flattened difference between a baseline record and another engine's record of one trace.

    ``path`` is the step path ('' for a run-level difference), ``detail`` the place inside the
    normalized record (e.g. ``attempts[2].params['date']``), values are the two sides as JSON."""

    run_id: str
    path: str
    kind: DivergenceKind
    detail: str
    baseline_value: JsonValue
    other_value: JsonValue
    signature: str
    is_first: bool = False


_INDEX = re.compile(r"\[\d+\]")


def path_pattern(path: str) -> str:
    """The step path with volatile parts generalized: foreach indices become ``[*]``."""
    return _INDEX.sub("[*]", path)


def signature_of(workflow_type: str, step_type: str, path: str, kind: str) -> str:
    """The group key ``workflow_type|step_type|path_pattern|kind`` thousands of divergences collapse to."""
    return f"{workflow_type}|{step_type}|{path_pattern(path)}|{kind}"
