"""``shadow run``: stream a corpus through the trial of every trace and store the results.

The pipeline is load -> select -> replay (executor) -> buffer -> flush (one transaction per flush)
-> aggregates. Resumable: trace ids already in the database are skipped, and a flush is all or
nothing, so a SIGKILL at any moment followed by a rerun neither loses nor duplicates a trace.
"""

from __future__ import annotations

import hashlib
import json
import subprocess
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import asdict, dataclass, field
from importlib import metadata
from pathlib import Path
from typing import Any, cast

import pyarrow as pa

from engines.api import DEFAULT_TIME_LIMIT
from results.identity import IdentityMismatch, compute_identity, differences
from results.rows import QuarantineRow, TraceRow
from results.schema import dumps
from shadow import interrupts
from shadow.batches import ArrowBatch
from shadow.campaign import Campaign
from shadow.engines import EngineSpec, EngineSpecError, build_engine
from shadow.executors import Executor, make_executor, stream_batches
from shadow.noise import NoiseConfig, Registry
from shadow.results.aggregate import refresh_aggregates
from shadow.results.store import ResultsStore
from shadow.sources import (
    FollowPosition,
    FollowSource,
    SourceItem,
    TraceSelector,
    corpus_content_hash,
    corpus_hash,
    read_corpus,
    sample_hit,
)
from shadow.trial import TraceJob, TraceOutcome, TrialConfig

__all__ = ["FollowSettings", "RunReport", "RunSettings", "follow_shadow", "run_shadow"]


@dataclass(frozen=True, slots=True)
class RunSettings:
    """Everything one ``shadow run`` session needs; hashed into provenance as the config."""

    corpus: tuple[str, ...]
    db: str
    baseline: EngineSpec
    candidate: EngineSpec
    seed: int = 0
    workers: int = 1
    time_limit: float = DEFAULT_TIME_LIMIT
    where: str | None = None
    sample: float = 1.0
    limit: int | None = None
    registry: Registry = field(default_factory=Registry)
    noise: NoiseConfig = field(default_factory=NoiseConfig)
    batch_size: int = 16
    flush_traces: int = 256
    flush_seconds: float = 5.0
    # Also flush once the buffer holds this many step rows: memory follows the batch, not the run
    # (fast engines finish hundreds of traces in 5 s, and each carries its three records' JSON).
    flush_rows: int = 20_000
    command: str = ""
    exact: bool = False
    # Start a new identity in a database that holds another (otherwise refused: IdentityMismatch).
    new_session: bool = False
    # A fault campaign (shadow.campaign, --faults): trials of the candidate under faults, per trace.
    campaign: Campaign | None = None

    @property
    def seeds(self) -> dict[str, int]:
        return {"baseline": self.seed, "candidate": self.seed, "baseline_aa": self.seed + 1}


@dataclass(frozen=True, slots=True)
class RunReport:
    session_id: str
    status: str  # finished | interrupted
    traces_done: int
    skipped_existing: int
    quarantined: int
    candidate_divergences: int
    # Every corpus item read this session (good, bad or already stored): 0 means an empty corpus.
    items_read: int = 0
    # "file: message" for each corpus file that could not be opened or read to its end (truncated gzip):
    # the traces before the damage are stored, but the run is incomplete and must not look finished.
    unreadable: tuple[str, ...] = ()
    # Corpus items this session that were bad (quarantined now or in an earlier session).
    items_bad: int = 0
    # "--where ... matched 0 of N traces; closest values: ..." when the predicate matched nothing it saw.
    selection_note: str | None = None


Progress = Callable[[int, int], None]
"""Called after each batch with (traces done this session, candidate divergences so far)."""


def _git_sha() -> str | None:
    try:
        out = subprocess.run(
            ["git", "rev-parse", "HEAD"],
            cwd=Path(__file__).resolve().parent,
            capture_output=True,
            text=True,
            timeout=5,
            check=False,
        )
    except (OSError, subprocess.SubprocessError):
        return None
    return out.stdout.strip() or None


