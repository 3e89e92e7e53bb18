"""The comparison's vocabulary: the flattened :class:`Divergence` record and its signature. The kinds are
:class:`results.rows.DivergenceKind` (the results contract), re-exported here."""

from __future__ import annotations

import re
from dataclasses import dataclass

from corpora.model import JsonValue
from results.rows import DivergenceKind

__all__ = ["Divergence", "DivergenceKind", "path_pattern", "signature_of"]


@dataclass(frozen=True, slots=True)
class Divergence:
    """One flattened difference between a baseline record and another engine's record of one trace.

    ``path`` is the step path ('' for a run-level difference), ``detail`` the place inside the
    normalized record (e.g. ``attempts[2].params['date']``), values are the two sides as JSON.
    ``cause`` is the :func:`~shadow.compare.cause.cause_key` (``kind|field|change``): what changed,
    whichever step it showed on."""

    run_id: str
    path: str
    kind: DivergenceKind
    detail: str
    baseline_value: JsonValue
    other_value: JsonValue
    signature: str
    is_first: bool = False
    cause: str = ""


_INDEX = re.compile(r"\[\d+\]")


def path_pattern(path: str) -> str:
    """The step path with volatile parts generalized: foreach indices become ``[*]``."""
    return _INDEX.sub("[*]", path)


def signature_of(workflow_type: str, step_type: str, path: str, kind: str) -> str:
    """The group key ``workflow_type|step_type|path_pattern|kind`` thousands of divergences collapse to."""
    return f"{workflow_type}|{step_type}|{path_pattern(path)}|{kind}"
