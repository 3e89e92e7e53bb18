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

from collections.abc import Iterator, Sequence
from dataclasses import replace
from typing import TYPE_CHECKING

from corpora.model import Trace
from engines.api import EngineError, ExecutionRecord, ReplayOptions
from engines.legacy.config import LegacyConfig
from engines.legacy.deployment import Deployment, StallFault, workflow_entry
from engines.legacy.sampling import BlockSampler
from engines.runtimes import RuntimeRegistry
from engines.store import LatencyModel, SqliteConfig, SqliteStore
from engines.testing import VirtualTimeEnvironment

if TYPE_CHECKING:
    from engines.legacy.capture import LegacyFeed

__all__ = ["COUNTERS", "LegacyEngine"]

COUNTERS = (
    "polls", "empty_polls", "idle_polls_elided", "cycles", "start_cycles", "executes", "decides",
    "conflicts", "duplicate_deliveries", "stalls",
)  # fmt: skip
"""Worker counters every legacy record carries (0 when nothing happened), beside ``store_*``,
``jobs_launched``, ``duplicate_launches``, ``row_decodes``, ``row_cache_hits``, ``loop_jumps``,
``faults_fired`` (the stalls that happened), ``hot_round_trips`` (claimed polls and everything in their cycle, triggers, the final reload: per
workflow), ``upkeep_round_trips`` (empty polls: per worker; hot + upkeep == ``store_round_trips``) and
``virtual_seconds`` (replayed time: the clock at the end minus the first trigger)."""


class LegacyEngine:
    """The legacy polling engine as an :class:`engines.api.Engine` (name ``legacy``).

    ``workers`` overrides ``config.workers`` (a fault campaign's ``engine = { workers = 2 }``: a stalled
    worker's task is then delivered to the other one). ``faults``: ``stall-worker:W:CLAIM:SECONDS[:PHASE]`` specs (see :class:`StallFault`), the
    duplicate-delivery fault ``shadow replay --fault`` passes through. Not thread-safe: one replay at
    a time per object (the harness gives each worker process its own)."""

    name = "legacy"
    version = "1"
    fault_syntax = (
        "legacy faults: stall-worker:WORKER:CLAIM:SECONDS[:before_load|before_write] (worker WORKER "
        "stalls SECONDS on its CLAIM-th claimed task; past the claim timeout the task is delivered "
        "twice, as in production), e.g. stall-worker:0:5:90"
    )

    def __init__(
        self,
        config: LegacyConfig | None = None,
        *,
        latency: LatencyModel | None = None,
        faults: Sequence[str] = (),
        workers: int | None = None,
    ) -> None:
        base = config if config is not None else LegacyConfig()
        self.config = replace(base, workers=workers) if workers is not None else base
        self.latency = latency if latency is not None else LatencyModel()
        self.faults = tuple(StallFault.parse(f) for f in faults)
        self.last_stats: dict[str, float] = {}
        """Diagnostics of the last replay that are not part of the record (they differ between the fast and
        the exact mode): ``fast`` (1.0 when the fast path was on), ``fast_stretches``,
        ``fast_forwarded_polls``, ``fast_forwarded_empty_polls``, ``incremental_reloads`` / ``full_reloads``
        (reloads of the fast mode that read only the changed rows / every row)."""

    def replay(self, trace: Trace, options: ReplayOptions) -> ExecutionRecord:
        entry = workflow_entry(trace)  # DefinitionError (an EngineError) for what the core cannot run
        faults = self.faults + tuple(StallFault.parse(f) for f in options.faults)
        if not trace.runs:
            return ExecutionRecord(trace.trace_id, self.name, self.version, options.seed, ())
        start = min(r.trigger_time for r in trace.runs)
        deadline = max(r.trigger_time for r in trace.runs) + options.time_limit
        store = SqliteStore(SqliteConfig(latency=self.latency, seed=options.seed))
        store._sampler = BlockSampler(self.latency, options.seed)  # type: ignore[assignment]  # same model, block draws
        try:
            with VirtualTimeEnvironment(start=start) as env:
                fast = not options.exact and self.config.workers == 1 and not faults
                deployment = Deployment(
                    store=store, clock=env.clock, config=self.config, registry=RuntimeRegistry.replay(trace),
                    workflows={trace.trace_id: entry}, seed=options.seed, faults=faults, fast=fast,
                )  # fmt: skip
                env.run(deployment.serve(deadline=deadline))
                virtual_seconds = env.loop.time() - start
                runs = deployment.final_runs()
                loop_jumps = env.loop.jumps + deployment.jump_credit
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
        upkeep = float(deployment.upkeep_round_trips)
        out["upkeep_round_trips"] = upkeep
        out["hot_round_trips"] = out["store_round_trips"] - upkeep
        out["virtual_seconds"] = float(virtual_seconds)
        out["faults_fired"] = out[
            "stalls"
        ]  # every planned fault that took effect (the fault campaign reads it)
        stats = deployment.fast_stats
        self.last_stats = {
            "fast": 1.0 if deployment.fast else 0.0,
            "fast_stretches": float(stats["stretches"]),
            "fast_forwarded_polls": float(stats["polls"]),
            "fast_forwarded_empty_polls": float(stats["empty_polls"]),
            "incremental_reloads": float(deployment.codec.incremental),
            "full_reloads": float(deployment.codec.full_reloads),
        }
        return ExecutionRecord(
            trace_id=trace.trace_id, engine=self.name, engine_version=self.version, seed=options.seed,
            runs=runs, counters=out,
        )  # fmt: skip

    def capture(self, store: str, *, include_unfinished: bool = False) -> Iterator[Trace]:
        """The workflows of a live legacy store (:mod:`engines.legacy.live`) as traces, one per workflow: see
        :func:`engines.legacy.capture.capture_traces`."""
        from engines.legacy.capture import capture_traces

        return capture_traces(store, include_unfinished=include_unfinished)

    def follow(self, store: str, *, since: float | None = None) -> LegacyFeed:
        """Follow a live legacy store (a path or store URL): runs as they finish, one trace per run, with a
        durable cursor: see :class:`engines.legacy.capture.LegacyFeed`."""
        from engines.legacy.capture import LegacyFeed

        return LegacyFeed(store, since=since)
