"""``LegacyEngine``: replay a trace on the legacy polling engine in virtual time.

Each replay builds a fresh deployment: an in-memory SQLite store with the seeded round-trip latency
model, ``workers`` polling workers, replay runtimes answering from the trace, and a virtual-time
loop starting at the first run's trigger time. Runs are triggered at their trigger times; the
replay ends when nothing is left to do, or at ``time_limit`` virtual seconds after the last trigger,
when every run that started but did not end is reported ``stuck``. The record is built by the core's
record builder from the final rows in the store, exactly as the other engines build theirs.

The seed drives the store latency draws and each worker's poll phase; two seeds give two replicas
whose outcomes must agree (A/A) while their timings differ.
"""

from __future__ import annotations

from collections.abc import Sequence

from corpora.model import Trace
from engines.api import EngineError, ExecutionRecord, ReplayOptions
from engines.legacy.config import LegacyConfig
from engines.legacy.deployment import Deployment, StallFault, workflow_entry
from engines.runtimes import RuntimeRegistry
from engines.store import LatencyModel, SqliteConfig, SqliteStore
from engines.testing import VirtualTimeEnvironment

__all__ = ["COUNTERS", "LegacyEngine"]

COUNTERS = (
    "polls", "empty_polls", "idle_polls_elided", "cycles", "start_cycles", "executes", "decides",
    "conflicts", "duplicate_deliveries", "stalls",
)  # fmt: skip
"""Worker counters every legacy record carries (0 when nothing happened), beside ``store_*``,
``jobs_launched``, ``duplicate_launches``, ``row_decodes``, ``row_cache_hits`` and ``loop_jumps``."""


class LegacyEngine:
    """The legacy polling engine as an :class:`engines.api.Engine` (name ``legacy``).

    ``faults``: ``stall-worker:W:CLAIM:SECONDS[:PHASE]`` specs (see :class:`StallFault`), the
    duplicate-delivery fault ``shadow replay --fault`` passes through. Not thread-safe: one replay at
    a time per object (the harness gives each worker process its own)."""

    name = "legacy"
    version = "1"

    def __init__(
        self,
        config: LegacyConfig | None = None,
        *,
        latency: LatencyModel | None = None,
        faults: Sequence[str] = (),
    ) -> None:
        self.config = config if config is not None else LegacyConfig()
        self.latency = latency if latency is not None else LatencyModel()
        self.faults = tuple(StallFault.parse(f) for f in faults)

    def replay(self, trace: Trace, options: ReplayOptions) -> ExecutionRecord:
        entry = workflow_entry(trace)  # DefinitionError (an EngineError) for what the core cannot run
        faults = self.faults + tuple(StallFault.parse(f) for f in options.faults)
        if not trace.runs:
            return ExecutionRecord(trace.trace_id, self.name, self.version, options.seed, ())
        start = min(r.trigger_time for r in trace.runs)
        deadline = max(r.trigger_time for r in trace.runs) + options.time_limit
        store = SqliteStore(SqliteConfig(latency=self.latency, seed=options.seed))
        try:
            with VirtualTimeEnvironment(start=start) as env:
                deployment = Deployment(
                    store=store, clock=env.clock, config=self.config, registry=RuntimeRegistry.replay(trace),
                    workflows={trace.trace_id: entry}, seed=options.seed, faults=faults,
                )  # fmt: skip
                env.run(deployment.serve(deadline=deadline))
                runs = deployment.final_runs()
                loop_jumps = env.loop.jumps
        except RecursionError as exc:  # pragma: no cover - defensive
            raise EngineError(f"legacy replay of {trace.trace_id!r} recursed too deeply: {exc}") from exc
        finally:
            counters = dict(store.counters)
            store.close()
        out = {f"store_{k}": float(v) for k, v in counters.items()}
        out["store_round_trips"] = float(counters["round_trips"])
        out.update(dict.fromkeys(COUNTERS, 0.0))
        out.update({k: float(v) for k, v in deployment.counters.items()})
        out["jobs_launched"] = float(deployment.jobs.launched)
        out["duplicate_launches"] = float(deployment.jobs.duplicate_launches)
        out["row_decodes"] = float(deployment.codec.decodes)
        out["row_cache_hits"] = float(deployment.codec.cache_hits)
        out["loop_jumps"] = float(loop_jumps)
        return ExecutionRecord(
            trace_id=trace.trace_id, engine=self.name, engine_version=self.version, seed=options.seed,
            runs=runs, counters=out,
        )  # fmt: skip
