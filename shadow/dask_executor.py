"""Shadow runs on a Dask cluster: a local one by default, any running ``dask.distributed`` scheduler by address.

``shadow run ... --executor dask [--scheduler ADDRESS] [--workers N]``. Without an address this starts a
``LocalCluster`` of N worker processes (one thread each: replay is pure-Python CPU work); with one, it
connects to that scheduler, whoever started it (``dask scheduler`` / ``dask worker``, dask-kubernetes,
dask-jobqueue; docs/SCALING.md). The optional extra ``workflow-shadow[dask]`` installs it.

How work flows (the runner is the same as for the other executors, see :mod:`shadow.executors`):

* the runner's stream of job batches is regrouped into **tasks of about ``batch_steps`` recorded step
  attempts** (:func:`shadow.batches.group_by_steps`), never one task per trace;
* each task runs :func:`replay_batch` on a worker: engines built once per worker thread and
  configuration (the process pool's cache), one trial per trace, and the rows converted there to one
  **Arrow table per results table** (:class:`shadow.batches.ArrowBatch`); with ``parts_dir`` (a folder
  the workers and the driver both see) the worker writes them as **Parquet parts** instead and ships
  only their paths;
* up to ``in_flight`` tasks are queued on the cluster; results are taken **as they complete** (a big
  task does not hold back the small ones behind it) and the runner stores them in one DuckDB
  transaction per flush, as with every executor.

Exactly once. A task's result reaches the driver once, however often Dask ran it; the driver stores a
trace only inside a committed flush, and a rerun skips stored traces, so a driver killed at any moment
and rerun stores every trace once (``traces`` has a primary key on (identity, trace_id) besides). A
worker that dies mid-task is replaced by its nanny and Dask reruns the task elsewhere; Parquet parts are
named by task and written by rename, so a rerun overwrites a dead worker's half-written part instead
of adding one. A task whose workers keep dying (Dask's ``KilledWorker`` after ``allowed-failures``) is
split into one task per trace; a trace that still kills its worker is recorded as that trace's engine
error (a worker crash), and the rest of the corpus goes on.
"""

from __future__ import annotations

import contextlib
import os
import pickle
import threading
import time
import uuid
import warnings
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from engines.api import Engine, ExecutionRecord, ReplayOptions
from shadow.batches import ArrowBatch, group_by_steps, outcomes_to_arrow
from shadow.engines import build_engine
from shadow.trial import ROLES, TraceJob, TraceOutcome, TrialConfig, run_trace_with

__all__ = [
    "BATCH_STEPS",
    "DaskError",
    "DaskExecutor",
    "DaskNotInstalled",
    "DaskTaskError",
    "SchedulerUnreachable",
    "replay_batch",
]

BATCH_STEPS = 250
"""Recorded step attempts per task (~3-6 CPU-s of legacy + actor + A/A replay on the built-in corpus):
large enough that Dask's per-task cost (a few ms, and one Arrow batch per task) is noise, small enough
that workers finish within a short task of each other (36 traces of the built-in corpus make 12 tasks)."""

MAX_BATCH_TRACES = 64
"""Traces per task at most (tiny traces: bounds a task's rows and the work a dead worker loses)."""

LOOKAHEAD = 256
"""Traces read ahead and handed out largest first (the runner's flush size): the biggest traces of each
window start first instead of running alone at its end."""

CONNECT_TIMEOUT = 3.0
"""Seconds to reach a scheduler given by address before giving up: with the imports (~2 s) and the
exit, `shadow run` ends with exit 4 in about 6 s, within the 10 s the issue allows."""

HEAL_EVERY = 10.0
"""Seconds between checks, while waiting for results, that a local cluster still has all its workers."""

LOCAL_ALLOWED_FAILURES = 2
"""Worker deaths a task survives on our LocalCluster before Dask gives up on it (KilledWorker) and we split
it per trace. Dask's default is 3; a remote scheduler keeps its own setting."""