def _engine_part(spec: EngineSpec) -> dict[str, Any]:
    """An engine's part of the identity: ``name version`` as it reports itself (plus the target for a
    plugged-in engine), its factory target and a hash of its factory options."""
    name = version = None
    try:
        engine = build_engine(spec)
        name, version = engine.name, engine.version
        label = f"{name} {version}"
    except EngineSpecError:
        label = spec.name
    label = label if spec.target.startswith("engines.") else f"{label} ({spec.target})"
    options = dumps({"target": spec.target, "kwargs": dict(spec.kwargs)})
    return {
        "engine": label,
        "name": name,
        "version": version,
        "target": spec.target,
        "config_hash": hashlib.sha256(options.encode()).hexdigest(),
    }


def _provenance(settings: RunSettings, follow_head: str | None = None) -> dict[str, Any]:
    """The session's provenance row; ``follow_head`` (sha256 of a followed source's first line) names the
    corpus of a ``--follow`` session instead of the content hash of files that are still growing."""
    config = {
        "baseline": asdict(settings.baseline),
        "candidate": asdict(settings.candidate),
        "time_limit": settings.time_limit,
        "where": settings.where,
        "sample": settings.sample,
        "limit": settings.limit,
        "noise": asdict(settings.noise),
        "exact": settings.exact,
        "registry": [asdict(e) for e in settings.registry.entries],
        "campaign": asdict(settings.campaign) if settings.campaign is not None else None,
    }
    text = dumps(config)
    try:
        version = metadata.version("workflow-shadow")
    except metadata.PackageNotFoundError:
        version = None
    baseline, candidate = _engine_part(settings.baseline), _engine_part(settings.candidate)
    # What produced the rows (results.identity): not the selection, noise or registry, nor --exact.
    corpus = (
        {"follow_head_sha256": follow_head}
        if follow_head is not None
        else {"content_sha256": corpus_content_hash(settings.corpus)}
    )
    parts = {
        "corpus": corpus,
        "baseline": baseline,
        "candidate": candidate,
        "seeds": settings.seeds,
        "time_limit": settings.time_limit,
        "harness_version": version,
    }
    if settings.campaign is not None:
        parts["faults"] = {"campaign_sha256": settings.campaign.sha256}
    return {
        "command": settings.command,
        "git_sha": _git_sha(),
        "package_version": version,
        "baseline_engine": baseline["engine"],
        "candidate_engine": candidate["engine"],
        "config_hash": hashlib.sha256(text.encode()).hexdigest(),
        "config": text,
        "seeds": dumps(settings.seeds),
        "corpus_hash": follow_head if follow_head is not None else corpus_hash(settings.corpus),
        "corpus_files": dumps(list(settings.corpus)),
        "identity": compute_identity(parts),
        "identity_parts": dumps(parts),
        "exact": settings.exact,
    }


def _claim(store: ResultsStore, provenance: dict[str, Any], new_session: bool) -> None:
    """Refuse to add results of this identity to a database whose latest session has another, unless
    ``new_session``; a rerun of the same identity resumes."""
    latest = store.latest_identity()
    if latest is None or latest[0] == provenance["identity"] or new_session:
        return
    identity, parts, started = latest
    what = "; ".join(differences(parts, json.loads(provenance["identity_parts"])))
    raise IdentityMismatch(
        f"{store.path} holds results of another identity ({identity[:12]}, last session {started[:19]} UTC): "
        f"{what}. Pass --db a new file to keep them apart, or --new-session to start a new identity in this file "
        "(gate, summary and report then judge the latest identity; --identity picks another)"
    )


