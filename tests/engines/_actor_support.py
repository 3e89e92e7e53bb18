"""Shared helpers of the actor engine tests: the canonical outcome compared between engines."""

from __future__ import annotations

import json
from typing import Any

from engines.actor import ActorConfig
from engines.api import ExecutionRecord

# Background timers coarser than the defaults: they never change an outcome, and at the defaults a
# corpus trace spanning days of virtual time spends most of its replay heartbeating.
COARSE = ActorConfig(heartbeat=600.0, lease_expiry=3000.0, reconcile=600.0)


def outcome(record: ExecutionRecord) -> list[tuple[Any, ...]]:
    """Statuses, attempts, params handed in and outputs of every run; timestamps left out."""
    out: list[tuple[Any, ...]] = []
    for run in record.runs:
        attempts = sorted(
            (a.path, a.attempt, a.status, a.outcome, a.unrecorded,
             json.dumps(dict(a.params), sort_keys=True, default=str),
             json.dumps(dict(a.outputs), sort_keys=True, default=str),
             json.dumps(dict(a.config), sort_keys=True, default=str))
            for a in run.attempts
        )  # fmt: skip
        out.append(
            (
                run.run_id,
                run.status,
                run.stuck,
                json.dumps(dict(run.workflow_params), sort_keys=True),
                attempts,
            )
        )
    return out
