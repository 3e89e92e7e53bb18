"""Canonical, comparable form of an :class:`~engines.api.ExecutionRecord`.

Timestamps are engine-specific (they are latency, compared elsewhere), so they are dropped. Attempts
are keyed by (run_id, path, attempt number) in nested mappings, which makes parallel branches a set:
two engines that ran ``a`` and ``b`` in different order produce equal normal forms. An attempt number
reported twice for one path (a double delivery) is kept as ``"n#dup1"``, so it shows up as an
``attempt_count`` divergence instead of silently overwriting the first.
"""

from __future__ import annotations

from typing import Any

from engines.api import ExecutionRecord

__all__ = ["normalize_record"]


def normalize_record(record: ExecutionRecord) -> dict[str, Any]:
    """``{run_id: {status, stuck, workflow_params, steps: {path: {step_type, attempts: {n: {...}}}}}}``."""
    runs: dict[str, Any] = {}
    for run in record.runs:
        steps: dict[str, Any] = {}
        for att in run.attempts:
            step = steps.setdefault(
                att.path, {"step_id": att.step_id, "step_type": att.step_type, "attempts": {}}
            )
            key: int | str = att.attempt
            duplicates = 0
            while key in step["attempts"]:  # the same attempt delivered twice (at-least-once): keep both
                duplicates += 1
                key = f"{att.attempt}#dup{duplicates}"
            step["attempts"][key] = {
                "status": att.status,
                "outcome": att.outcome,
                "unrecorded": att.unrecorded,
                "params": _plain(att.params),
                "outputs": _plain(att.outputs),
                "config": _plain(att.config),
            }
        runs[run.run_id] = {
            "status": run.status,
            "stuck": run.stuck,
            "workflow_params": _plain(run.workflow_params),
            "steps": steps,
        }
    return runs


_SCALARS = frozenset({str, int, float, bool, type(None)})


def _plain(value: Any) -> Any:
    """Mappings to dicts and tuples to lists, so deepdiff compares values, not container types."""
    if type(value) in _SCALARS:  # most leaves: skip the isinstance / hasattr probes
        return value
    if isinstance(value, dict) or hasattr(value, "items"):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    return value
