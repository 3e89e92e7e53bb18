"""The actor engine: group -> flow -> task actors with mailboxes, a transactional outbox, group
leases with fencing and takeover, several nodes on one store (docs/ACTOR.md)."""

from __future__ import annotations

from engines.actor.config import ActorConfig
from engines.actor.engine import ActorEngine
from engines.actor.faults import FAULT_SYNTAX, FaultSpecError, parse_faults

__all__ = ["FAULT_SYNTAX", "ActorConfig", "ActorEngine", "FaultSpecError", "parse_faults"]