class DaskError(Exception):
    """A harness error of the Dask executor (exit 4): the message says what to check."""


class DaskNotInstalled(DaskError):
    """``--executor dask`` without the ``dask`` extra."""


class SchedulerUnreachable(DaskError):
    """The scheduler address did not answer within the connect timeout."""


class DaskTaskError(DaskError):
    """A task failed with an exception (not a worker death): the workers cannot run the trials."""


def _import_distributed() -> Any:
    try:
        import distributed
    except ImportError as exc:
        raise DaskNotInstalled(
            f"--executor dask needs dask.distributed, which is not installed here ({exc}). Install the extra: "
            "pip install 'workflow-shadow[dask]'"
        ) from exc
    return distributed


# -- on a worker ------------------------------------------------------------------------------------

_local = threading.local()


def _engines(config: TrialConfig) -> dict[str, Engine]:
    """This worker thread's engines for ``config`` (built once per thread and configuration: a worker
    with several threads must not share an engine between two trials at once)."""
    key = pickle.dumps(config.engines)
    cached: tuple[bytes, dict[str, Engine]] | None = getattr(_local, "engines", None)
    if cached is None or cached[0] != key:
        cached = (key, {role: build_engine(spec) for role, spec in config.engines.items()})
        _local.engines = cached
    return cached[1]


def replay_batch(
    jobs: Sequence[TraceJob], config: TrialConfig, parts_dir: str | None = None, part: str = ""
) -> ArrowBatch:
    """A Dask task: every trial of ``jobs``, as Arrow tables (or Parquet parts under ``parts_dir/part``)."""
    began = time.thread_time()
    engines = _engines(config)
    batch = outcomes_to_arrow([run_trace_with(job, config, engines) for job in jobs])
    tables = batch.tables
    if parts_dir is not None:
        tables = _write_parts(Path(parts_dir) / part, batch)
    return ArrowBatch(
        batch.trace_ids,
        tables,
        batch.candidate_divergences,
        batch.step_rows,
        time.thread_time() - began,
        _worker_name(),
    )


def _worker_name() -> str:
    try:
        from distributed import get_worker

        return str(get_worker().address)
    except (ImportError, ValueError):
        return f"pid {os.getpid()}"


class _PartPaths(dict):  # type: ignore[type-arg]
    """Marks an ArrowBatch whose tables are Parquet part paths (str), read back by the driver."""


def _write_parts(folder: Path, batch: ArrowBatch) -> Any:
    """Write each table to ``folder/<table>.parquet`` by rename (a rerun of the task overwrites whole files)."""
    import pyarrow.parquet as pq

    folder.mkdir(parents=True, exist_ok=True)
    paths = _PartPaths()
    for name, table in batch.tables.items():
        target = folder / f"{name}.parquet"
        scratch = folder / f".{name}.{uuid.uuid4().hex}.tmp"
        pq.write_table(table, scratch)
        os.replace(scratch, target)
        paths[name] = str(target)
    return paths


def _read_parts(batch: ArrowBatch) -> ArrowBatch:
    """The driver's side of Parquet parts: the tables read back, the part files removed."""
    import shutil

    import pyarrow.parquet as pq

    if not isinstance(batch.tables, _PartPaths):
        return batch
    tables = {name: pq.read_table(path) for name, path in batch.tables.items()}
    folders = {str(Path(path).parent) for path in batch.tables.values()}
    for folder in folders:
        shutil.rmtree(folder, ignore_errors=True)
    return ArrowBatch(
        batch.trace_ids, tables, batch.candidate_divergences, batch.step_rows, batch.cpu_seconds, batch.worker
    )


# -- a trace that kills its worker ------------------------------------------------------------------


@dataclass(slots=True)
class _WorkerCrash:
    """Stands in for every engine of a trace whose replay killed its worker process: each replay raises,
    so the trial records the trace as an engine error on every role (its rows look like any crash)."""

    message: str
    name: str = "worker-crash"
    version: str = "-"

    def replay(self, trace: Any, options: ReplayOptions) -> ExecutionRecord:
        raise WorkerCrashed(self.message)