class _Session:
    """Mutable state of one session (kept out of the frozen settings)."""

    def __init__(self, settings: RunSettings, store: ResultsStore, session_id: str) -> None:
        self.settings = settings
        self.store = store
        self.session_id = session_id
        self.done_ids = store.existing_trace_ids()
        self.quarantined_at = {
            (f, ln)
            for f, ln in store.query(
                "SELECT file, line FROM quarantine WHERE identity = ?", [store.identity or ""]
            )
        }
        self.buffer: list[TraceOutcome] = []
        # Batches a remote executor shipped as Arrow tables (shadow.batches), flushed with the rows.
        self.arrow_buffer: list[ArrowBatch] = []
        self.buffered_traces = self.buffered_rows = 0
        self.quarantine: list[QuarantineRow] = []
        self.last_flush = time.monotonic()
        self.traces_done = self.skipped = self.quarantined = self.divergences = self.selected = 0
        self.items_read = self.items_bad = 0
        self.unreadable: list[str] = []
        # shadow run --follow: how far the source is read (every item before it taken), and what was last stored.
        self.position: dict[str, Any] | None = None
        self.stored_position: dict[str, Any] | None = None

    def take(self, items: Sequence[SourceItem]) -> list[SourceItem]:
        s = self.settings
        good: list[SourceItem] = []
        for it in items:
            self.items_read += 1
            if it.error is not None and it.error.code == "unreadable":
                self.unreadable.append(f"{it.file}: {it.error.message}")
            if it.error is not None or it.trace is None:
                self.items_bad += 1
                if (it.file, it.line) not in self.quarantined_at:
                    self.quarantined_at.add((it.file, it.line))
                    self.quarantined += 1
                    err = it.error
                    self.quarantine.append(
                        QuarantineRow(
                            session_id=self.session_id,
                            file=it.file,
                            line=it.line,
                            trace_id=err.trace_id if err else None,
                            code=err.code if err else "unknown",
                            message=err.message if err else "no trace",
                            hint=err.hint if err else "",
                            json_path=err.location.json_path if err else "$",
                        )
                    )
                continue
            if it.trace.trace_id in self.done_ids:
                self.skipped += 1
                continue
            if sample_hit(it.trace.trace_id, s.sample):
                good.append(it)
        return good

    def add(self, outcomes: Sequence[TraceOutcome | ArrowBatch]) -> None:
        for outcome in outcomes:
            if isinstance(outcome, ArrowBatch):
                traces = outcome.tables["traces"]
                column = pa.array([self.session_id] * traces.num_rows, pa.string())
                outcome = outcome.with_table(
                    "traces", traces.set_column(traces.column_names.index("session_id"), "session_id", column)
                )
                self.arrow_buffer.append(outcome)
                self.buffered_traces += len(outcome.trace_ids)
                self.buffered_rows += outcome.step_rows
                self.divergences += outcome.candidate_divergences
            else:
                self._buffer(outcome)
        if self.due():
            self.flush()

    def report(self, status: str, selector: TraceSelector) -> RunReport:
        """What the session did, for the command's last line."""
        return RunReport(
            self.session_id,
            status,
            self.traces_done,
            self.skipped,
            self.quarantined,
            self.divergences,
            self.items_read,
            tuple(self.unreadable),
            self.items_bad,
            selector.no_match_hint(),
        )

    def due(self) -> bool:
        """Whether the buffer should be written now (by count, rows, or time since the last flush)."""
        due = time.monotonic() - self.last_flush >= self.settings.flush_seconds
        return (
            self.buffered_traces >= self.settings.flush_traces
            or due
            or self.buffered_rows >= self.settings.flush_rows
        )

    def add_quietly(self, outcomes: Sequence[TraceOutcome]) -> None:
        """Buffer outcomes without the flush check (the caller flushes)."""
        for outcome in outcomes:
            self._buffer(outcome)

    def _buffer(self, outcome: TraceOutcome) -> None:
        """One trace's rows, stamped with this session, waiting for the next flush."""
        cast(TraceRow, outcome.tables["traces"][0])["session_id"] = self.session_id
        self.buffer.append(outcome)
        self.buffered_traces += 1
        self.buffered_rows += len(outcome.tables.get("steps", ()))
        self.divergences += outcome.candidate_divergences

    def flush(self) -> None:
        tables: dict[str, list[Mapping[str, Any]]] = {"quarantine": list(self.quarantine)}
        for outcome in self.buffer:
            for name, rows in outcome.tables.items():
                tables.setdefault(name, []).extend(rows)
        arrow: dict[str, list[pa.Table]] = {}
        for batch in self.arrow_buffer:
            for name, table in batch.tables.items():
                arrow.setdefault(name, []).append(table)
        self.store.insert(tables, arrow)
        self.traces_done += self.buffered_traces
        self.buffer, self.arrow_buffer, self.quarantine = [], [], []
        self.buffered_traces = self.buffered_rows = 0
        self.last_flush = time.monotonic()
        self.store.heartbeat(self.session_id, self.traces_done, self.position)
        self.stored_position = self.position
        # Free the file until the next flush: summary, report and gate read what has landed meanwhile.
        self.store.release()


