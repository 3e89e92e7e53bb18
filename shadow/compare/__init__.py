"""Compare execution records: normalize, diff with deepdiff, flatten to signatures, causal order."""

from __future__ import annotations

from shadow.compare.causal import CausalityViolation, CausalOrder, check_causality
from shadow.compare.diff import NormalForms, compare_records, engine_error_divergence
from shadow.compare.model import Divergence, DivergenceKind, path_pattern, signature_of
from shadow.compare.normalize import normalize_record

__all__ = [
    "CausalOrder",
    "CausalityViolation",
    "Divergence",
    "DivergenceKind",
    "NormalForms",
    "check_causality",
    "compare_records",
    "engine_error_divergence",
    "normalize_record",
    "path_pattern",
    "signature_of",
]