class WorkerCrashed(RuntimeError):
    """The replay of this trace killed the Dask worker process running it, every time it was tried."""


def crashed_outcome(job: TraceJob, config: TrialConfig, message: str) -> TraceOutcome:
    crash = _WorkerCrash(message)
    return run_trace_with(job, config, dict.fromkeys(ROLES, crash))


# -- on the driver ----------------------------------------------------------------------------------


def _unreachable(address: str, timeout: float, exc: BaseException | str) -> str:
    what = (
        exc
        if isinstance(exc, str)
        else f"{type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else 'no answer'}"
    )
    return (
        f"cannot use the Dask scheduler at {address} ({what}). Check that a scheduler is running there "
        "('dask scheduler' prints its address; dask-kubernetes and dask-jobqueue clusters show it as "
        "cluster.scheduler_address), that host and port (default 8786, not the dashboard's 8787) are "
        "reachable from this machine (firewall, kubectl port-forward), and the protocol (tcp://, or tls:// "
        f"with the cluster's certificates); gave up after at most {timeout:g} s"
    )


def probe_scheduler(address: str, timeout: float = CONNECT_TIMEOUT) -> None:
    """Ask ``address`` who it is, bounded by ``timeout`` seconds in all, before any ``Client`` exists.

    A ``Client`` given an address that does not answer retries until its timeout and then spends up to
    10 s more closing; one given a port where something else answers (an HTTP proxy, the dashboard)
    reads its reply as a Dask frame (we saw a MemoryError asking for 3 EiB). This raises
    :class:`SchedulerUnreachable` in all those cases, naming the address."""
    import asyncio

    _import_distributed()
    from distributed.comm.core import connect

    async def identity() -> Any:
        comm = await connect(address, timeout=timeout)  # type: ignore[no-untyped-call]
        try:
            await comm.write({"op": "identity"})
            return await comm.read()
        finally:
            comm.abort()

    try:
        reply = asyncio.run(asyncio.wait_for(identity(), timeout))
    except TimeoutError:
        raise SchedulerUnreachable(
            _unreachable(address, timeout, f"no answer within {timeout:g} s")
        ) from None
    except Exception as exc:  # refused, bad address, or something that is not a Dask scheduler answered
        raise SchedulerUnreachable(_unreachable(address, timeout, exc)) from exc
    if not isinstance(reply, dict) or reply.get("type") != "Scheduler":
        kind = reply.get("type") if isinstance(reply, dict) else type(reply).__name__
        raise SchedulerUnreachable(
            _unreachable(address, timeout, f"it answered as {kind}, not as a Dask scheduler")
        )