def _wind_down(session: _Session, executor: Executor, own_executor: bool, status: str) -> None:
    """The end of a session's replay loop, whatever ended it. A second Ctrl-C or a SIGTERM here is recorded,
    not raised: the flush completes. Interrupted: traces the workers finished that the stream had not handed
    over yet are kept too; interrupted or failed: chunks still replaying are not waited for."""
    with interrupts.deferred():
        if status == "interrupted":
            harvest = getattr(executor, "harvest", None)
            if harvest is not None:
                session.add_quietly(harvest())
        session.flush()
        if own_executor and status == "finished":
            executor.close()
        elif own_executor:
            getattr(executor, "abort", executor.close)()
        if status == "failed":
            session.store.finish_session(session.session_id, status, session.traces_done)


def _open_session(settings: RunSettings, provenance: dict[str, Any]) -> tuple[ResultsStore, str]:
    """Open the results database and start this session in it: the session row is written whole, or the run
    never started (a signal meanwhile marks it interrupted and is raised as KeyboardInterrupt)."""
    with interrupts.deferred():
        store = ResultsStore(settings.db)
        try:
            _claim(store, provenance, settings.new_session)
            session_id = store.start_session(provenance)
        except BaseException:
            store.close()
            raise
    if interrupts.received():
        with store:
            store.finish_session(session_id, "interrupted", 0)
        raise KeyboardInterrupt
    return store, session_id


def _conclude(session: _Session, status: str) -> str:
    """Aggregate and mark the session ended; a signal during the last flush makes a finished session
    interrupted (the corpus may not be complete). Returns the final status."""
    with interrupts.deferred():
        if status == "finished" and interrupts.received():
            status = "interrupted"
        refresh_aggregates(session.store, session.settings.registry, session.settings.noise)
        session.store.finish_session(session.session_id, status, session.traces_done)
    return status


def _trial_config(settings: RunSettings) -> TrialConfig:
    """The engines (by spec) and options every trial of the session gets; with a campaign that sets engine
    options, a "faults" role: the candidate built with them."""
    engines = {
        "baseline": settings.baseline,
        "candidate": settings.candidate,
        "baseline_aa": settings.baseline,
    }
    if settings.campaign is not None and settings.campaign.engine:
        cand = settings.candidate
        engines["faults"] = EngineSpec(cand.name, cand.target, {**cand.kwargs, **settings.campaign.engine})
    return TrialConfig(
        engines=engines,
        seeds=settings.seeds,
        time_limit=settings.time_limit,
        exact=settings.exact,
        campaign=settings.campaign,
    )


def run_shadow(
    settings: RunSettings, *, progress: Progress | None = None, executor: Executor | None = None
) -> RunReport:
    """Run one session; on KeyboardInterrupt flush what is done and report ``interrupted``.

    Any other exception (a worker process died, the database is full) is re-raised after the
    finished traces are flushed and the session is marked ``failed``; a rerun resumes from there."""
    selector = TraceSelector(settings.where)
    config = _trial_config(settings)
    store, session_id = _open_session(settings, _provenance(settings))
    with store:
        session = _Session(settings, store, session_id)
        store.release()
        own_executor = executor is None
        executor = executor or make_executor(settings.workers)
        status = "finished"
        try:
            for outcomes in stream_batches(executor, _batches(session, selector), config):
                session.add(outcomes)
                if progress is not None:
                    progress(session.traces_done + session.buffered_traces, session.divergences)
        except KeyboardInterrupt:
            status = "interrupted"
        except BaseException:
            # A harness failure (a worker process died, the disk filled): keep what is complete, say so.
            status = "failed"
            raise
        finally:
            _wind_down(session, executor, own_executor, status)
        status = _conclude(session, status)
        return session.report(status, selector)


def _batches(session: _Session, selector: TraceSelector) -> Iterator[list[TraceJob]]:
    """The corpus as batches of jobs to replay: read, quarantined, selected, deduplicated, limited."""
    pending: list[SourceItem] = []
    for item in read_corpus(session.settings.corpus):
        pending.append(item)
        if len(pending) >= session.settings.batch_size:
            jobs, done = _select(session, selector, pending)
            if jobs:
                yield jobs
            if done:
                return
            pending = []
    jobs, _ = _select(session, selector, pending)
    if jobs:
        yield jobs


def _select(
    session: _Session, selector: TraceSelector, items: list[SourceItem]
) -> tuple[list[TraceJob], bool]:
    """One batch's jobs, and whether ``--limit`` is reached."""
    chosen = selector.select(session.take(items))
    # The same trace id twice in a corpus: the first occurrence wins.
    unique: list[SourceItem] = []
    for it in chosen:
        assert it.trace is not None
        if it.trace.trace_id not in session.done_ids:
            session.done_ids.add(it.trace.trace_id)
            unique.append(it)
    limit = session.settings.limit
    if limit is not None:
        unique = unique[: max(0, limit - session.selected)]
    session.selected += len(unique)
    jobs = [TraceJob(it.trace, it.file, it.line) for it in unique if it.trace is not None]
    return jobs, limit is not None and session.selected >= limit


# -- shadow run --follow ---------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class FollowSettings:
    """What ``shadow run --follow`` adds to a run: the growing source and when to stop."""

    source: str
    max_traces: int | None = None  # replayed this session
    duration: float | None = None  # wall seconds
    poll_interval: float = 1.0
    # Recompute the aggregates (what summary, report and gate read) at most this often while following.
    aggregate_every: float = 60.0
    # Heartbeat an idle session this often, so that readers keep calling it "still going".
    heartbeat_every: float = 60.0


Say = Callable[[str], None]