class DaskExecutor:
    """Runs trials on a Dask cluster: a new ``LocalCluster`` of ``workers`` processes, or ``scheduler``'s."""

    def __init__(
        self,
        workers: int = 2,
        scheduler: str | None = None,
        *,
        batch_steps: int = BATCH_STEPS,
        max_batch_traces: int = MAX_BATCH_TRACES,
        lookahead: int = LOOKAHEAD,
        parts_dir: str | None = None,
        connect_timeout: float = CONNECT_TIMEOUT,
        allowed_failures: int = LOCAL_ALLOWED_FAILURES,
        in_flight: int | None = None,
        dashboard: bool = True,
        client: Any = None,
    ) -> None:
        """``client``: an existing ``distributed.Client`` (a notebook's, a ``KubeCluster``'s) to run on
        instead of starting or connecting one; it stays open after :meth:`close`."""
        distributed = _import_distributed()
        self.scheduler = scheduler
        self.batch_steps = max(1, batch_steps)
        self.max_batch_traces = max(1, max_batch_traces)
        self.lookahead = lookahead
        self.parts_dir = str(Path(parts_dir).resolve()) if parts_dir else None
        self._run_id = uuid.uuid4().hex[:12]
        self._in_flight = in_flight
        self.cluster: Any = None
        self.n_workers = max(1, workers)
        self._futures: dict[str, Any] = {}
        self.tasks_split = 0
        self.crashed_traces: list[str] = []
        self._own_client = client is None
        self._dashboard = dashboard
        if client is not None:
            self.client = client
        elif scheduler:
            probe_scheduler(scheduler, connect_timeout)
            try:
                self.client = distributed.Client(scheduler, timeout=connect_timeout, set_as_default=False)
            except Exception as exc:
                raise SchedulerUnreachable(_unreachable(scheduler, connect_timeout, exc)) from exc
        else:
            import dask

            root = str(Path(__file__).resolve().parents[1])
            path = os.pathsep.join(p for p in (root, os.environ.get("PYTHONPATH", "")) if p)
            # worker-saturation 1.0: a worker holds only the task it runs, none queued behind it, so a worker
            # death is blamed on that task alone (Dask counts it against every task the worker held).
            # profile.enabled False: Dask's statistical profiler samples each worker's stack 100 times a second,
            # taking the GIL from the replay each time; our workers run one long pure-Python task at a time.
            with (
                dask.config.set(
                    {
                        "distributed.scheduler.allowed-failures": allowed_failures,
                        "distributed.scheduler.worker-saturation": 1.0,
                        "distributed.worker.profile.enabled": False,
                    }
                ),
                warnings.catch_warnings(),
            ):
                # 8787 taken (another cluster): Dask picks a free port and warns; the port is in describe()
                warnings.filterwarnings("ignore", message="Port .* is already in use", category=UserWarning)
                self.cluster = distributed.LocalCluster(
                    n_workers=max(1, workers),
                    threads_per_worker=1,
                    processes=True,
                    dashboard_address="127.0.0.1:8787" if dashboard else None,
                    silence_logs=50,
                    env={"PYTHONPATH": path},
                )  # the project importable in the spawned workers
            self.client = distributed.Client(self.cluster, set_as_default=False)
        self._as_completed = distributed.as_completed
        self._killed_worker = distributed.scheduler.KilledWorker

    # -- description --------------------------------------------------------------------------------
    @property
    def dashboard_link(self) -> str | None:
        if self.cluster is not None and not self._dashboard:
            return None
        try:
            if "dashboard" not in self.client.scheduler_info().get("services", {}):
                return None  # no dashboard (disabled, or bokeh-less remote scheduler without the service)
            link = self.client.dashboard_link
        except (KeyError, AttributeError, OSError):
            return None
        return str(link) if link else None

    def worker_threads(self) -> int:
        return sum(self.client.nthreads().values())

    def describe(self) -> str:
        workers = self.client.nthreads()
        where = f"scheduler {self.scheduler}" if self.scheduler else "a local cluster"
        text = f"dask: {len(workers)} workers ({sum(workers.values())} threads) on {where}"
        link = self.dashboard_link
        return text + (f"; dashboard {link}" if link else "")

    # -- the Executor protocol ----------------------------------------------------------------------
    def run_batch(self, jobs: Sequence[TraceJob], config: TrialConfig) -> list[Any]:
        out: list[Any] = []
        for outcomes in self.run_batches([jobs], config):
            out.extend(outcomes)
        return out

    def run_batches(self, batches: Iterable[Sequence[TraceJob]], config: TrialConfig) -> Iterator[list[Any]]:
        """Tasks of ~``batch_steps`` attempts, ``in_flight`` queued; each result (a list of one ArrowBatch,
        or a crashed trace's outcome) as soon as it completes."""
        window = self._in_flight or max(4, 2 * self.worker_threads() + 2)
        completed = self._as_completed(loop=self.client.loop)
        jobs_of: dict[str, list[TraceJob]] = {}
        singles: dict[str, int] = {}  # a task of one suspect trace -> how many times it was given alone
        count = 0

        def submit(jobs: list[TraceJob], single: int = 0) -> None:
            nonlocal count
            count += 1
            key = f"shadow-batch-{self._run_id}-{count}"
            future = self.client.submit(replay_batch, jobs, config, self.parts_dir, key, key=key, pure=False)
            jobs_of[key], self._futures[key] = jobs, future
            if single:
                singles[key] = single
            completed.add(future)

        def collect(future: Any) -> Iterator[list[Any]]:
            key = future.key
            if future.status in ("pending", "lost"):
                # Its result lived on a worker that died before we fetched it: Dask computes it again.
                completed.add(future)
                return
            jobs = jobs_of.pop(key)
            self._futures.pop(key, None)
            tries = singles.pop(key, 0)
            try:
                batch = future.result()
            except self._killed_worker as exc:
                # Dask blames every task that was on a dying worker, also one queued behind the culprit or
                # running beside it in another thread: split the batch, and give each suspect two chances
                # of its own before recording it as a crash.
                if len(jobs) > 1:
                    self.tasks_split += 1
                    for job in jobs:
                        submit([job], single=1)
                elif tries < 2:
                    submit(jobs, single=tries + 1)
                else:
                    trace = jobs[0].trace.trace_id
                    self.crashed_traces.append(trace)
                    yield [
                        crashed_outcome(
                            jobs[0],
                            config,
                            f"the replay of {trace} killed its Dask worker "
                            f"process every time it was tried ({exc})",
                        )
                    ]
                return
            except Exception as exc:
                raise DaskTaskError(
                    f"a Dask task failed on the cluster: {type(exc).__name__}: {exc}. The workers must run the "
                    "same workflow-shadow version as this driver, with every engine module it names importable "
                    "(pip install 'workflow-shadow[dask]' plus your plug-in engine on each worker)"
                ) from exc
            yield [_read_parts(batch)]

        def next_done() -> Any:
            """The next completed future; meanwhile, every few seconds, a local cluster's lost workers are
            replaced (a nanny that failed to restart its worker would otherwise leave the run waiting)."""
            checked = time.monotonic()
            while not completed.has_ready():
                time.sleep(0.05)
                if time.monotonic() - checked >= HEAL_EVERY:
                    self.heal()
                    checked = time.monotonic()
            return next(completed)

        try:
            for jobs in group_by_steps(batches, self.batch_steps, self.max_batch_traces, self.lookahead):
                submit(jobs)
                while completed.count() >= window:
                    yield from collect(next_done())
            while not completed.is_empty():
                yield from collect(next_done())
        finally:  # the runner stopped early (an error, Ctrl-C): nothing more of this run is wanted
            for future in list(self._futures.values()):
                future.cancel()

    def heal(self) -> int:
        """Replace the workers of our local cluster whose nanny closed (it gave up restarting a dead worker
        process); returns how many. A remote cluster's size is its owner's business: nothing happens."""
        if self.cluster is None:
            return 0
        from distributed.core import Status

        gone = [
            name
            for name, nanny in list(self.cluster.workers.items())
            if getattr(nanny, "status", None) in (Status.closed, Status.failed, Status.closing)
        ]
        if gone:
            for (
                name
            ) in gone:  # forget the closed nanny, so that scaling starts a new one (maybe by that name)
                self.cluster.worker_spec.pop(name, None)
                self.cluster.workers.pop(name, None)
            self.cluster.scale(self.n_workers)
        return len(gone)

    def close(self) -> None:
        for future in list(self._futures.values()):
            future.cancel()
        self._futures.clear()
        if self._own_client:
            self.client.close()
        if self.cluster is not None:
            self.cluster.close()

    def abort(self) -> None:
        """Stop now (Ctrl-C, a failure): cancel queued and running tasks, close the local cluster."""
        with contextlib.suppress(Exception):  # the connection may be gone already
            self.client.cancel(list(self._futures.values()), force=True)
        self._futures.clear()
        self.close()