def follow_shadow(
    settings: RunSettings, follow: FollowSettings, *, say: Say | None = None, executor: Executor | None = None
) -> RunReport:
    """Replay the traces a growing source receives, as they arrive, into one session of ``settings.db``.

    The session's identity names the stream by its first line (``corpus.follow_head_sha256``); everything
    else in it is as for ``shadow run``. After every flush the session records how far it has read
    (``provenance.follow_position``): a restart of the same identity continues from the newest one, and
    trace ids already stored are skipped as in every resumed run (the position may lag the stored rows by
    one flush after a kill; the trace-id check covers that gap). Stops after ``max_traces`` replays,
    ``duration`` seconds, or SIGINT / SIGTERM (flushed, marked interrupted, exit 130 / 143)."""
    source = FollowSource(follow.source)
    tell = say or (lambda _text: None)
    end = None if follow.duration is None else time.monotonic() + follow.duration
    try:
        head = source.head()
        if head is None:
            tell(f"follow: waiting for the first trace in {follow.source}")
        while head is None:
            if end is not None and time.monotonic() >= end:
                return RunReport("", "finished", 0, 0, 0, 0)
            _pause(follow.poll_interval, end)
            head = source.head()
    except KeyboardInterrupt:
        return RunReport("", "interrupted", 0, 0, 0, 0)
    selector = TraceSelector(settings.where)
    config = _trial_config(settings)
    provenance = _provenance(settings, hashlib.sha256(head).hexdigest())
    store, session_id = _open_session(settings, provenance)
    with store:
        session = _Session(settings, store, session_id)
        position = _resume_at(source, store.follow_position())
        session.position = session.stored_position = position.to_json(source.path)
        store.release()
        tell(
            f"follow: session {session_id[:8]} of identity {provenance['identity'][:12]}, reading "
            f"{follow.source} from {position.describe()} ({len(session.done_ids)} traces already stored)"
        )
        own_executor = executor is None
        executor = executor or make_executor(settings.workers)
        status = "finished"
        last_aggregate = time.monotonic()
        aggregated_at = 0
        try:
            while True:
                if interrupts.received():  # a signal recorded inside a deferred section (a flush, a refresh)
                    raise KeyboardInterrupt
                remaining = None if settings.limit is None else settings.limit - session.selected
                if (remaining is not None and remaining <= 0) or (
                    end is not None and time.monotonic() >= end
                ):
                    break
                polled = source.poll(
                    position,
                    settings.batch_size if remaining is None else min(settings.batch_size, remaining),
                )
                if polled:
                    # At most ``remaining`` items were read, so --limit never cuts a batch short: every item
                    # before the new position is replayed, skipped or quarantined.
                    jobs, _ = _select(session, selector, [item for item, _ in polled])
                    if jobs:
                        session.add_quietly(executor.run_batch(jobs, config))
                    position = polled[-1][1]
                    session.position = position.to_json(source.path)
                    if session.due():
                        _flush_and_say(session, tell)
                    continue
                # Nothing new: store what is buffered, heartbeat now and then, refresh the aggregates, wait.
                idle_for = time.monotonic() - session.last_flush
                if (
                    session.buffered_traces
                    or session.quarantine
                    or session.position != session.stored_position
                    or idle_for >= follow.heartbeat_every
                ):
                    _flush_and_say(session, tell)
                if (
                    session.traces_done != aggregated_at
                    and time.monotonic() - last_aggregate >= follow.aggregate_every
                ):
                    with interrupts.deferred():
                        refresh_aggregates(store, settings.registry, settings.noise)
                        store.release()
                    last_aggregate, aggregated_at = time.monotonic(), session.traces_done
                    if interrupts.received():
                        raise KeyboardInterrupt
                _pause(follow.poll_interval, end)
        except KeyboardInterrupt:
            status = "interrupted"
        except BaseException:
            status = "failed"
            raise
        finally:
            _wind_down(session, executor, own_executor, status)
        status = _conclude(session, status)
        tell(f"follow: {status}; read to {position.describe()}")
        return session.report(status, selector)


def _resume_at(source: FollowSource, stored: dict[str, Any] | None) -> FollowPosition:
    """Where to start reading: the newest position this identity recorded, else the source's beginning."""
    if stored is not None and isinstance(stored.get("segment"), str):
        return FollowPosition.from_json(stored)
    start = source.start()
    assert start is not None  # the head was read from it
    return start


def _flush_and_say(session: _Session, tell: Say) -> None:
    """Flush (rows, position, heartbeat); say where the session stands when anything moved."""
    before = session.buffered_traces
    moved = bool(before) or session.position != session.stored_position
    session.flush()
    if not moved or session.position is None:
        return
    where = FollowPosition.from_json(session.position)
    tell(
        f"follow: {session.traces_done} traces stored this session (+{before}), {session.skipped} already stored, "
        f"{session.quarantined} quarantined, {session.divergences} raw candidate divergences; read to "
        f"{where.describe()}"
    )


def _pause(seconds: float, end: float | None) -> None:
    """Sleep ``seconds``, or until ``end`` (monotonic) if sooner; a signal ends it (KeyboardInterrupt)."""
    wait = seconds if end is None else min(seconds, max(0.0, end - time.monotonic()))
    if wait > 0:
        time.sleep(wait)
